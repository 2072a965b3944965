"""The compiled result: one prompt per latent frame, deduplicated, with its runs and a preview."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import frames as fm
from .errors import PromptScheduleError


@dataclass(frozen=True)
class PromptSchedule:
    """Prompts of every latent frame, deduplicated.

    prompts: one prompt per latent frame; unique: distinct prompts in order of first use;
    index: for each latent frame, its prompt's position in `unique`; source_format: the syntax the
    text was read as; detected: whether that syntax was detected (format auto) or chosen.
    """

    prompts: tuple[str, ...]
    source_format: str
    fps: float = 16.0
    detected: bool = False
    unique: tuple[str, ...] = field(init=False)
    index: tuple[int, ...] = field(init=False)
    _position: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        unique: dict[str, int] = {}
        for prompt in self.prompts:
            unique.setdefault(prompt, len(unique))
        object.__setattr__(self, "unique", tuple(unique))
        object.__setattr__(self, "index", tuple(unique[p] for p in self.prompts))
        object.__setattr__(self, "_position", unique)

    def number_of(self, prompt: str) -> int:
        """1-based number of a distinct prompt (its place in `unique`), found in constant time."""
        return self._position[prompt] + 1

    @property
    def latent_frames(self) -> int:
        return len(self.prompts)

    @property
    def pixel_frames(self) -> int:
        return fm.pixel_count(self.latent_frames)

    def index_for(self, latent_frames: int) -> list[int]:
        """Prompt index per latent frame of a latent with `latent_frames` frames (see fit_index)."""
        return fit_index(self.index, latent_frames)

    def runs(self) -> list[tuple[int, int, str]]:
        """(first latent, last latent, prompt) for each run of equal prompts."""
        out: list[tuple[int, int, str]] = []
        for f, prompt in enumerate(self.prompts):
            if out and out[-1][2] == prompt:
                out[-1] = (out[-1][0], f, prompt)
            else:
                out.append((f, f, prompt))
        return out

    def pixel_runs(self, pixel_frames: int) -> list[tuple[int, int, str]]:
        """(first pixel frame, end pixel frame exclusive, prompt) of each run, for a decoded video of
        `pixel_frames` frames; the last run also takes the trailing frames a non-4k+1 video has."""
        spans = [(fm.pixel_range_of_latent(first)[0], fm.pixel_range_of_latent(last)[-1] + 1, prompt)
                 for first, last, prompt in self.runs()]
        first, _, prompt = spans[-1]
        return spans[:-1] + [(first, pixel_frames, prompt)]

    def format_label(self) -> str:
        return f"{self.source_format} ({'detected' if self.detected else 'chosen'})"

    def preview(self, width: int = 100) -> str:
        """Readable table of the schedule: latent range, pixel range, time, prompt."""
        lines = [f"{self.latent_frames} latent frames = {self.pixel_frames} pixel frames "
                 f"({fm.seconds_of_pixels(self.pixel_frames, self.fps):.2f} s at {self.fps:g} fps), "
                 f"{len(self.unique)} distinct prompts, format {self.format_label()}"]
        for first, last, prompt in self.runs():
            p0, p1 = fm.pixel_range_of_latent(first)[0], fm.pixel_range_of_latent(last)[-1]
            shown = prompt if len(prompt) <= width else prompt[: width - 3] + "..."
            lines.append(f"latent {first:>3}-{last:<3} pixel {p0:>4}-{p1:<4} "
                         f"{p0 / self.fps:6.2f}s  [{self.number_of(prompt)}] {shown}")
        return "\n".join(lines)


def fit_index(index, latent_frames: int) -> list[int]:
    """Per-frame prompt index laid over a latent of `latent_frames` frames.

    A longer latent holds the last prompt to the end (a prompt holds until the next keyframe); a
    shorter latent would silently drop prompts, so it is refused.
    """
    index = list(index)
    if latent_frames < len(index):
        raise PromptScheduleError(
            f"the latent has {latent_frames} latent frames but the prompt schedule was made for "
            f"{len(index)}; prompts after latent frame {latent_frames - 1} would be lost. "
            f"Fix: set the schedule length to {fm.pixel_count(latent_frames)} pixel frames "
            f"({latent_frames} latent frames) or make the video longer")
    return index + [index[-1]] * (latent_frames - len(index))


def paper_json(per_latent) -> str:
    """The paper's JSON object of one prompt per latent frame: a 1-based LATENT key where the prompt
    changes (each prompt holds until the next key), one entry per line. Compiling it over
    len(per_latent) latent frames gives `per_latent` back."""
    story: dict[str, str] = {}
    for latent, prompt in enumerate(per_latent):
        if latent == 0 or prompt != per_latent[latent - 1]:
            story[str(latent + 1)] = prompt
    return json.dumps(story, ensure_ascii=False, indent=1)
