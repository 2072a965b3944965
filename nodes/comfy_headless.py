"""ComfyUI in this Python process, without its server: for the pack's headless harnesses (the Table 1
experiment) that load exported weights and sample exactly as a ComfyUI graph would.

One of the pack's ComfyUI glue modules (beside `comfy_adapter` and `comfy_experts`); nothing here
runs at import time. `import_comfyui(path)` must come first: it puts the checkout on sys.path and
sets ComfyUI's CPU flag before `comfy.model_management` is imported (which otherwise asks CUDA).
"""

from __future__ import annotations

import sys

import torch


def import_comfyui(path: str, cpu: bool = True):
    """Import ComfyUI from the checkout at `path` (on the CPU unless cpu=False); returns `comfy`."""
    if path not in sys.path:
        sys.path.insert(0, path)
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    import comfy.model_management
    import comfy.sample
    import comfy.samplers
    import comfy.sd

    return comfy


def load_wan(path, shift: float, dtype: torch.dtype = torch.float32):
    """What UNETLoader + ModelSamplingSD3 give: the diffusion model file at `path`, detected by
    ComfyUI, with flow shift `shift`."""
    import comfy.sd
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    model = comfy.sd.load_diffusion_model(str(path), model_options={"dtype": dtype})
    return ModelSamplingSD3().patch(model, shift)[0]


def sample_latent(model, sampler, sigmas, positive, negative, cfg: float, latent: torch.Tensor,
                  seed: int) -> torch.Tensor:
    """SamplerCustom's sampling of `latent` [B, C, F, H, W] with noise from `seed`, returned in the
    model's own (normalised) latent space rather than ComfyUI's raw latent."""
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    samples = comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent,
                                         disable_pbar=True, seed=seed)
    return model.model.process_latent_in(samples)
