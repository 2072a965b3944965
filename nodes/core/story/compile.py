"""Story text -> PromptSchedule: detect (or take) the syntax, read it, refuse leftover marks, lay the
prompts over the latent frames and join the global prompt, prefix and suffix."""

from __future__ import annotations

from dataclasses import dataclass

from .. import frames as fm
from .detect import detect_format
from .errors import PromptScheduleError
from .framepack import read_framepack
from .holocine import read_holocine
from .json_story import read_json_list, read_json_object
from .layout import Layout, lay_out
from .lines import read_keyframe_lines, read_plain_lines
from .markers import refuse_marks
from .reading import KEY_UNITS, Reading
from .relay import read_pipes, read_prompt_relay
from .schedule import PromptSchedule
from .text import join_prompt

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
    """How a story is read: video length, syntax, key unit, frame rate and the text joined to every prompt."""

    length: int = 81
    length_unit: str = "pixel"
    fps: float = 16.0
    fmt: str = "auto"
    key_unit: str = "pixel"
    prefix: str = ""
    suffix: str = ""
    global_prompt: str = ""

    def latent_frames(self) -> int:
        _check_choice("length unit", self.length_unit, LENGTH_UNITS)
        if int(self.length) != self.length or self.length < 1:
            raise PromptScheduleError(f"length = {self.length} {self.length_unit} frames: a clip needs at least 1 "
                                      "frame. Fix: give a positive frame count (81 pixel frames = 21 latent frames)")
        return fm.latent_count(int(self.length)) if self.length_unit == "pixel" else int(self.length)

    def reading(self) -> Reading:
        _check_choice("format", self.fmt, FORMATS)
        _check_choice("key unit", self.key_unit, KEY_UNITS)
        if self.fps <= 0:
            raise PromptScheduleError(f"fps = {self.fps}: must be > 0. Fix: give the frame rate of the video, e.g. 16")
        return Reading(self.latent_frames(), float(self.fps), self.key_unit)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PromptScheduleError(f"{name} = {value!r} is not known. Fix: use one of {', '.join(choices)}")


def _refuse_leftover_marks(layout: Layout, fmt: str, options: StoryOptions) -> None:
    for piece in layout.pieces:
        refuse_marks(piece.prompt, piece.where, line_starts=fmt not in JSON_FORMATS)
    refuse_marks(layout.shared, "the [global caption]", line_starts=False)
    for name in ("global_prompt", "prefix", "suffix"):
        refuse_marks(join_prompt(getattr(options, name)), f"the {name} input", line_starts=False)


def compile_story(text: str, options: StoryOptions = StoryOptions()) -> PromptSchedule:
    """Compile story text into one prompt per latent frame; every problem raises PromptScheduleError
    naming the place, the value and the fix."""
    reading = options.reading()
    if not isinstance(text, str) or not text.strip():
        raise PromptScheduleError("prompt text is empty. Fix: write at least one prompt")
    detected = options.fmt == "auto"
    fmt = detect_format(text) if detected else options.fmt
    layout = READERS[fmt](text, reading)
    _refuse_leftover_marks(layout, fmt, options)
    prompts = [join_prompt(options.global_prompt, layout.shared, options.prefix, p, options.suffix)
               for p in lay_out(layout, reading.frames)]
    return PromptSchedule(tuple(prompts), fmt, reading.fps, detected)
