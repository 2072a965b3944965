"""Every syntax users type, read onto latent frames with Wan's frame math: the README's worked
examples, each syntax's own rules and refusals, auto-detection, mixed text, the global prompt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from comfyui_framelevel.nodes.core import frames as fm
from comfyui_framelevel.nodes.core.prompts import PromptScheduleError, compile_prompt_schedule

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.compile(r"#### `(?P<format>\w+)`[^\n]*\n(?:[^\n]*\n)*?```story\n(?P<text>.*?)```\n→ latent "
                     r"`(?P<latent>[^`]*)`; pixel (?P<pixel>[^;]*); seconds (?P<seconds>[^\n]*)", re.DOTALL)


def runs(text, frames=21, **kw):
    """(first latent, last latent, prompt) of each run over `frames` latent frames."""
    return compile_prompt_schedule(text, length=frames, unit="latent", **kw).runs()


def raises(text, fragment, frames=21, **kw):
    with pytest.raises(PromptScheduleError) as info:
        compile_prompt_schedule(text, length=frames, unit="latent", **kw)
    assert fragment in str(info.value), str(info.value)
    assert "Fix:" in str(info.value)
    return str(info.value)


# ---- the README's worked examples (81 pixel frames at 16 fps = 21 latent frames) ----------------
def readme_examples():
    found = [pytest.param(m, id=f"{m['format']}-{i}") for i, m in enumerate(EXAMPLE.finditer(README.read_text()))]
    assert len(found) >= 12, "README lost its worked examples"
    return found


@pytest.mark.parametrize("example", readme_examples())
def test_readme_worked_examples_give_the_documented_frames(example):
    schedule = compile_prompt_schedule(example["text"], length=81, fps=16.0)
    assert schedule.source_format == example["format"] and schedule.detected
    spans = schedule.runs()
    assert " · ".join(f"{a}-{b}" for a, b, _ in spans) == example["latent"]
    pixels = [(fm.pixel_range_of_latent(a)[0], fm.pixel_range_of_latent(b)[-1]) for a, b, _ in spans]
    assert " · ".join(f"{p}-{q}" for p, q in pixels) == example["pixel"]
    assert " · ".join(f"{p / 16:.2f}-{(q + 1) / 16:.2f}" for p, q in pixels) == example["seconds"]
    assert all("[" not in prompt and "|" not in prompt for _, _, prompt in spans)


# ---- | prompts (WanVideoWrapper) ------------------------------------------------------------------
def test_pipes_split_like_wanvideowrapper():
    # section size F / N latent frames: frame f shows prompt floor(f * N / F)
    assert runs("a | b | c | d", 10) == [(0, 2, "a"), (3, 4, "b"), (5, 7, "c"), (8, 9, "d")]
    assert runs("a |\nb |\nc", 6) == [(0, 1, "a"), (2, 3, "b"), (4, 5, "c")]  # breaks next to | are fine
    assert runs("a long\nfirst | b", 4, fmt="pipes") == [(0, 1, "a long first"), (2, 3, "b")]  # chosen: breaks join


def test_pipes_refuse_empty_segments_and_ambiguous_line_breaks():
    raises("a | | b", "segment 2 (line 1) is empty")
    message = raises("a long\nfirst | b", "line 2: 'first | b' starts a new line without a |")
    assert "choose the format pipes" in message


# ---- Prompt Relay ---------------------------------------------------------------------------------
def test_prompt_relay_spans_weights_and_lines():
    assert runs("a [0-50] | b [50-150] | c [150-200]") == [(0, 5, "a"), (6, 15, "b"), (16, 20, "c")]
    assert runs("a [10-60] | b [0-100] | c [7-57]") == runs("a [1] | b [2] | c [1]")  # only the span matters
    assert runs("a [1.5]\nb [0.5]", 8) == [(0, 5, "a"), (6, 7, "b")]  # one segment per line without |


def test_prompt_relay_blocks():
    blocks = "Scene 1:\na man\nwalks\n\nScene 2: he stops\nScene 3:\nhe runs"
    assert runs(blocks) == [(0, 6, "a man walks"), (7, 13, "he stops"), (14, 20, "he runs")]
    assert runs("Part 1-2:\na\nPart 2-5:\nb", 8) == [(0, 1, "a"), (2, 7, "b")]  # 1:3
    assert runs("The year 1920: a man\nwalks", 2) == [(0, 0, "The year 1920: a man"), (1, 1, "walks")]  # no header


@pytest.mark.parametrize("text, fragment", [
    ("a [0-50] | b | c [150-200]", "segment 2 (line 1) has no [a-b] span or [w] weight while segment 1"),
    ("a [5-5] | b [1]", "segment 1 (line 1): [5-5] gives a share of 0"),
    ("a [2] crowd | b", "holds a Prompt Relay span"),
    ("intro\nScene 1:\na", "line 1: 'intro' comes before the first block header"),
    ("Scene 1:\na\nScene 2-4:\nb", "line 1 has no range in its header"),
    ("Scene 1:\nScene 2:\nb", "the block of line 1: the prompt is empty"),
    ("Scene 1:\na | b\nScene 2:\nc", "the text mixes two syntaxes"),
])
def test_prompt_relay_refusals(text, fragment):
    raises(text, fragment)


# ---- FramePack timestamps -------------------------------------------------------------------------
def test_framepack_times_map_to_the_latent_frame_holding_them():
    # 16 fps: 1 s = pixel frame 16 = latent frame 4 (pixel frames 13-16); 2.5 s = pixel 40 = latent 10
    assert runs("[0s: a] [1s: b] [2.5s: c]") == [(0, 3, "a"), (4, 9, "b"), (10, 20, "c")]
    assert runs("a [1s-2s: b]") == [(0, 3, "a"), (4, 7, "b"), (8, 20, "a")]  # the leading text fills the gap
    assert runs("[0s] a\n[1s] b [2s-5s: c]") == [(0, 3, "a"), (4, 7, "b"), (8, 20, "c")]  # open form; 5 s = end
    assert runs("[0s: a [character1] walks] [1s: b]") == [(0, 3, "a [character1] walks"), (4, 20, "b")]
    assert runs("[0s: a] [1s: b]", fps=8.0) == [(0, 1, "a"), (2, 20, "b")]  # 1 s at 8 fps = pixel frame 8


@pytest.mark.parametrize("text, fragment", [
    ("[1s: a] [2s: b]", "the first keyframe is at latent frame 4"),
    ("[0s: a] [1s-2s: b]", "latent frames 8-20 (pixel frames 29-80) have no prompt"),
    ("base [0s: a] [1s: b]", "the leading text: this prompt is never shown"),
    ("[0s-2s: a] [1s: b]", "starts at latent frame 4, inside line 1 ([0s-2s])"),
    ("[0s: a] [2s: b] [1s: c]", "keys must increase"),
    ("[0s: a] [9s: b]", "9 s is latent frame 36, past the end of the video (21 latent frames = 81 pixel"),
    ("[0s: a] stray [1s: b]", "'stray' stands outside any [Ns: ...] section"),
    ("[0s: a] [1s: b] tail", "'tail' stands after the last section"),
    ("[0s: a] [2s-1s: b]", "ends at 1 s, not after its start 2 s"),
    ("[0s: a] [1s: b", "has no closing ]"),
])
def test_framepack_refusals(text, fragment):
    raises(text, fragment)


# ---- HoloCine ------------------------------------------------------------------------------------
def test_holocine_joins_the_global_caption_to_every_shot():
    text = "[global caption] Two friends at a lake.\n[per shot caption] wide shot |\n[shot cut] close-up |"
    assert runs(text, 4) == [(0, 1, "Two friends at a lake. wide shot"), (2, 3, "Two friends at a lake. close-up")]
    assert runs("[per shot caption] a [shot cut] b [shot cut] c", 3) == [(0, 0, "a"), (1, 1, "b"), (2, 2, "c")]


@pytest.mark.parametrize("text, fragment", [
    ("[per shot caption] a [global caption] g", "[global caption] comes after [per shot caption]"),
    ("[global caption] g", "no shot"),
    ("intro [per shot caption] a", "stands before the first HoloCine tag"),
    ("[per shot caption] a [shot cut] [shot cut] c", "the prompt is empty"),
])
def test_holocine_refusals(text, fragment):
    raises(text, fragment)


def test_holocine_refuses_a_pipe_inside_a_shot():
    raises("[per shot caption] a | b [shot cut] c", "the text mixes two syntaxes")
    raises("[per shot caption] a | b [shot cut] c", "holds a | separator", fmt="holocine")


# ---- keyframe lines (FizzNodes: pixel frames) ----------------------------------------------------
def test_fizznodes_keys_are_pixel_frames():
    text = '"0": "a",\n"24": "b",\n"48": "c",'  # pixel 24 -> latent 6 (21-24), 48 -> latent 12 (45-48)
    assert runs(text) == [(0, 5, "a"), (6, 11, "b"), (12, 20, "c")]
    assert runs("0: a\n2: b", key_unit="latent") == [(0, 1, "a"), (2, 20, "b")]


# ---- auto-detection, mixing, explicit choice -------------------------------------------------------
@pytest.mark.parametrize("text, fmt", [
    ('{"1": "a"}', "json"), ('["a", "b"]', "list"), ("a\nb", "lines"), ("a | b", "pipes"), ("0: a", "keyframes"),
    ("a [2] | b [1]", "prompt_relay"), ("Shot 1:\na", "prompt_relay"), ("[0s: a]", "framepack"),
    ("[per shot caption] a", "holocine"), ("a fox [character1] runs", "lines"),
])
def test_auto_detection(text, fmt):
    schedule = compile_prompt_schedule(text, length=9)
    assert schedule.source_format == fmt and schedule.detected
    assert f"format {fmt} (detected)" in schedule.preview()
    assert "(chosen)" in compile_prompt_schedule(text, length=9, fmt=fmt).preview()


@pytest.mark.parametrize("text, first, second", [
    ("0: a\n4: b | c", "line 1: '0: a' is a keyframe line", "line 2: '4: b | c' is a | separator"),
    ("a | b\n[2s: c]", "line 1: 'a | b' is a | separator", "line 2: '[2s:' is a FramePack timestamp"),
    ("[per shot caption] a [2s: b]", "'[per shot caption]' is a HoloCine tag", "'[2s:' is a FramePack"),
    ("Scene 1:\n[1s: a]", "line 1: 'Scene 1:' is a Prompt Relay block header", "line 2: '[1s:'"),
])
def test_mixed_syntaxes_are_refused_with_both_places(text, first, second):
    message = raises(text, "the text mixes two syntaxes")
    assert first in message and second in message


def test_explicit_format_overrides_detection_but_lets_no_mark_through():
    assert runs("Scene 1: a\nScene 2: b", 2, fmt="prompt_relay") == [(0, 0, "a"), (1, 1, "b")]
    raises("Scene 1: a\nScene 2: b", "line 1: the prompt 'Scene 1: a' holds a block header ('Scene 1:')", 2,
           fmt="lines")
    raises("12: a\n30: b", "holds a keyframe number ('12:')", 2, fmt="lines")
    raises("a | b", "holds a | separator", fmt="lines")
    raises('{"1": "a | b"}', "key \"1\": the prompt 'a | b' holds a | separator", fmt="json")
    raises("0: [2s: a]", "holds a FramePack timestamp", fmt="keyframes")
    raises("a [0-5] | b", "holds a Prompt Relay span", fmt="pipes")
    assert runs('{"1": "Shot 1: a wide view"}', 2) == [(0, 1, "Shot 1: a wide view")]  # JSON values are text


# ---- global prompt, prefix, suffix ---------------------------------------------------------------
def test_global_prompt_joins_every_frame_prompt():
    text = "[global caption] By a lake. [per shot caption] wide [shot cut] close"
    schedule = compile_prompt_schedule(text, length=2, unit="latent", global_prompt="Two friends,\n in autumn.",
                                       prefix="film still:", suffix="35mm")
    assert schedule.prompts == ("Two friends, in autumn. By a lake. film still: wide, 35mm",
                                "Two friends, in autumn. By a lake. film still: close, 35mm")
    raises("a", "the global_prompt input: the prompt 'x | y' holds a | separator", global_prompt="x | y")
