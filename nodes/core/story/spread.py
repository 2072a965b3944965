"""The one even-spread rule: N prompts (optionally weighted) over F latent frames.

Boundary k (k = 0..N) lies at latent frame ceil(F * W_k / W), where W_k is the sum of the first k
weights and W the sum of all. With equal weights frame f gets prompt floor(f * N / F): every prompt
covers a contiguous run, runs differ in length by at most one, and the longer runs come first.
This is also how WanVideoWrapper assigns `|` prompts to latent frames (section size F / N).
Arithmetic is exact (fractions), so a weight of 0.1 never lands a boundary one frame off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from .. import frames as fm
from .errors import PromptScheduleError


def _fraction(weight) -> Fraction:
    return Fraction(str(weight)) if isinstance(weight, float) else Fraction(weight)


def _whole_weights(weights: Sequence) -> list[int]:
    """The weights as integers in the same ratios (scaled by their common denominator), so the
    boundaries need integer arithmetic only: thousands of segments spread in milliseconds."""
    if all(type(w) is int for w in weights):
        return list(weights)
    exact = [_fraction(w) for w in weights]
    common = math.lcm(*(w.denominator for w in exact))
    return [w.numerator * (common // w.denominator) for w in exact]


def spread_boundaries(weights: Sequence, frames: int) -> list[int]:
    """N + 1 latent-frame boundaries of N weighted segments over `frames` latent frames.

    Segment i covers latent frames boundaries[i] .. boundaries[i + 1] - 1. Raises when a segment
    would get no latent frame, naming the segment and the fix.
    """
    exact = _whole_weights(weights)
    if not exact:
        raise PromptScheduleError("no prompts to spread. Fix: write at least one prompt")
    if frames < 1:
        raise PromptScheduleError(f"{frames} latent frames: a video needs at least 1. Fix: make it longer")
    for i, weight in enumerate(exact):
        if weight <= 0:
            raise PromptScheduleError(f"prompt {i + 1} has weight {weights[i]}: weights must be > 0. Fix: give "
                                      "it a positive weight or remove it")
    if len(exact) > frames:
        raise PromptScheduleError(
            f"{len(exact)} prompts for {frames} latent frames: some prompts would get no frame. Fix: use at "
            f"most {frames} prompts or make the video longer ({fm.pixel_count(len(exact))} pixel frames fit "
            "one prompt per latent frame)")
    total, running, bounds = sum(exact), 0, [0]
    for weight in exact:
        running += weight
        bounds.append(-((-frames * running) // total))  # exact ceil
    for i, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        if stop <= start:
            raise PromptScheduleError(
                f"prompt {i + 1} (weight {weights[i]}) is too short to get a latent frame of the {frames}: its "
                f"share is {exact[i] / total:.3g} of the video. Fix: raise its weight, lower the others "
                "or make the video longer")
    return bounds


def spread_evenly(items: Sequence, frames: int, weights: Sequence | None = None) -> list:
    """One item per latent frame: item i on the frames of segment i (see spread_boundaries)."""
    bounds = spread_boundaries([1] * len(items) if weights is None else weights, frames)
    out: list = []
    for item, start, stop in zip(items, bounds, bounds[1:]):
        out.extend([item] * (stop - start))
    return out
