"""The one home of Wan's frame arithmetic (4x temporal VAE compression).

Wan's causal VAE maps pixel frame 0 to latent 0 and pixel frames 4i-3..4i to latent i >= 1, so
n pixel frames give (n - 1) // 4 + 1 latents. Every tooltip and error in the pack says whether a
number is in pixel frames or latent frames; conversions go through these helpers only.
"""

from __future__ import annotations

import math

TEMPORAL_STRIDE = 4


def latent_count(pixel_frames: int) -> int:
    """Number of latent frames Wan's VAE produces from `pixel_frames` pixel frames."""
    if pixel_frames < 1:
        raise ValueError(f"pixel frame count must be >= 1, got {pixel_frames}")
    return (pixel_frames - 1) // TEMPORAL_STRIDE + 1


def pixel_count(latent_frames: int) -> int:
    """Pixel frames decoded from `latent_frames` latents (the largest clip that maps onto them)."""
    if latent_frames < 1:
        raise ValueError(f"latent frame count must be >= 1, got {latent_frames}")
    return (latent_frames - 1) * TEMPORAL_STRIDE + 1


def is_valid_pixel_count(pixel_frames: int) -> bool:
    """Wan clips have 4k + 1 pixel frames; other lengths lose their trailing frames."""
    return pixel_frames >= 1 and (pixel_frames - 1) % TEMPORAL_STRIDE == 0


def latent_of_pixel(pixel_index: int) -> int:
    """Latent frame that holds pixel frame `pixel_index` (0-based)."""
    if pixel_index < 0:
        raise ValueError(f"pixel frame index must be >= 0, got {pixel_index}")
    return 0 if pixel_index == 0 else (pixel_index - 1) // TEMPORAL_STRIDE + 1


def pixel_range_of_latent(latent_index: int) -> range:
    """Pixel frames (0-based, as a range) that latent `latent_index` encodes."""
    if latent_index < 0:
        raise ValueError(f"latent frame index must be >= 0, got {latent_index}")
    if latent_index == 0:
        return range(0, 1)
    first = TEMPORAL_STRIDE * latent_index - (TEMPORAL_STRIDE - 1)
    return range(first, first + TEMPORAL_STRIDE)


def pixel_of_seconds(seconds: float, fps: float) -> int:
    """Pixel frame shown at time `seconds` (frame 0 at t = 0), rounded to the nearest frame."""
    if not fps > 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    if not seconds >= 0 or not math.isfinite(seconds * fps):
        raise ValueError(f"time must be a finite number >= 0 seconds, got {seconds}")
    return int(round(seconds * fps))


def latent_of_seconds(seconds: float, fps: float) -> int:
    """Latent frame shown at time `seconds`."""
    return latent_of_pixel(pixel_of_seconds(seconds, fps))


def seconds_of_pixels(pixel_frames: int, fps: float) -> float:
    """Duration in seconds of a clip of `pixel_frames` frames at `fps`."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return pixel_frames / fps


def pixel_count_for_seconds(seconds: float, fps: float) -> int:
    """Pixel frames (4k + 1) of a clip lasting `seconds` at `fps`: 30 s at 16 fps -> 481."""
    frames = pixel_of_seconds(seconds, fps)
    return frames - frames % TEMPORAL_STRIDE + 1
