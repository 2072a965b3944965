"""Property tests of the story parser (every latent frame gets exactly one prompt, boundaries are
monotone, render -> parse gives the same schedule in every syntax) and the timeline route's logic."""

from __future__ import annotations

import pytest
from comfyui_framelevel.nodes.core import frames as fm
from comfyui_framelevel.nodes.core.prompts import KEY_UNITS, PromptScheduleError, compile_prompt_schedule
from comfyui_framelevel.nodes.core.story.markers import foreign_mark
from comfyui_framelevel.nodes.core.story.render import STYLES, render_story
from comfyui_framelevel.nodes.core.story.spread import spread_boundaries
from comfyui_framelevel.nodes.core.story.text import join_prompt
from comfyui_framelevel.nodes.core.story.timeline import timeline
from hypothesis import given, settings
from hypothesis import strategies as st

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789,.'-!?()", min_size=1, max_size=8)
PROMPT = st.lists(WORD, min_size=1, max_size=5).map(" ".join).filter(lambda p: not p.startswith("#"))
FPS = st.sampled_from([8.0, 12.5, 16.0, 24.0, 30.0])


@st.composite
def per_latent_prompts(draw, max_frames=40):
    """One prompt per latent frame: runs of random length over a small pool (prompts may recur)."""
    frames = draw(st.integers(1, max_frames))
    pool = draw(st.lists(PROMPT, min_size=1, max_size=6, unique=True))
    prompts: list[str] = []
    while len(prompts) < frames:
        prompts += [draw(st.sampled_from(pool))] * draw(st.integers(1, frames - len(prompts)))
    return prompts


def compile_latent(text, frames, **kw):
    return compile_prompt_schedule(text, length=frames, unit="latent", **kw)


@settings(max_examples=60, deadline=None)
@given(prompts=per_latent_prompts(), style=st.sampled_from(sorted(STYLES)), fps=FPS,
       key_unit=st.sampled_from(KEY_UNITS))
def test_render_then_parse_gives_the_same_schedule(prompts, style, fps, key_unit):
    text = render_story(prompts, style, fps=fps, key_unit=key_unit)
    unit = key_unit if style == "keyframes" else "pixel"
    for fmt in ("auto", STYLES[style]):
        schedule = compile_latent(text, len(prompts), fmt=fmt, fps=fps, key_unit=unit)
        assert list(schedule.prompts) == prompts
        assert all(foreign_mark(p) is None for p in schedule.unique)


def assert_one_prompt_per_frame_in_order(schedule, frames, order):
    """Every latent frame has exactly one prompt; runs follow the text's order (monotone boundaries)."""
    assert schedule.latent_frames == frames and all(schedule.prompts)
    starts = [first for first, _, _ in schedule.runs()]
    assert starts == sorted(starts) and starts[0] == 0
    assert [prompt for _, _, prompt in schedule.runs()] == order


@settings(max_examples=80, deadline=None)
@given(weights=st.lists(st.integers(1, 300), min_size=1, max_size=8), frames=st.integers(1, 60),
       style=st.sampled_from(["inline", "blocks", "weights"]))
def test_prompt_relay_shares_follow_the_one_spread_rule(weights, frames, style):
    prompts = [f"segment {chr(97 + i)}" for i in range(len(weights))]
    ends = [sum(weights[:i + 1]) for i in range(len(weights))]
    if style == "inline":
        text = " | ".join(f"{p} [{e - w}-{e}]" for p, w, e in zip(prompts, weights, ends))
    elif style == "blocks":
        text = "\n".join(f"Beat {e - w}-{e}:\n{p}" for p, w, e in zip(prompts, weights, ends))
    else:
        text = " | ".join(f"{p} [{w}]" for p, w in zip(prompts, weights))
    try:
        bounds = spread_boundaries(weights, frames)
    except PromptScheduleError:
        with pytest.raises(PromptScheduleError):
            compile_latent(text, frames)
        return
    schedule = compile_latent(text, frames)
    assert_one_prompt_per_frame_in_order(schedule, frames, prompts)
    assert [first for first, _, _ in schedule.runs()] == bounds[:-1]


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True), fps=FPS,
       frames=st.integers(1, 40), leading=st.booleans())
