"""Tiny Wan VAEs of ComfyUI's own classes, for tests (ComfyUI 0.3.64 builds the Wan 2.1 / 2.2 VAE at
its published width, 127M / 705M parameters, whatever the file holds).

- `tiny_wan_vae_state_dict(wan22)`: seeded weights of ComfyUI's Wan VAE at width 8 (same latent
  channels and strides), in the file layout of `wan_2.1_vae` / `wan2.2_vae`.
- `install_in_vae_loader()`: `comfy.sd.VAE` (what `VAELoader` builds) becomes a subclass that builds the
  Wan VAE at the width of its weights when that is narrower than the published one; every other VAE
  loads as before. For a test server (tests/tiny_model_nodes.py), never a test process.
"""

from __future__ import annotations

import contextlib

import comfy_support

comfy_support.import_comfy()
import comfy.ldm.wan.vae  # noqa: E402
import comfy.ldm.wan.vae2_2  # noqa: E402
import comfy.sd  # noqa: E402
import torch  # noqa: E402

PUBLISHED_WIDTH = {False: 96, True: 160}   # Wan 2.1 / 2.2 VAE `dim` as ComfyUI builds them
TINY_WIDTH = 8


def _wan_vae_module(wan22: bool):
    return comfy.ldm.wan.vae2_2 if wan22 else comfy.ldm.wan.vae


def _is_wan22(state_dict) -> bool:
    return "decoder.upsamples.0.upsamples.0.residual.2.weight" in state_dict


def tiny_wan_vae_state_dict(wan22: bool, seed: int = 12) -> dict:
    """Seeded weights of ComfyUI's Wan 2.1 / 2.2 VAE at width 8 (same latent channels and strides)."""
    sizes = {"dim": TINY_WIDTH, "dec_dim": TINY_WIDTH} if wan22 else {"dim": TINY_WIDTH}
    model = _wan_vae_module(wan22).WanVAE(z_dim=48 if wan22 else 16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                          attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0,
                                          **sizes)
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.ones(value.shape) if "gamma" in name else torch.randn(value.shape, generator=generator) * 0.05)
            for name, value in model.state_dict().items()}


@contextlib.contextmanager
def _narrow(module, **sizes):
    """While ComfyUI's VAE is built, its WanVAE class gets the given widths."""
    real = module.WanVAE
    module.WanVAE = lambda **config: real(**{**config, **sizes})
    try:
        yield
    finally:
        module.WanVAE = real


class TinyAwareVAE(comfy.sd.VAE):
    """ComfyUI's VAE, built at the width of a narrow Wan VAE's weights; otherwise unchanged."""

    def __init__(self, sd=None, *args, **kwargs):
        sizes = {}
        if sd is not None and "decoder.middle.0.residual.0.gamma" in sd:
            wan22 = _is_wan22(sd)
            width = int(sd["encoder.conv1.weight"].shape[0])
            if width < PUBLISHED_WIDTH[wan22]:
                sizes = {"dim": width, "dec_dim": int(sd["decoder.conv1.weight"].shape[0]) // 4} if wan22 else {"dim": width}
        if not sizes:
            super().__init__(sd, *args, **kwargs)
            return
        with _narrow(_wan_vae_module(_is_wan22(sd)), **sizes):
            super().__init__(sd, *args, **kwargs)


def install_in_vae_loader():
    """Make `comfy.sd.VAE` build narrow Wan VAE weights at their own width (see the module doc)."""
    comfy.sd.VAE = TinyAwareVAE
