"""The one place where frame-level captions become per-latent-frame prompt indices.

Caption files use the paper's format: a JSON object whose keys are 1-based frame numbers at which a
caption starts, e.g. {"1": "a man walks in", "33": "he sits down"}; a caption holds until the next
key. By default the numbers are PIXEL frames; {"unit": "latent", "captions": {...}} gives them in
LATENT frames instead. The first key must be "1".

Pixel captions map to latents with Wan's 1 + 4k grouping (latent 0 = pixel frame 0, latent i >= 1 =
pixel frames 4i-3..4i, see nodes/core/frames.py): each latent frame takes the caption that covers
most of its pixel frames; a tie goes to the later caption (the scene that continues into the next
latent).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ...nodes.core.frames import latent_count, pixel_range_of_latent  # noqa: TID252 - package-relative

UNITS = ("pixel", "latent")


@dataclass(frozen=True)
class FrameCaptions:
    """Caption starts (1-based frame numbers, ascending) and their texts, in `unit` frames."""

    starts: tuple[int, ...]
    texts: tuple[str, ...]
    unit: str = "pixel"

    def caption_at(self, frame: int) -> int:
        """Index into `texts` of the caption showing at 0-based `frame`."""
        index = 0
        for i, start in enumerate(self.starts):
            if start - 1 <= frame:
                index = i
        return index


def parse_captions(obj, source: str = "captions") -> FrameCaptions:
    """Validate a caption object (bare mapping, or {"unit": ..., "captions": {...}})."""
    unit = "pixel"
    if isinstance(obj, dict) and "captions" in obj:
        unit = obj.get("unit", "pixel")
        obj = obj["captions"]
    if unit not in UNITS:
        raise ValueError(f"{source}: unit={unit!r} is unknown; use one of {UNITS}")
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{source}: expected a JSON object like {{\"1\": \"caption\", ...}}, got {obj!r:.80}")
    entries = []
    for key, text in obj.items():
        if not str(key).isdigit() or int(key) < 1:
            raise ValueError(f"{source}: key {key!r} is not a 1-based frame number; use \"1\", \"17\", ...")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{source}: caption at frame {key} is empty or not a string")
        entries.append((int(key), text.strip()))
    entries.sort()
    if entries[0][0] != 1:
        raise ValueError(f"{source}: the first caption starts at frame {entries[0][0]}; add one at \"1\"")
    return FrameCaptions(tuple(s for s, _ in entries), tuple(t for _, t in entries), unit)


def load_captions(path: Path) -> FrameCaptions:
    with open(path, encoding="utf-8") as handle:
        return parse_captions(json.load(handle), source=str(path))


def latent_caption_indices(captions: FrameCaptions, latent_frames: int, pixel_frames: int | None = None) -> list[int]:
    """Caption index (into captions.texts) of every latent frame."""
    if captions.unit == "latent":
        return [captions.caption_at(i) for i in range(latent_frames)]
    pixel_frames = pixel_frames if pixel_frames is not None else (latent_frames - 1) * 4 + 1
    if latent_count(pixel_frames) != latent_frames:
        raise ValueError(f"{pixel_frames} pixel frames give {latent_count(pixel_frames)} latent frames, "
                         f"not {latent_frames}")
    result = []
    for latent in range(latent_frames):
        pixels = [p for p in pixel_range_of_latent(latent) if p < pixel_frames]
        votes = Counter(captions.caption_at(p) for p in pixels)
        best = max(votes.values())
        result.append(max(index for index, count in votes.items() if count == best))
    return result


def distinct_frame_prompts(captions: FrameCaptions, latent_frames: int,
                           pixel_frames: int | None = None) -> tuple[list[str], list[int]]:
    """(distinct caption texts in first-use order, per-latent index into that list)."""
    texts, routing, seen = [], [], {}
    for index in latent_caption_indices(captions, latent_frames, pixel_frames):
        text = captions.texts[index]
        if text not in seen:
            seen[text] = len(texts)
            texts.append(text)
        routing.append(seen[text])
    return texts, routing
