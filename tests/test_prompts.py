import json

import pytest
from comfyui_framelevel.nodes.core.prompts import PromptScheduleError, compile_prompt_schedule, fit_index
from comfyui_framelevel.nodes.core.story.spread import spread_boundaries, spread_evenly
from comfyui_framelevel.nodes.core.story.text import join_prompt
from comfyui_framelevel.nodes.story.expand import spread_beats
from hypothesis import given
from hypothesis import strategies as st


def compile_latent(text, frames, **kw):
    return compile_prompt_schedule(text, length=frames, unit="latent", **kw)


def test_paper_json_one_entry_per_latent():
    text = json.dumps({str(i + 1): f"p{i}" for i in range(21)})
    schedule = compile_prompt_schedule(text)  # 81 pixel frames by default
    assert schedule.prompts == tuple(f"p{i}" for i in range(21))
    assert schedule.source_format == "json"
    assert len(schedule.unique) == 21


def test_paper_json_fewer_entries_hold_until_next_key():
    schedule = compile_latent('{"1": "a", "4": "b", "6": "c"}', 8)
    assert schedule.prompts == ("a", "a", "a", "b", "b", "c", "c", "c")
    assert schedule.unique == ("a", "b", "c") and schedule.index == (0, 0, 0, 1, 1, 2, 2, 2)


def test_json_list_and_plain_lines_spread_evenly():
    assert compile_latent('["a", "b", "c"]', 6).prompts == ("a", "a", "b", "b", "c", "c")
    assert compile_latent("a\n\n# comment\nb\nc", 7).prompts == ("a", "a", "a", "b", "b", "c", "c")


@pytest.mark.parametrize("unit,text,expected", [
    ("latent", "0: a\n2: b", ("a", "a", "b", "b", "b")),
    ("pixel", '"0": "a",\n"5": "b",', ("a", "a", "b", "b", "b")),     # pixel 5 -> latent 2
    ("pixel", "0: a\n4: b", ("a", "b", "b", "b", "b")),               # pixel 4 -> latent 1
    ("seconds", "0: a\n0.5: b", ("a", "a", "b", "b", "b")),           # 0.5 s @16 fps = pixel 8 -> latent 2
])
def test_keyframe_lines_in_each_unit(unit, text, expected):
    assert compile_latent(text, 5, key_unit=unit, fps=16).prompts == expected


def test_prefix_suffix_and_length_in_pixels():
    schedule = compile_prompt_schedule("0: a cat", length=9, prefix="cinematic,", suffix="4k")
    assert schedule.latent_frames == 3
    assert schedule.prompts == ("cinematic, a cat, 4k",) * 3


@pytest.mark.parametrize("parts, joined", [
    (("dawn over a lake", "cinematic, natural light"), "dawn over a lake, cinematic, natural light"),
    (("dawn over a lake.", "cinematic"), "dawn over a lake. cinematic"),
    (("film still:", "a cat", "35mm"), "film still: a cat, 35mm"),
    (("  wide   shot ", "", None, "4k!"), "wide shot, 4k!"),
    (("", "  "), ""),
])
def test_parts_are_joined_with_a_comma_unless_they_end_in_punctuation(parts, joined):
    assert join_prompt(*parts) == joined


@pytest.mark.parametrize("text,frames,fragment", [
    ('{"1": "a", "1": "b"}', 4, 'key "1" appears twice'),
    ('{"1": "a", "9": "b"}', 4, "past the end"),
    ('{"0": "a"}', 4, "1-based"),
    ('{"2": "a"}', 4, "first keyframe"),
    ('{"1": "a", "3": "b", "2": "c"}', 4, "keys must increase"),
    ('{"1": "a",}', 4, "line 1, column"),
    ('{"1": "   "}', 4, "empty"),
    ("0: a\n8: b", 2, "past the end"),
    ("0: a\nno key here", 4, "line 2"),
    ("", 4, "empty"),
    ("a\nb\nc", 2, "3 prompts for 2 latent frames"),
    ('["a", 3]', 4, "not text"),
])
def test_bad_input_names_place_and_fix(text, frames, fragment):
    with pytest.raises(PromptScheduleError) as info:
        compile_latent(text, frames, key_unit="latent")
    assert fragment in str(info.value)
    assert "Fix:" in str(info.value)


