"""Pluggable text and visual encoders for the metrics.

Any object with `encode_text(texts) -> (n, d)` and `encode_visual(clips) -> (n, d)` works, where a
clip is an array of frames (k, H, W, 3), uint8 0..255 or float 0..1. `CLIPEmbedder` loads a
transformers CLIP checkpoint from a local directory only: nothing is ever downloaded. An image
model embeds each frame of a clip and averages the unit vectors.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@runtime_checkable
class TextEmbedder(Protocol):
    def encode_text(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class VisualEmbedder(Protocol):
    def encode_visual(self, clips: list[np.ndarray]) -> np.ndarray: ...


@contextlib.contextmanager
def hub_offline():
    """Make sure transformers cannot reach the hub while loading."""
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({name: "1" for name in saved})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_checkpoint_dir(path) -> Path:
    """A local transformers CLIP folder; the error names the missing file."""
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint path {str(folder)!r} is not a folder: point it at a local "
                                "transformers CLIP directory (config.json, model weights, tokenizer files)")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder / 'config.json'} is missing: the folder must come from "
                                "CLIPModel.save_pretrained or a downloaded CLIP repository")
    return folder


def as_float_frames(clip) -> np.ndarray:
    """(k, H, W, 3) float32 in 0..1 from uint8 or float frames."""
    array = np.asarray(clip)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] < 3:
        raise ValueError(f"a clip must have shape (frames, H, W, 3), got {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _features(output):
    """transformers 4 returns a tensor, 5 an output object whose pooler_output is projected."""
    return output if hasattr(output, "shape") else output.pooler_output


class CLIPEmbedder:
    """Text and image embeddings from a local transformers CLIP checkpoint."""

    def __init__(self, checkpoint_dir, device: str = "cpu", batch_size: int = 16):
        import torch
        from transformers import AutoTokenizer, CLIPModel

        self.folder = check_checkpoint_dir(checkpoint_dir)
        self.device, self.batch_size = device, batch_size
        with hub_offline():
            self.model = CLIPModel.from_pretrained(str(self.folder), local_files_only=True).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.image_size = int(self.model.config.vision_config.image_size)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)
        mean, std = self._normalisation()
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def _normalisation(self):
        config = self.folder / "preprocessor_config.json"
        if config.is_file():
            data = json.loads(config.read_text(encoding="utf-8"))
            return tuple(data.get("image_mean", CLIP_MEAN)), tuple(data.get("image_std", CLIP_STD))
        return CLIP_MEAN, CLIP_STD

    def encode_text(self, texts: list[str]) -> np.ndarray:
        import torch

        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_tokens, return_tensors="pt").to(self.device)
            with torch.no_grad():
                rows.append(_features(self.model.get_text_features(**batch)).float().cpu().numpy())
        return np.concatenate(rows, axis=0)

    def _pixels(self, frames: np.ndarray):
        """Resize the short side to image_size (bicubic), centre-crop, normalise: (k, 3, S, S)."""
        import torch
        import torch.nn.functional as F

        tensor = torch.from_numpy(frames).permute(0, 3, 1, 2)
        height, width = tensor.shape[-2:]
        scale = self.image_size / min(height, width)
        size = (max(self.image_size, round(height * scale)), max(self.image_size, round(width * scale)))
        tensor = F.interpolate(tensor, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        tensor = tensor[..., top:top + self.image_size, left:left + self.image_size]
        return ((tensor - self.mean) / self.std).to(self.device)

    def encode_visual(self, clips: list[np.ndarray]) -> np.ndarray:
        import torch

        rows = []
        for clip in clips:
            frames = as_float_frames(clip)
            with torch.no_grad():
                per_frame = _features(self.model.get_image_features(pixel_values=self._pixels(frames)))
            per_frame = torch.nn.functional.normalize(per_frame.float(), dim=-1)
            rows.append(per_frame.mean(dim=0).cpu().numpy())
        return np.stack(rows, axis=0)


_LOADED: dict[tuple[str, str], CLIPEmbedder] = {}


def load_embedder(checkpoint_path, device: str = "cpu") -> CLIPEmbedder:
    """Load (once per path and device) a local CLIP checkpoint folder."""
    folder = str(check_checkpoint_dir(checkpoint_path).resolve())
    key = (folder, device)
    if key not in _LOADED:
        _LOADED[key] = CLIPEmbedder(folder, device=device)
    return _LOADED[key]
