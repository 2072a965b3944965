"""Test-only ComfyUI custom node (one file, linked into a temporary custom_nodes folder by
tests/test_comfyui_workflows_wan22.py): tiny stand-ins for the two loaders ComfyUI 0.3.64 cannot
give tiny weights to.

`CLIPLoader` builds umt5-xxl from a fixed config (5.7B parameters: 24 layers of width 4096) and
`VAELoader` builds the Wan VAEs at their published widths (127M / 705M parameters), whatever the
file holds. These nodes build the same ComfyUI classes at test size: the umt5 text encoder
(`comfy.text_encoders.wan`, width 4096 as Wan's text embedding expects, 2 layers, a small
SentencePiece vocabulary) and the Wan 2.1 / 2.2 VAE (`comfy.sd.VAE` around `comfy.ldm.wan.vae` /
`vae2_2` at width 8, same latent channels and strides). Inputs mirror the stock loaders' so a
workflow keeps its values when the test swaps the class; weights are random from a fixed seed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import types

import comfy.ldm.wan.vae
import comfy.ldm.wan.vae2_2
import comfy.sd
import comfy.text_encoders.wan
import torch

CORPUS = ["a lighthouse on a rocky coast at golden hour", "the same old woman rows a red boat across the lake",
          "blurry, low quality, distorted, static, watermark, text, deformed hands, flicker",
          "cinematic, natural light, detailed, wide shot, close-up, medium shot, tracking shot, low angle"]


def _random_state_dict(module: torch.nn.Module, seed: int, scale: float = 0.05) -> dict:
    """Seeded random weights for every tensor of `module` (norm scales at 1)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: (torch.ones(v.shape) if "norm" in k or "gamma" in k else torch.randn(v.shape, generator=generator) * scale)
            if v.is_floating_point() else v for k, v in module.state_dict().items()}


def tiny_spiece_model() -> bytes:
    """A SentencePiece model laid out like umt5's (pad 0, end 1, unknown 2), trained on CORPUS."""
    import sentencepiece
    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 8), model_writer=buffer, vocab_size=96, hard_vocab_limit=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    return buffer.getvalue()


def tiny_wan_clip():
    config_path = os.path.join(os.path.dirname(comfy.text_encoders.wan.__file__), "umt5_config_xxl.json")
    with open(config_path) as f:
        config = json.load(f)
    spiece = tiny_spiece_model()
    config.update(num_layers=2, num_heads=2, d_kv=8, d_ff=16, vocab_size=128)   # width stays 4096
    target = types.SimpleNamespace(clip=comfy.text_encoders.wan.te(), tokenizer=comfy.text_encoders.wan.WanT5Tokenizer,
                                   params={})
    clip = comfy.sd.CLIP(target, tokenizer_data={"spiece_model": torch.ByteTensor(list(spiece))},
                         model_options={"umt5xxl_model_config": config, "dtype": torch.float32})
    transformer = clip.cond_stage_model.umt5xxl.transformer
    missing, _ = clip.load_sd(_random_state_dict(transformer, seed=11))
    assert not missing, missing
    return clip


@contextlib.contextmanager
def _narrow(module, **sizes):
    """While building, ComfyUI's VAE class gets the WanVAE of `module` at the given widths."""
    real = module.WanVAE
    module.WanVAE = lambda **config: real(**{**config, **sizes})
    try:
        yield real
    finally:
        module.WanVAE = real


def tiny_wan_vae(wan22: bool):
    module = comfy.ldm.wan.vae2_2 if wan22 else comfy.ldm.wan.vae
    sizes = {"dim": 8, "dec_dim": 8} if wan22 else {"dim": 8}
    config = dict(z_dim=48 if wan22 else 16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0)
    state_dict = _random_state_dict(module.WanVAE(**config, **sizes), seed=12)
    with _narrow(module, **sizes):
        return comfy.sd.VAE(sd=state_dict)


class FrameLevelTestTinyCLIP:
    CATEGORY, FUNCTION, RETURN_TYPES = "FrameLevel/Test", "load", ("CLIP",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": ("STRING", {}), "type": ("STRING", {})},
                "optional": {"device": ("STRING", {})}}

    def load(self, clip_name, type, device="default"):
        return (tiny_wan_clip(),)


class FrameLevelTestTinyVAE:
    CATEGORY, FUNCTION, RETURN_TYPES = "FrameLevel/Test", "load", ("VAE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {})}}

    def load(self, vae_name):
        return (tiny_wan_vae(wan22=vae_name.startswith("wan2.2")),)


NODE_CLASS_MAPPINGS = {"FrameLevelTestTinyCLIP": FrameLevelTestTinyCLIP, "FrameLevelTestTinyVAE": FrameLevelTestTinyVAE}