def test_zero_frames_and_same_latent_keys_refused():
    with pytest.raises(PromptScheduleError, match="at least 1 frame"):
        compile_prompt_schedule("a", length=0)
    with pytest.raises(PromptScheduleError, match="same as line 2"):
        compile_latent("0: a\n2: b\n3: c", 5, key_unit="pixel")  # pixels 2 and 3 are both latent 1


def test_fit_index_holds_last_and_refuses_shorter():
    assert fit_index([0, 1], 4) == [0, 1, 1, 1]
    with pytest.raises(PromptScheduleError, match="would be lost"):
        fit_index([0, 1, 2], 2)


def test_preview_lists_each_run_with_pixel_range():
    preview = compile_prompt_schedule('{"1": "a", "3": "b"}', length=21).preview()
    assert "6 latent frames = 21 pixel frames" in preview
    assert "latent   0-1   pixel    0-4" in preview and "[2] b" in preview


prompt_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="|[]"),
                      min_size=1, max_size=20).filter(lambda s: s.strip() and not s.strip().startswith("#"))


def normalised(prompt: str) -> str:
    return " ".join(prompt.split())


@given(keys=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=10, unique=True),
       frames=st.integers(min_value=1, max_value=61), data=st.data())
def test_json_object_property(keys, frames, data):
    keys = sorted(keys)
    prompts = [data.draw(prompt_text) for _ in keys]
    text = json.dumps({str(k + 1): p for k, p in zip(keys, prompts)})
    if keys[0] != 0 or keys[-1] >= frames:
        with pytest.raises(PromptScheduleError):
            compile_latent(text, frames)
        return
    schedule = compile_latent(text, frames)
    assert schedule.latent_frames == frames
    for k, p in zip(keys, prompts):          # every key starts its prompt exactly at its frame
        assert schedule.prompts[k] == normalised(p)
    bounds = keys + [frames]
    for (start, end), p in zip(zip(bounds, bounds[1:]), prompts):
        assert set(schedule.prompts[start:end]) == {normalised(p)}


@given(n=st.integers(min_value=1, max_value=30), frames=st.integers(min_value=1, max_value=60))
def test_even_spread_property(n, frames):
    text = "\n".join(f"prompt {i}" for i in range(n))
    if n > frames:
        with pytest.raises(PromptScheduleError):
            compile_latent(text, frames)
        return
    prompts = compile_latent(text, frames).prompts
    runs = [prompts.count(f"prompt {i}") for i in range(n)]
    assert sum(runs) == frames and min(runs) >= 1 and max(runs) - min(runs) <= 1
    assert list(prompts) == sorted(prompts, key=lambda p: int(p.split()[1]))   # order kept


@given(n=st.integers(min_value=1, max_value=40), frames=st.integers(min_value=1, max_value=80))
def test_every_spreading_place_uses_the_one_rule(n, frames):
    """The compiler's lines and lists, the LLM beats and the rule itself agree, prompt for prompt."""
    items = [f"beat {i}" for i in range(n)]
    if n > frames:
        with pytest.raises(PromptScheduleError, match=f"{n} prompts for {frames} latent frames"):
            spread_evenly(items, frames)
        return
    expected = [items[f * n // frames] for f in range(frames)]  # WanVideoWrapper: section size F / N
    assert spread_evenly(items, frames) == expected
    assert list(compile_latent("\n".join(items), frames).prompts) == expected
    assert list(compile_latent(json.dumps(items), frames).prompts) == expected
    beats = spread_beats({str(i + 1): item for i, item in enumerate(items)}, frames)
    assert list(beats) == [str(f + 1) for f in range(frames)] and list(beats.values()) == expected


@pytest.mark.parametrize("weights, frames, bounds", [
    ([1, 1, 1], 7, [0, 3, 5, 7]),
    ([1, 2, 1], 8, [0, 2, 6, 8]),
    ([0.1, 0.2, 0.7], 10, [0, 1, 3, 10]),    # exact: 0.1 + 0.2 is 3 frames of 10, not 3.0000000000000004
    (["50", "100", "50"], 21, [0, 6, 16, 21]),  # ceil(21 / 4) = 6, ceil(21 * 3 / 4) = 16
])
def test_weighted_spread_boundaries(weights, frames, bounds):
    assert spread_boundaries(weights, frames) == bounds


def test_a_segment_too_light_for_one_frame_is_refused():
    with pytest.raises(PromptScheduleError, match="prompt 2 .*too short"):
        spread_boundaries([10, 1, 10], 3)  # boundaries 0, 2, 2, 3
