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


# -- Wan 2.2 / I2V variants, loaded through ComfyUI's own model detection -----------------------------

# ComfyUI reads a Wan's sizes from its weights but fixes num_heads = dim // 128 and text_dim = 4096,
# so a tiny model that its detection must recognise has dim 128 (one head of 128) and text_dim 4096.
DETECTABLE = dict(dim=128, num_heads=1, num_layers=2, ffn_dim=256, text_dim=4096)
VARIANTS = {                       # name -> (our DiT's shape, ComfyUI config class, ComfyUI model class)
    "wan22_t2v_a14b": (dict(), "WAN21_T2V", "WAN21"),              # each expert is shaped like Wan 2.1 T2V 14B
    "wan22_i2v_a14b": (dict(in_dim=36), "WAN21_T2V", "WAN21"),     # 16 noise + 4 mask + 16 image channels, no img_emb
    "wan22_ti2v_5b": (dict(in_dim=48, out_dim=48), "WAN22_T2V", "WAN22"),   # 48-channel latents of wan2.2_vae
    "wan21_i2v_14b": (dict(in_dim=36, model_type="i2v"), "WAN21_I2V", "WAN21"),   # img_emb: CLIP-vision tokens
    "wan21_flf2v_14b": (dict(in_dim=36, model_type="i2v"), "WAN21_I2V", "WAN21"),   # + img_emb.emb_pos
}
# Wan 2.1 FLF2V adds one learned position embedding over the start and end images' CLIP-vision
# tokens (2 x 257); ComfyUI detects the model by this weight.
FLF2V_POSITIONS = (1, 2 * 257, 1280)
TEXT_DIM = DETECTABLE["text_dim"]


def variant_state_dict(variant: str, seed: int = 0, **sizes) -> dict:
    """Weights shaped like one Wan variant (our DiT keeps ComfyUI's key names). `sizes` may widen
    the model (dim a multiple of 128 with num_heads = dim // 128, as ComfyUI's detection assumes)."""
    config = {**DETECTABLE, **sizes, **VARIANTS[variant][0]}
    weights = {k: v.clone() for k, v in tiny_dit(seed=seed, **config).state_dict().items()}
    if variant == "wan21_flf2v_14b":
        weights["img_emb.emb_pos"] = 0.1 * torch.randn(FLF2V_POSITIONS, generator=torch.Generator().manual_seed(seed))
    return weights


def load_variant(variant: str, seed: int = 0, **sizes):
    """A MODEL built by ComfyUI's own loader (comfy.sd.load_diffusion_model_state_dict), so its
    detection picks the model class it picks for the real file."""
    comfy = import_comfy()
    return comfy.sd.load_diffusion_model_state_dict(variant_state_dict(variant, seed, **sizes),
                                                    model_options={"dtype": torch.float32})


def latent_channels(model) -> int:
    return model.model.latent_format.latent_channels


def context_windows(model, length: int, overlap: int, causal_window_fix: bool | None = None):
    """ComfyUI's own ContextWindowsManual node on `model` (static standard schedule, flat fuse, latent
    dim 2), called with the inputs the running ComfyUI's node declares: 0.33 added freenoise and
    causal_window_fix (on by default) among others. `causal_window_fix` None keeps the node's
    default; a value on a ComfyUI without the input fails the test (it cannot be honoured)."""
    import inspect

    from comfy_extras.nodes_context_windows import ContextWindowsManualNode
    kwargs = dict(model=model, context_length=length, context_overlap=overlap, context_schedule="standard_static",
                  context_stride=1, closed_loop=False, fuse_method="flat", dim=2)
    accepted = inspect.signature(ContextWindowsManualNode.execute).parameters
    if "freenoise" in accepted:
        kwargs["freenoise"] = False
    if causal_window_fix is not None:
        assert "causal_window_fix" in accepted, "this ComfyUI's context windows have no causal_window_fix"
        kwargs["causal_window_fix"] = causal_window_fix
    out = ContextWindowsManualNode.execute(**kwargs)
    return out[0] if isinstance(out, tuple) else out.result[0]


def has_causal_window_fix() -> bool:
    """True on ComfyUI 0.33+ (context windows prepend an anchor frame to every later window)."""
    import inspect

    from comfy_extras.nodes_context_windows import ContextWindowsManualNode
    return "causal_window_fix" in inspect.signature(ContextWindowsManualNode.execute).parameters
