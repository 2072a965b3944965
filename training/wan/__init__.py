"""Wan 2.1 DiT with the original (ComfyUI / Wan-AI) parameter names."""

from .config import WanConfig, tiny_config
from .model import WanDiT, random_init

__all__ = ["WanConfig", "WanDiT", "random_init", "tiny_config"]
