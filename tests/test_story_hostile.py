"""The story compiler under hostile input: every reader (each syntax, auto-detection, the mark
checks) answers any text up to 64 KB in under 0.5 s of CPU time, with a schedule or the pack's
PromptScheduleError; never OverflowError, RecursionError, MemoryError or another escape. Numbers
outside the domain (non-finite, huge, thousands of digits, deep JSON, a length above the cap) and
syntax marks assembled from the prefix / global prompt / suffix and the story are refused with the
input, the value and the fix.

CPU time (time.process_time) is measured, not wall time, so a busy shared machine does not fail the
test; the former readers took 6 s to 100 s on some of these inputs.
"""

from __future__ import annotations

import math
import time
import tracemalloc

import pytest
from comfyui_framelevel.nodes.core.prompts import (
    FORMATS,
    PromptSchedule,
    PromptScheduleError,
    StoryOptions,
    compile_story,
)
from comfyui_framelevel.nodes.core.story.limits import MAX_LATENT_FRAMES, MAX_PIXEL_FRAMES
from comfyui_framelevel.nodes.core.story.markers import foreign_mark, joined_mark_finder
from comfyui_framelevel.nodes.core.story.text import join_clean_parts, join_prompt
from comfyui_framelevel.nodes.core.story.timeline import timeline
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

LIMIT_S = 0.5
MAX_TEXT = 64 * 1024


def compile_timed(text: str, **options) -> tuple[object, float]:
    """(PromptSchedule or PromptScheduleError, CPU seconds); any other exception fails the test."""
    start = time.process_time()
    try:
        outcome = compile_story(text, StoryOptions(**options))
    except PromptScheduleError as error:
        outcome = error
    except Exception as error:  # noqa: BLE001 - the point of the test is that nothing else escapes
        pytest.fail(f"{type(error).__name__} escaped for {text[:80]!r}... ({len(text)} chars, {options}): {error}")
    return outcome, time.process_time() - start


def assert_fast(text: str, **options):
    outcome, seconds = compile_timed(text, **options)
    assert seconds < LIMIT_S, f"{seconds:.2f} s for {text[:60]!r}... ({len(text)} chars, {options})"
    assert isinstance(outcome, (PromptSchedule, PromptScheduleError))
    return outcome


def refused(text: str, *needles: str, **options) -> str:
    outcome = assert_fast(text, **options)
    assert isinstance(outcome, PromptScheduleError), f"accepted: {outcome}"
    message = str(outcome)
    assert "Fix:" in message and len(message) < 1000, message
    for needle in needles:
        assert needle in message, message
    return message


# --- the inputs measured before the fix -------------------------------------------------------------

SPACES_1K, SPACES_32K = " " * 1000, " " * 32000


@pytest.mark.parametrize(("text", "options"), [
    ("0: a" + SPACES_1K + "b", {}),  # keyframe line: 6 s at 1 KB, cubic
    ("0: a" + " " * 2000 + "b", {}),
    ("0: a" + " " * 60000 + "b", {"fmt": "keyframes"}),
    ('"16": "a' + SPACES_32K + 'b' + SPACES_32K, {}),
    ("a" + SPACES_32K + "[" + SPACES_32K, {"fmt": "prompt_relay"}),  # unclosed `[`: quadratic, 5 s
    ("a" + " " * 65000 + "[", {"fmt": "prompt_relay"}),  # 18 s
    ("a |b" + SPACES_32K + "[" + SPACES_32K, {}),
    ("a [" + "1" * 32000 + SPACES_32K, {"fmt": "prompt_relay"}),
    ("[0s: a" + SPACES_32K + "[" + SPACES_32K, {}),
    ("[shot cut]" + SPACES_32K + "[shot" + SPACES_32K, {"fmt": "holocine"}),
    ("Scene 1" + SPACES_32K + "-" + SPACES_32K, {}),
    ("|" * 65000, {}),
    ("|a" * 32000, {"fmt": "pipes"}),
    ("[shot cut] a " * 5000, {"fmt": "holocine"}),
])
def test_measured_backtracking_inputs_answer_fast(text, options):
    assert_fast(text, **options)


def test_long_space_runs_still_read_as_before():
    keyframe = assert_fast("0: a" + SPACES_1K + "b ,  \n8: c", length=21, length_unit="latent", key_unit="latent")
    assert keyframe.prompts[0] == "a b" and keyframe.prompts[8] == "c"
    relay = assert_fast("a" + SPACES_1K + "[1-3] | b [3-4]", length=4, length_unit="latent")
    assert relay.prompts == ("a", "a", "a", "b")
    untagged = assert_fast("a" + SPACES_32K + "[", fmt="prompt_relay", length=1, length_unit="latent")
    assert untagged.prompts == ("a [",)


