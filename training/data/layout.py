"""Dataset folder layout and clip loading.

    dataset/
      <name>.json                  frame-level captions (see captions.py)
      <name>.mp4|.mkv|.webm|.mov   a clip (needs `av`), or
      <name>.npy|.pt               uint8 pixels [F, H, W, 3], or
      <name>.latent.safetensors    an already-encoded, normalised latent under key "latent" [16, F, h, w]
                                   (metadata "pixel_frames" optional)

Clips are cut to the largest frame bucket (4k+1 pixel frames) they fill and resized (cover + centre
crop) to the resolution bucket nearest in aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")
ARRAY_SUFFIXES = (".npy", ".pt")
LATENT_SUFFIX = ".latent.safetensors"


@dataclass(frozen=True)
class ClipSource:
    name: str
    captions: Path
    media: Path

    @property
    def is_latent(self) -> bool:
        return self.media.name.endswith(LATENT_SUFFIX)


def find_clips(dataset_dir: Path) -> list[ClipSource]:
    """Every caption JSON with exactly one media file of the same name, sorted by name."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset_dir} does not exist")
    clips = []
    for caption in sorted(dataset_dir.glob("*.json")):
        name = caption.stem
        candidates = [dataset_dir / (name + s) for s in (*VIDEO_SUFFIXES, *ARRAY_SUFFIXES, LATENT_SUFFIX)]
        found = [c for c in candidates if c.exists()]
        if len(found) != 1:
            raise FileNotFoundError(f"{caption}: expected exactly one clip named {name}.<mp4|npy|pt|"
                                    f"latent.safetensors>, found {[f.name for f in found]}")
        clips.append(ClipSource(name, caption, found[0]))
    if not clips:
        raise FileNotFoundError(f"no caption files (*.json) in {dataset_dir}")
    return clips


def read_pixels(path: Path) -> torch.Tensor:
    """uint8 [F, H, W, 3]."""
    if path.suffix == ".npy":
        import numpy as np

        return torch.from_numpy(np.load(path))
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    try:
        import av
    except ImportError as error:
        raise ImportError(f"reading {path} needs `pip install av` (train extra)") from error
    with av.open(str(path)) as container:
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return torch.stack(frames)


def pick_frame_count(available: int, frame_buckets) -> int | None:
    """Largest bucket (pixel frames) not longer than the clip; None when the clip is too short."""
    fitting = [n for n in frame_buckets if n <= available]
    return max(fitting) if fitting else None


def pick_resolution(height: int, width: int, resolutions) -> tuple[int, int]:
    """The bucket (h, w) whose aspect ratio is nearest the clip's."""
    aspect = width / height
    return min((tuple(r) for r in resolutions), key=lambda r: abs(r[1] / r[0] - aspect))


def prepare_pixels(pixels: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float [1, 3, frames, h, w] in [-1, 1], cover-resized and centre-cropped."""
    video = pixels[:frames].permute(0, 3, 1, 2).float() / 127.5 - 1  # [F, 3, H, W]
    height, width = video.shape[-2:]
    scale = max(size[0] / height, size[1] / width)
    resized = (max(size[0], round(height * scale)), max(size[1], round(width * scale)))
    video = F.interpolate(video, size=resized, mode="bilinear", align_corners=False, antialias=True)
    top, left = (resized[0] - size[0]) // 2, (resized[1] - size[1]) // 2
    video = video[:, :, top:top + size[0], left:left + size[1]]
    return video.permute(1, 0, 2, 3).unsqueeze(0).clamp(-1, 1)
