"""Configuration of the Wan 2.1 DiT: the published sizes, tiny test sizes, and detection from weights."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

MODEL_TYPES = ("t2v", "i2v")
CLIP_DIM = 1280  # width of the CLIP vision tokens that I2V models project with `img_emb`


@dataclass(frozen=True)
class WanConfig:
    """Sizes of a Wan 2.1 DiT. Defaults are the 1.3B T2V model."""

    model_type: str = "t2v"
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_len: int = 512
    in_dim: int = 16
    dim: int = 1536
    ffn_dim: int = 8960
    freq_dim: int = 256
    text_dim: int = 4096
    out_dim: int = 16
    num_heads: int = 12
    num_layers: int = 30
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"WanConfig.model_type={self.model_type!r}; choose one of {MODEL_TYPES}")
        if self.dim % self.num_heads:
            raise ValueError(f"WanConfig.dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 8:
            raise ValueError(f"head_dim = dim / num_heads = {self.head_dim} must be even and >= 8 "
                             f"(3-axis RoPE); lower num_heads or raise dim")
        if self.freq_dim % 2:
            raise ValueError(f"WanConfig.freq_dim={self.freq_dim} must be even")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_axes(self) -> tuple[int, int, int]:
        """Channels of each head given to the (frame, height, width) RoPE axes, as Wan splits them."""
        third = self.head_dim // 6
        return (self.head_dim - 4 * third, 2 * third, 2 * third)

    def replace(self, **changes) -> WanConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def wan21_1_3b(cls, **overrides) -> WanConfig:
        return cls(**overrides)

    @classmethod
    def wan21_14b(cls, **overrides) -> WanConfig:
        sizes = dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)
        return cls(**{**sizes, **overrides})

    @classmethod
    def from_state_dict(cls, state_dict: Mapping, num_heads: int | None = None,
                        text_dim: int | None = None) -> WanConfig:
        """Read the sizes from original-named weights (prefix `model.diffusion_model.` tolerated).

        Like ComfyUI, heads default to dim // 128; unlike ComfyUI, text_dim is read from the weights.
        """
        keys = {strip_prefix(k): v for k, v in state_dict.items()}
        if "head.modulation" not in keys:
            raise ValueError("not a Wan 2.1 DiT state dict: key 'head.modulation' is missing")
        dim = keys["head.modulation"].shape[-1]
        layers = {int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k))}
        patch = keys["patch_embedding.weight"].shape
        return cls(
            model_type="i2v" if "img_emb.proj.0.bias" in keys else "t2v",
            patch_size=tuple(patch[2:]),
            in_dim=patch[1],
            dim=dim,
            ffn_dim=keys["blocks.0.ffn.0.weight"].shape[0],
            freq_dim=keys["time_embedding.0.weight"].shape[1],
            text_dim=text_dim or keys["text_embedding.0.weight"].shape[1],
            out_dim=keys["head.head.weight"].shape[0] // (patch[2] * patch[3] * patch[4]),
            num_heads=num_heads or dim // 128,
            num_layers=max(layers) + 1,
        )


STATE_DICT_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def strip_prefix(key: str) -> str:
    for prefix in STATE_DICT_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def tiny_config(**overrides) -> WanConfig:
    """A test-sized Wan: dim 64, 2 heads, 2 layers, text_dim 32, ffn 128, freq_dim 256."""
    sizes = dict(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, freq_dim=256)
    return WanConfig(**{**sizes, **overrides})
