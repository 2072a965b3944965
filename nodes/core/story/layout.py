"""What every syntax reader returns, and how it becomes one prompt per latent frame.

A reader gives `Piece`s, either timed (each starts at a latent frame and holds until the next one
starts, or until its own end) or spread (weights shared out by the one even-spread rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import frames as fm
from .errors import PromptScheduleError
from .spread import spread_evenly


@dataclass(frozen=True)
class Piece:
    prompt: str
    where: str  # place in the text for messages: "line 3", 'key "8"', "segment 2"
    start: int | None = None  # timed: latent frame where the prompt starts
    end: int | None = None  # timed: latent frame where it stops (exclusive); None = where the next starts
    weight: object = 1  # spread: share of the video (int, Fraction or decimal string)


@dataclass(frozen=True)
class Layout:
    pieces: tuple[Piece, ...]
    timed: bool
    base: Piece | None = None  # timed: prompt of the frames no piece covers (FramePack's leading text)
    shared: str = ""  # joined before every prompt (HoloCine's global caption)


def _frames_text(first: int, stop: int) -> str:
    pixels = f"pixel frames {fm.pixel_range_of_latent(first)[0]}-{fm.pixel_range_of_latent(stop - 1)[-1]}"
    latents = f"latent frame {first}" if stop - first == 1 else f"latent frames {first}-{stop - 1}"
    return f"{latents} ({pixels})"


def _check_order(pieces: tuple[Piece, ...]) -> None:
    for prev, cur in zip(pieces, pieces[1:]):
        if cur.start == prev.start:
            raise PromptScheduleError(f"{cur.where}: falls on latent frame {cur.start}, the same as {prev.where}. "
                                      "Fix: keep one of them, or space keyframes at least 4 pixel frames apart")
        if cur.start < prev.start:
            raise PromptScheduleError(f"{cur.where}: latent frame {cur.start} comes after {prev.where} (latent "
                                      f"frame {prev.start}); keys must increase. Fix: sort the keyframes")
        if prev.end is not None and cur.start < prev.end:
            raise PromptScheduleError(f"{cur.where}: starts at latent frame {cur.start}, inside {prev.where} "
                                      f"(latent frames {prev.start}-{prev.end - 1}). Fix: end {prev.where} "
                                      "earlier or start this one later")


def _fill(prompts: list, first: int, stop: int, base: Piece | None, reason: str) -> bool:
    if stop <= first:
        return False
    if base is None:
        raise PromptScheduleError(f"{_frames_text(first, stop)} have no prompt: {reason}. Fix: cover them with a "
                                  "prompt, or start the text with a prompt that fills the gaps")
    prompts[first:stop] = [base.prompt] * (stop - first)
    return True


def _lay_out_timed(layout: Layout, frames: int) -> list[str]:
    pieces, base = layout.pieces, layout.base
    first = pieces[0]
    if first.start != 0 and base is None:
        raise PromptScheduleError(f"{first.where}: the first keyframe is at latent frame {first.start}, so the "
                                  "frames before it have no prompt. Fix: start at the first frame")
    _check_order(pieces)
    prompts: list = [None] * frames
    used = _fill(prompts, 0, first.start, base, f"{first.where} starts at latent frame {first.start}")
    for piece, nxt in zip(pieces, pieces[1:] + (None,)):
        stop = frames if nxt is None else nxt.start
        end = min(stop, frames if piece.end is None else piece.end)
        prompts[piece.start:end] = [piece.prompt] * (end - piece.start)
        if end < stop:
            used |= _fill(prompts, end, stop, base, f"{piece.where} ends at latent frame {end}")
    if base is not None and not used:
        raise PromptScheduleError(f"{base.where}: this prompt is never shown: the sections cover the whole video. "
                                  "Fix: remove it, or move it into the global prompt")
    return prompts


def lay_out(layout: Layout, frames: int) -> list[str]:
    """One prompt per latent frame of a `frames`-latent video (`shared` not joined yet)."""
    if not layout.pieces:
        raise PromptScheduleError("the text holds no prompt. Fix: write at least one prompt")
    if layout.timed:
        return _lay_out_timed(layout, frames)
    return spread_evenly([p.prompt for p in layout.pieces], frames, [p.weight for p in layout.pieces])
