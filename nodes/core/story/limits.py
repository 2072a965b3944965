"""The bounds of a story: the largest video, frame rate, number and nesting the readers accept.

Every bound lies far beyond any real video, so it only stops hostile or broken input, and it is
checked before any work or memory grows with the value: a length of 10^9 frames is refused, not
allocated; a 5,000-digit key is refused, not converted. Each refusal is a PromptScheduleError that
names the input, the value and the fix.
"""

from __future__ import annotations

import math
import numbers
import operator

from .. import frames as fm
from .errors import PromptScheduleError

MAX_PIXEL_FRAMES = 100_000  # 104 minutes at 16 fps; Wan makes clips of 81 pixel frames
MAX_LATENT_FRAMES = fm.latent_count(MAX_PIXEL_FRAMES)  # 25,000
MAX_FPS = 1000.0
MAX_NUMBER_DIGITS = 15  # digits of one key, time, span or weight (a double holds 15 exactly)
MAX_JSON_DEPTH = 20  # a story needs 1 level ({"1": "text"} or ["text"])
MAX_SCHEDULE_CHARS = 16_000_000  # characters of all distinct prompts after the prefix etc. are joined


def _shown_number(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 60:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole_number(value) -> int | None:
    """`value` as an int when it is a whole finite number (int, integral float, numpy integer), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        pass
    number = _finite(value)
    return int(number) if number is not None and number.is_integer() else None


def _finite(value) -> float | None:
    """`value` as a finite float when it is a real number (text is not), else None."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def checked_length(length, unit: str) -> int:
    """The video length in latent frames; refused unless a whole number from 1 to the cap."""
    cap = MAX_PIXEL_FRAMES if unit == "pixel" else MAX_LATENT_FRAMES
    frames = _whole_number(length)
    if frames is None or not 1 <= frames <= cap:
        problem = ("not a whole number of frames" if frames is None else
                   "a clip needs at least 1 frame" if frames < 1 else
                   f"longer than the {cap:,} {unit} frames a story may cover ({MAX_PIXEL_FRAMES:,} pixel frames = "
                   f"{MAX_LATENT_FRAMES:,} latent frames, {MAX_PIXEL_FRAMES / 16 / 60:.0f} min at 16 fps)")
        raise PromptScheduleError(f"length = {_shown_number(length)} {unit} frames: {problem}. Fix: give a whole "
                                  f"number from 1 to {cap:,} (81 pixel frames = 21 latent frames)")
    return fm.latent_count(frames) if unit == "pixel" else frames


def checked_fps(fps) -> float:
    """The frame rate as a float; refused unless finite, > 0 and at most MAX_FPS."""
    rate = _finite(fps)
    if rate is None or not 0 < rate <= MAX_FPS:
        raise PromptScheduleError(f"fps = {_shown_number(fps)}: the frame rate must be a number above 0 and at most "
                                  f"{MAX_FPS:g}. Fix: give the frame rate of the video, e.g. 16 (Wan 2.1)")
    return rate


def checked_number(text: str, where: str, what: str) -> str:
    """A number written in the story (key, time, span, weight), refused when it has more digits than
    any frame, time or share needs; returned unchanged for float() / Fraction()."""
    digits = sum(char.isdigit() for char in text)
    if digits > MAX_NUMBER_DIGITS:
        head = text.strip()[:12]
        raise PromptScheduleError(f"{where}: the {what} {head}... has {digits:,} digits; numbers in a story have at "
                                  f"most {MAX_NUMBER_DIGITS}. Fix: write the intended frame, time or weight")
    return text