@pytest.mark.parametrize(("length", "unit"), [
    (math.inf, "pixel"), (-math.inf, "pixel"), (math.nan, "pixel"), (10 ** 400, "pixel"), (10 ** 9, "pixel"),
    (MAX_PIXEL_FRAMES + 1, "pixel"), (MAX_LATENT_FRAMES + 1, "latent"), (0, "pixel"), (-5, "latent"),
    (81.5, "pixel"), ("81", "pixel"), (None, "pixel"), (1e300, "latent"),
])
def test_length_outside_the_domain_is_refused(length, unit):
    refused("0: a\n4: b", "length =", "Fix:", length=length, length_unit=unit)


def test_length_cap_itself_is_accepted():
    assert assert_fast("a | b", length=MAX_PIXEL_FRAMES).latent_frames == MAX_LATENT_FRAMES
    assert assert_fast("a | b", length=MAX_LATENT_FRAMES, length_unit="latent").latent_frames == MAX_LATENT_FRAMES
    assert assert_fast("a", length=81.0).latent_frames == 21


def test_absurd_length_allocates_nothing_before_it_is_refused():
    tracemalloc.start()
    try:
        refused("0: a\n4: b", "length =", length=10 ** 9)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("fps", [math.nan, math.inf, -math.inf, 0, -16, 1e6, 10 ** 400, "fast", None])
def test_fps_outside_the_domain_is_refused(fps):
    refused("a cat", "fps =", fps=fps)


@pytest.mark.parametrize(("text", "options", "needle"), [
    ("[" + "9" * 400 + "s: a cat]", {}, "digits"),  # was OverflowError
    ("[0s: a] [" + "9" * 400 + "s-" + "9" * 401 + "s: b]", {}, "digits"),
    ("1" * 5000 + ": a", {}, "5,000 digits"),
    ("1" * 5000 + ": a", {"key_unit": "seconds"}, "5,000 digits"),
    ("0." + "1" * 5000 + ": a", {"key_unit": "seconds"}, "digits"),
    ('"' + "1" * 5000 + '": "a",', {}, "digits"),
    ('{"' + "1" * 5000 + '": "a"}', {}, "5,000 digits"),  # was ValueError from int()
    ('{"1": ' + "1" * 5000 + "}", {}, "is not text"),  # was ValueError from json
    ('{"1": 1e99999}', {}, "is not text"),
    ('["a", ' + "9" * 5000 + "]", {}, "is not text"),
    ("a [" + "1" * 5000 + "] | b [1]", {}, "5,000 digits"),
    ("a [0-" + "1" * 5000 + "] | b [0-1]", {}, "digits"),
    ("Scene 0-" + "1" * 5000 + ":\na\nScene 1-2:\nb", {}, "digits"),
])
def test_huge_numbers_in_the_story_are_refused(text, options, needle):
    refused(text, needle, **options)


@pytest.mark.parametrize(("text", "fmt"), [
    ('{"1": ' + "[" * 100000 + "]" * 100000 + "}", "auto"),  # was RecursionError
    ("[" * 100000 + "]" * 100000, "list"),
    ('["a", ' + '{"x": ' * 50000 + '"b"' + "}" * 50000 + "]", "list"),
    ("{" * 30000, "json"),
])
def test_deep_json_nesting_is_refused(text, fmt):
    refused(text, "nests brackets more than", fmt=fmt)


def test_shallow_nesting_keeps_its_own_message():
    refused('{"1": ["a"]}', "is not text")
    refused('["a", "b \\" [[[[[[[[[[[[[[[[[[[[[[[[[["]', fmt="list", length=1, length_unit="latent")
    assert assert_fast('["a", "b \\" [[[[[[[[[[[[[[[[[[[[[[[[[["]').prompts[-1] == 'b " [[[[[[[[[[[[[[[[[[[[[[[[[['


def test_json_of_the_wrong_shape_is_refused_not_crashed():
    refused('["ab", "cd"]', "not an object", fmt="json")
    refused("[]", fmt="json")


@pytest.mark.parametrize(("story", "parts"), [
    ("] a cat", {"prefix": "[2"}),  # `[2 ] a cat` reached the encoder
    ("s: a cat", {"prefix": "[0"}),
    ("shot cut] a cat", {"prefix": "["}),
    ("caption] a cat", {"global_prompt": "[per shot"}),
    ("a cat [2", {"suffix": "]"}),
    ("-", {"prefix": "[1", "suffix": "3] x"}),
    ("a cat", {"global_prompt": "style [1", "prefix": "- 4] x"}),
    ("[per shot caption] a [shot cut] b [1", {"prefix": "x", "suffix": "] y"}),
    ("0: " + "9" * 300 + "\n4: b", {"prefix": "[", "suffix": "s]"}),
])
def test_parts_joined_with_a_comma_assemble_no_mark(story, parts):
    """The ", " between parts that end without punctuation breaks every bracketed mark (no mark holds
    a comma): `[2` + `] a cat` reads `[2, ] a cat`, which reaches the encoder as words."""
    schedule = assert_fast(story, **parts)
    assert not isinstance(schedule, PromptScheduleError), schedule
    assert all(foreign_mark(prompt) is None for prompt in schedule.unique), schedule.unique


