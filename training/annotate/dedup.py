"""Perceptual hashes (pHash, dHash) of frames and near-duplicate detection for videos.

pHash: greyscale, 32x32, 2-D DCT-II, the 8x8 lowest frequencies, one bit per coefficient above
their median (the DC term left out of the median). dHash: greyscale 9x8, one bit per pixel
brighter than its right neighbour. Both give 64-bit integers compared by Hamming distance; an
unrelated pair differs in about 32 bits, a re-encode or slight brightness change in a few.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


def _grey(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    array = np.asarray(frame)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(array[..., :3] if array.ndim == 3 else array).convert("L")
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float64)


@lru_cache(maxsize=4)
def _dct_matrix(size: int) -> np.ndarray:
    """Orthonormal DCT-II matrix C, so that C @ x is the DCT of a column x."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * np.sqrt(2.0 / size)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def _bits_to_int(bits: np.ndarray) -> int:
    return int("".join("1" if b else "0" for b in bits.ravel()), 2)


def phash(frame: np.ndarray) -> int:
    """64-bit DCT hash of an HxWx3 frame (uint8, or float in 0..1)."""
    dct = _dct_matrix(32)
    coefficients = dct @ _grey(frame, 32, 32) @ dct.T
    low = coefficients[:8, :8]
    median = np.median(low.ravel()[1:])
    return _bits_to_int(low > median)


def dhash(frame: np.ndarray) -> int:
    """64-bit gradient hash of an HxWx3 frame."""
    grey = _grey(frame, 9, 8)
    return _bits_to_int(grey[:, 1:] > grey[:, :-1])


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


@dataclass
class DedupOptions:
    fractions: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)  # where in each video frames are hashed
    max_bits: int = 10  # two frames are alike within this Hamming distance
    min_alike: float = 0.8  # share of alike frame pairs that makes two videos duplicates


def videos_alike(first: list[int], second: list[int], options: DedupOptions) -> bool:
    pairs = list(zip(first, second, strict=False))
    if not pairs:
        return False
    alike = sum(hamming(a, b) <= options.max_bits for a, b in pairs)
    return alike / len(pairs) >= options.min_alike


def find_duplicates(fingerprints: dict[str, list[int]], options: DedupOptions) -> dict[str, str]:
    """{duplicate: the earlier video it repeats}; videos are compared in the dict's order and the
    first of a group is kept."""
    kept: list[str] = []
    duplicates: dict[str, str] = {}
    for name, hashes in fingerprints.items():
        original = next((k for k in kept if videos_alike(fingerprints[k], hashes, options)), None)
        if original is None:
            kept.append(name)
        else:
            duplicates[name] = original
    return duplicates


def group_alike_frames(frames: list[np.ndarray], max_bits: int = 4) -> list[int]:
    """For each frame, the index of the group it joins: consecutive frames whose pHash stays within
    `max_bits` of the group's first frame share a group (and therefore a caption)."""
    groups, leader_hash = [], None
    for frame in frames:
        value = phash(frame)
        if leader_hash is None or hamming(value, leader_hash) > max_bits:
            leader_hash = value
            groups.append(len(set(groups)))
        else:
            groups.append(groups[-1])
    return groups