def test_framepack_stamps_give_monotone_boundaries(times, fps, frames, leading):
    seconds = ([] if leading else [0.0]) + sorted(t / 20 for t in times)
    prompts = [f"moment {chr(97 + i)}" for i in range(len(seconds))]
    text = ("base " if leading else "") + " ".join(f"[{s:g}s: {p}]" for s, p in zip(seconds, prompts))
    latents = [fm.latent_of_seconds(s, fps) for s in seconds]
    valid = latents == sorted(set(latents)) and latents[-1] < frames and (not leading or latents[0] > 0)
    if not valid:
        with pytest.raises(PromptScheduleError):
            compile_latent(text, frames, fps=fps)
        return
    schedule = compile_latent(text, frames, fps=fps)
    assert_one_prompt_per_frame_in_order(schedule, frames, (["base"] if leading else []) + prompts)
    assert [first for first, _, _ in schedule.runs()] == ([0] if leading else []) + latents


@settings(max_examples=60, deadline=None)
@given(shots=st.lists(PROMPT, min_size=1, max_size=8), scene=PROMPT, frames=st.integers(1, 40))
def test_holocine_shots_share_the_video_equally(shots, scene, frames):
    text = f"[global caption] {scene} [per shot caption] " + " [shot cut] ".join(shots)
    if len(shots) > frames:
        with pytest.raises(PromptScheduleError, match="prompts for"):
            compile_latent(text, frames)
        return
    schedule = compile_latent(text, frames)
    bounds = spread_boundaries([1] * len(shots), frames)
    for shot, start, stop in zip(shots, bounds, bounds[1:]):
        assert set(schedule.prompts[start:stop]) == {join_prompt(scene, shot)}


def test_render_refuses_what_would_read_back_differently():
    with pytest.raises(PromptScheduleError, match="cannot be written as lines"):
        render_story(["#1 hit", "b"], "lines")
    with pytest.raises(PromptScheduleError, match="syntax 'yaml' is not known"):
        render_story(["a"], "yaml")
    assert render_story(["#1 hit", "b"], "json") == '{\n "1": "#1 hit",\n "2": "b"\n}'


# ---- the timeline route's logic -------------------------------------------------------------------
def test_timeline_answers_segments_in_seconds_pixel_and_latent_frames():
    answer = timeline({"text": "a fox | the fox drinks | a fox", "length": 81, "length_unit": "pixel",
                       "format": "auto", "fps": "16", "prefix": "", "suffix": "", "global_prompt": ""})
    assert answer["ok"] and answer["format"] == "pipes" and answer["detected"]
    assert (answer["latent_frames"], answer["pixel_frames"], answer["seconds"], answer["distinct"]) == (21, 81, 5.0625, 2)
    assert [s["latent"] for s in answer["segments"]] == [[0, 6], [7, 13], [14, 20]]
    assert [s["pixel"] for s in answer["segments"]] == [[0, 24], [25, 52], [53, 80]]
    assert [s["seconds"] for s in answer["segments"]] == [[0.0, 1.5625], [1.5625, 3.3125], [3.3125, 5.0625]]
    assert [s["number"] for s in answer["segments"]] == [1, 2, 1]


@pytest.mark.parametrize("request_body, fragment", [
    ({"text": "a | b\nc"}, "line 2: 'c' starts a new line without a |"),
    ({"text": "a", "length": "many"}, "length = 'many' is not a number"),
    ({"text": "  "}, "prompt text is empty"),
    ({"text": "a", "format": "yaml"}, "format = 'yaml' is not known"),
])
def test_timeline_reports_the_parse_error(request_body, fragment):
    answer = timeline(request_body)
    assert answer["ok"] is False and fragment in answer["error"]
