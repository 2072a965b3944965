"""Story text -> PromptSchedule: detect (or take) the syntax, read it, refuse leftover marks, lay the
prompts over the latent frames and join the global prompt, prefix and suffix."""

from __future__ import annotations

from dataclasses import dataclass

from .detect import detect_format
from .errors import PromptScheduleError
from .framepack import read_framepack
from .holocine import read_holocine
from .json_story import read_json_list, read_json_object
from .layout import Layout, lay_out
from .limits import MAX_SCHEDULE_CHARS, checked_fps, checked_length
from .lines import read_keyframe_lines, read_plain_lines
from .markers import foreign_mark, joined_mark_finder, refuse_marks
from .reading import KEY_UNITS, Reading
from .relay import read_pipes, read_prompt_relay
from .schedule import PromptSchedule
from .text import join_clean_parts, join_prompt, shown, shown_value

READERS = {
    "json": read_json_object,
    "list": read_json_list,
    "keyframes": read_keyframe_lines,
    "lines": read_plain_lines,
    "pipes": read_pipes,
    "prompt_relay": read_prompt_relay,
    "framepack": read_framepack,
    "holocine": read_holocine,
}
FORMATS = ("auto", *READERS)  # the order of the first five is the node's saved-workflow order
LENGTH_UNITS = ("pixel", "latent")
JSON_FORMATS = ("json", "list")


@dataclass(frozen=True)
class StoryOptions:
    """How a story is read: video length, syntax, key unit, frame rate and the text joined to every prompt.

    length: 1 to 100,000 pixel frames (25,000 latent frames, 104 min at 16 fps), a cap no real video
    reaches; fps: above 0 and at most 1000. Other values are refused before any work (see limits.py).
    """

    length: int = 81
    length_unit: str = "pixel"
    fps: float = 16.0
    fmt: str = "auto"
    key_unit: str = "pixel"
    prefix: str = ""
    suffix: str = ""
    global_prompt: str = ""

    def latent_frames(self) -> int:
        """The video's latent frames; refused unless `length` is a whole number from 1 to the cap
        (limits.MAX_PIXEL_FRAMES = 100,000 pixel frames = 25,000 latent frames)."""
        _check_choice("length unit", self.length_unit, LENGTH_UNITS)
        return checked_length(self.length, self.length_unit)

    def reading(self) -> Reading:
        _check_choice("format", self.fmt, FORMATS)
        _check_choice("key unit", self.key_unit, KEY_UNITS)
        fps = checked_fps(self.fps)
        return Reading(self.latent_frames(), fps, self.key_unit)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise PromptScheduleError(f"{name} = {shown_value(value)} is not known. Fix: use one of {', '.join(choices)}")


def _refuse_leftover_marks(layout: Layout, fmt: str, options: StoryOptions) -> None:
    for piece in layout.pieces:
        refuse_marks(piece.prompt, piece.where, line_starts=fmt not in JSON_FORMATS)
    refuse_marks(layout.shared, "the [global caption]", line_starts=False)
    for name in ("global_prompt", "prefix", "suffix"):
        refuse_marks(join_prompt(getattr(options, name)), f"the {name} input", line_starts=False)


def _joined_prompts(layout: Layout, frames: list[str], options: StoryOptions) -> dict[str, str]:
    """Each distinct frame prompt -> its final text (global prompt, global caption, prefix, prompt,
    suffix), joined once per distinct prompt, so a long prefix is not copied once per frame; the
    fixed parts are cleaned once (frame prompts are clean already)."""
    before = join_prompt(options.global_prompt, layout.shared, options.prefix)
    after = join_prompt(options.suffix)
    distinct = dict.fromkeys(frames)
    size = sum(len(before) + len(prompt) + len(after) + 4 for prompt in distinct)
    if size > MAX_SCHEDULE_CHARS:
        raise PromptScheduleError(
            f"the {len(distinct):,} distinct prompts joined with the global prompt, prefix and suffix "
            f"({len(before) + len(after):,} characters each) would make {size:,} characters, more than the "
            f"{MAX_SCHEDULE_CHARS:,} a schedule may hold. Fix: shorten the prefix, suffix or global prompt, or write "
            "fewer distinct prompts")
    return {prompt: join_clean_parts(before, prompt, after) for prompt in distinct}


def _refuse_joined_marks(joined: dict[str, str], layout: Layout, options: StoryOptions) -> None:
    """A mark assembled across parts (prefix `[2` + prompt `] a cat` -> `[2 ] a cat`) is refused as
    the joined text would hold it; each part alone was checked before."""
    named = (("global_prompt", options.global_prompt), ("[global caption]", layout.shared),
             ("prefix", options.prefix), ("suffix", options.suffix))
    parts = [name for name, value in named if join_prompt(value)]
    if not parts:
        return
    before = join_prompt(options.global_prompt, layout.shared, options.prefix)
    where: dict[str, str] = {}
    for piece in (*layout.pieces, *((layout.base,) if layout.base else ())):
        where.setdefault(piece.prompt, piece.where)
    found = [("the global prompt, [global caption] and prefix", before, foreign_mark(before))]
    find = joined_mark_finder(before, join_prompt(options.suffix))
    found += ((where.get(prompt, "a prompt"), text, find(prompt)) for prompt, text in joined.items())
    for place, text, mark in found:
        if mark is not None:
            raise PromptScheduleError(
                f"{place}: joined with the {' and the '.join(parts)} the prompt reads {shown(text)} and holds "
                f"{mark[1]}, which no part holds alone; it would reach the text encoder as words. Fix: remove "
                f"the bracket or tag split across the {', '.join(parts)} and the story text")


def compile_story(text: str, options: StoryOptions = StoryOptions()) -> PromptSchedule:
    """Compile story text into one prompt per latent frame; every problem raises PromptScheduleError
    naming the place, the value and the fix."""
    reading = options.reading()
    if not isinstance(text, str) or not text.strip():
        raise PromptScheduleError("prompt text is empty. Fix: write at least one prompt")
    for name in ("global_prompt", "prefix", "suffix"):
        if not isinstance(getattr(options, name), (str, type(None))):
            raise PromptScheduleError(f"{name} = {shown_value(getattr(options, name))} is not text. Fix: give text "
                                      "or leave it empty")
    detected = options.fmt == "auto"
    fmt = detect_format(text) if detected else options.fmt
    layout = READERS[fmt](text, reading)
    _refuse_leftover_marks(layout, fmt, options)
    frames = lay_out(layout, reading.frames)
    joined = _joined_prompts(layout, frames, options)
    _refuse_joined_marks(joined, layout, options)
    return PromptSchedule(tuple(joined[p] for p in frames), fmt, reading.fps, detected)