def test_a_long_prefix_is_read_once_not_once_per_prompt():
    lines = "\n".join(f"p{i}" for i in range(8000))
    schedule = assert_fast(lines, prefix="[ " * 500, suffix="[1", length=MAX_PIXEL_FRAMES)
    assert schedule.prompts[0].startswith("[ [ ") and schedule.prompts[-1].endswith("p7999, [1")
    refused("\n".join(f"p{i}" for i in range(16000)), "characters", prefix="x" * 30000, length=MAX_PIXEL_FRAMES)


def test_brackets_that_make_no_mark_are_kept():
    schedule = assert_fast("a cat", prefix="[note]", suffix="[draft", global_prompt="[ ]")
    assert schedule.prompts[0] == "[ ], [note], a cat, [draft"


def test_timeline_answers_hostile_settings_with_an_error():
    for request in ({"text": "a", "length": math.inf}, {"text": "a", "length": "1" * 5000},
                    {"text": "a", "fps": "nan"}, {"text": "a", "length": 10 ** 9}):
        answer = timeline(request)
        assert answer["ok"] is False and "Fix:" in answer["error"]


# --- adversarial generators -----------------------------------------------------------------------

ATOMS = (" ", "\t", "\n", "  \n", "[", "]", "|", ":", "-", ",", '"', "{", "}", "s", "#", ".", "\\", "0", "7",
         "12", "3.5", "١", "a cat", "Scene 1:", "Shot 2-4:", "Scene", "[shot cut]", "[global caption]",
         "[per shot caption]", "[2s:", "[1s-3s]", "[4s]", "[0-50]", "[2]", '"16": "x",', "0: x", "8:", '{"1": "',
         '["', "[ 1 -", "[ 2 s", " | ")
RUN = st.one_of(st.integers(1, 3), st.integers(200, 2000), st.integers(8000, 40000))


@st.composite
def hostile_texts(draw) -> str:
    """Long runs of spaces, separators and digits, unclosed brackets, repeated headers and tags, and
    syntaxes mixed, up to 64 KB."""
    chunks = draw(st.lists(st.tuples(st.sampled_from(ATOMS), RUN), min_size=1, max_size=6))
    text = "".join(atom * count for atom, count in chunks)
    repeat = draw(st.sampled_from([1, 1, 50, 4000]))
    return (text * max(1, min(repeat, MAX_TEXT // max(len(text), 1))))[:MAX_TEXT]


SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


@settings(max_examples=60, **SETTINGS)
@given(text=hostile_texts(), length=st.sampled_from([(81, "pixel"), (MAX_PIXEL_FRAMES, "pixel"), (7, "latent")]),
       key_unit=st.sampled_from(["pixel", "latent", "seconds"]))
def test_every_reader_answers_hostile_text_fast(text, length, key_unit):
    for fmt in FORMATS:
        assert_fast(text, fmt=fmt, length=length[0], length_unit=length[1], key_unit=key_unit)


PART = st.lists(st.sampled_from(ATOMS[:25] + ("1", "99", "per", "shot", "cut", "caption", "global")),
                max_size=6).map("".join)


@settings(max_examples=40, **SETTINGS)
@given(text=hostile_texts(), prefix=PART, suffix=PART, global_prompt=PART,
       fps=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30)),
       length=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 400, 10 ** 400),
                        st.integers(1, 200)))
def test_hostile_settings_and_parts_never_escape(text, prefix, suffix, global_prompt, fps, length):
    assert_fast(text[:4096], prefix=prefix, suffix=suffix, global_prompt=global_prompt, fps=fps, length=length)


MARKISH = st.lists(st.sampled_from(["[", "]", ":", " ", "1", "22", ".", "-", "s", "shot", "cut", "per", "caption",
                                    "global", "a", "x"]), max_size=8).map(lambda tokens: join_prompt("".join(tokens)))


@settings(max_examples=400, **SETTINGS)
@given(before=MARKISH, prompt=MARKISH, after=MARKISH)
def test_joined_mark_finder_agrees_with_reading_the_whole_joined_text(before, prompt, after):
    assume(prompt and not any(foreign_mark(part) for part in (before, prompt, after)))
    whole = join_clean_parts(before, prompt, after)
    assert (joined_mark_finder(before, after)(prompt) is not None) == (foreign_mark(whole) is not None), whole
