"""Validation samples with the pack's own Diffusion Forcing sampler.

The trainer samples exactly as the ComfyUI nodes do: the DF planner of `nodes/core` writes the
per-frame noise levels (step size 0 = synchronous, as stock Euler; larger = staircase), and the one
executor runs the plan over our DiT. Only the denoiser is specific to the trainer: the DiT predicts
the flow velocity v = noise - x0 at per-frame timesteps, so x0 = x - sigma_f * v.
"""

from __future__ import annotations

import torch

from ..nodes.core.df_schedule import DFSchedule, df_plan
from ..nodes.core.executor import ExecutorOptions, execute_plan
from ..nodes.core.plan import initial_latents
from ..nodes.core.sigmas import flow_sigmas
from .objective import TIMESTEP_SCALE


def dit_denoiser(model, frame_text=None, context=None):
    """The executor's denoiser(x, sigma [N, L], frame_index [N, L]) -> x0 over a velocity DiT.

    The DiT sees whole videos (our validation plans have one full-length window), so frame text
    packed for the video routes by the same latent index."""
    def denoise(x, sigma, frame_index):
        frames = x.shape[2]
        if not bool((frame_index == torch.arange(frames, device=frame_index.device)).all()):
            raise ValueError("validation sampling runs whole videos; a windowed plan needs windowed frame text")
        work = torch.promote_types(x.dtype, torch.float32)   # at least float32; float64 stays float64
        sigma = sigma.to(x.device, work)
        velocity = model(x, sigma * TIMESTEP_SCALE, context, frame_text=frame_text).to(work)
        return (x.to(work) - sigma[:, None, :, None, None] * velocity).to(x.dtype)
    return denoise


@torch.no_grad()
def df_sample(model, noise: torch.Tensor, steps: int, shift: float, schedule: DFSchedule = DFSchedule(),
              solver: str = "euler", frame_text=None, context=None) -> torch.Tensor:
    """Sample latents [B, C, F, H, W] from `noise` with the pack's DF sampler (plan + executor)."""
    plan = df_plan(flow_sigmas(steps, shift), noise.shape[2], schedule)
    start = initial_latents(plan, noise)
    return execute_plan(plan, dit_denoiser(model, frame_text, context), start, ExecutorOptions(solver=solver))
