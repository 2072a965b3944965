"""Helpers for the tests marked `comfyui`: real ComfyUI imported in-process on CPU, tiny random Wan
models built through ComfyUI's own classes from our DiT's weights (same parameter names)."""

from __future__ import annotations

import os
import sys

import torch


def import_comfy(cpu: bool = True):
    """ComfyUI's `comfy` package from COMFYUI_PATH; on the CPU unless `cpu=False` (a GPU benchmark).
    The first call in a process decides: comfy.model_management picks its device when imported."""
    path = os.environ["COMFYUI_PATH"]
    if path not in sys.path:
        sys.path.insert(0, path)
    import comfy.cli_args
    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = cpu   # must precede comfy.model_management
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    import comfy.supported_models
    return comfy


def tiny_dit(seed=0, **overrides):
    from comfyui_framelevel.training.wan.config import tiny_config
    from comfyui_framelevel.training.wan.model import WanDiT, random_init
    config = tiny_config(**overrides)
    model = random_init(WanDiT(config), seed=seed).eval()
    return model


def comfy_unet_config(config):
    return {
        "image_model": "wan2.1", "model_type": config.model_type, "dim": config.dim,
        "in_dim": config.in_dim, "out_dim": config.out_dim, "ffn_dim": config.ffn_dim,
        "freq_dim": config.freq_dim, "text_dim": config.text_dim, "num_heads": config.num_heads,
        "num_layers": config.num_layers, "patch_size": (1, 2, 2), "window_size": (-1, -1),
        "qk_norm": True, "cross_attn_norm": True, "eps": config.eps,
    }


def comfy_wan_from_dit(dit, shift=8.0):
    """A ComfyUI MODEL (ModelPatcher around model_base.WAN21) holding `dit`'s weights."""
    comfy = import_comfy()
    model_config = comfy.supported_models.WAN21_T2V(comfy_unet_config(dit.config))
    model_config.set_inference_dtype(torch.float32, None)
    model_config.sampling_settings = {"shift": shift}
    model = model_config.get_model({})
    model.load_model_weights({k: v.clone() for k, v in dit.state_dict().items()}, "")
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def sample(model, noise, positive, negative, steps=2, cfg=1.0, sampler="euler", scheduler="simple",
           latent=None):
    comfy = import_comfy()
    latent = torch.zeros_like(noise) if latent is None else latent
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                               disable_pbar=True, seed=0)


def padded_context(tokens, real, text_dim, length=16, seed=0):
    """A fake umt5 context: `real` random rows then zero padding up to `length` (Wan pads with 0)."""
    generator = torch.Generator().manual_seed(seed)
    context = torch.zeros(length, text_dim)
    context[:real] = torch.randn(real, text_dim, generator=generator)
    return context


def conditioning(context):
    return [[context.unsqueeze(0), {"pooled_output": None}]]


def frame_conditioning(contexts, index):
    from comfyui_framelevel.nodes.comfy_adapter import FRAME_TEXT_KEY
    from comfyui_framelevel.nodes.core.frame_text import FrameText
    frame_text = FrameText(tuple(contexts), tuple(index))
    return [[contexts[0].unsqueeze(0), {"pooled_output": None, FRAME_TEXT_KEY: frame_text}]]
