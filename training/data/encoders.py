"""Interfaces to the frozen encoders used once, at caching time.

`VideoEncoder.encode(pixels)` takes [B, 3, F, H, W] floats in [-1, 1] (F = 4k+1) and returns the
UN-normalised posterior mean [B, 16, (F-1)//4+1, H/8, W/8]; `normalize_wan21` then applies Wan's
per-channel (x - mean) / std, which is what the DiT consumes (ComfyUI's Wan21.process_in).
`TextEncoder.encode(texts)` returns one [L_i, text_dim] tensor per text, trimmed to its real tokens;
the trainer zero-pads to text_len (512) later, as Wan and ComfyUI do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

WAN21_LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


class VideoEncoder(Protocol):
    def encode(self, pixels: torch.Tensor) -> torch.Tensor: ...


class TextEncoder(Protocol):
    def encode(self, texts: list[str]) -> list[torch.Tensor]: ...


def normalize_wan21(latent: torch.Tensor) -> torch.Tensor:
    """[B, 16, F, h, w] raw VAE mean -> normalised latent."""
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(WAN21_LATENT_MEAN, dtype=latent.dtype, device=latent.device).view(shape)
    std = torch.tensor(WAN21_LATENT_STD, dtype=latent.dtype, device=latent.device).view(shape)
    return (latent - mean) / std


class DiffusersWanVAE:
    """The real Wan 2.1 VAE through diffusers' AutoencoderKLWan (optional dependency `diffusers`).

    `path` is a Wan-AI/Wan2.1-T2V-*-Diffusers folder (subfolder "vae") or a VAE folder itself.
    Not exercised by the tests (no weights can be downloaded here).
    """

    def __init__(self, path: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
        try:
            from diffusers import AutoencoderKLWan
        except ImportError as error:
            raise ImportError("the Wan VAE loader needs `pip install diffusers`; or cache latents inside "
                              "ComfyUI and point [data] at the .latent.safetensors files") from error
        try:
            self.vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
        except OSError:
            self.vae = AutoencoderKLWan.from_pretrained(path, torch_dtype=dtype)
        self.vae.to(device).eval().requires_grad_(False)
        self.device, self.dtype = device, dtype

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        posterior = self.vae.encode(pixels.to(self.device, self.dtype)).latent_dist
        return posterior.mean.float().cpu()


class UMT5TextEncoder:
    """UMT5 encoder via transformers with Wan's padding rules (at most 512 tokens, keep only the real
    rows; the trainer zero-pads to text_len). A batch is padded to its longest caption, not to 512:
    under the attention mask the real rows come out the same, and a batch of 30-word captions runs
    about a tenth of the tokens."""

    def __init__(self, tokenizer, encoder, max_length: int = 512, device: str = "cpu"):
        self.tokenizer, self.encoder = tokenizer, encoder.to(device).eval().requires_grad_(False)
        self.max_length, self.device = max_length, device

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu", dtype: torch.dtype = torch.bfloat16):
        """A Wan-AI/Wan2.1-T2V-*-Diffusers folder (text_encoder/ + tokenizer/) or a UMT5 folder."""
        from transformers import AutoTokenizer, UMT5EncoderModel

        def load(factory, sub, **kwargs):
            local = Path(path)
            if local.is_dir():  # a missing local subfolder raises ValueError (not OSError) in transformers
                extra = {"subfolder": sub} if (local / sub).is_dir() else {}
                return factory.from_pretrained(path, **extra, **kwargs)
            try:
                return factory.from_pretrained(path, subfolder=sub, **kwargs)
            except OSError:
                return factory.from_pretrained(path, **kwargs)

        return cls(load(AutoTokenizer, "tokenizer"), load(UMT5EncoderModel, "text_encoder", torch_dtype=dtype),
                   device=device)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self.tokenizer([" ".join(t.split()) for t in texts], padding="longest",
                                max_length=self.max_length, truncation=True, add_special_tokens=True,
                                return_attention_mask=True, return_tensors="pt")
        mask = tokens["attention_mask"].to(self.device)
        hidden = self.encoder(input_ids=tokens["input_ids"].to(self.device), attention_mask=mask).last_hidden_state
        lengths = mask.sum(dim=1).tolist()
        return [hidden[i, :n].float().cpu() for i, n in enumerate(lengths)]
