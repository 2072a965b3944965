"""A small per-frame Euler flow sampler for validation samples (not the pack's DF sampler).

Every latent frame follows its own sigma schedule (rows of `schedule`, [steps+1, F]); frames marked
clean keep their given latent and are fed at timestep 0.
"""

from __future__ import annotations

import torch

from .objective import TIMESTEP_SCALE, shift_sigma


def synchronous_schedule(steps: int, frames: int, shift: float) -> torch.Tensor:
    """[steps+1, F]: Wan's shifted grid from 1 to 0, the same for every frame."""
    u = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return shift_sigma(u, shift).float()[:, None].expand(-1, frames).clone()


@torch.no_grad()
def euler_sample(model, noise: torch.Tensor, schedule: torch.Tensor, frame_text=None, context=None,
                 clean: torch.Tensor | None = None, clean_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Integrate dx/dsigma = v from sigma = schedule[0] to schedule[-1], per frame."""
    x = noise.clone()
    batch, frames = noise.shape[0], noise.shape[2]
    keep = torch.zeros(frames, dtype=torch.bool) if clean_mask is None else clean_mask.bool()
    if keep.any():
        x[:, :, keep] = clean[:, :, keep].to(x.dtype)
    for row in range(schedule.shape[0] - 1):
        sigma, sigma_next = schedule[row].clone(), schedule[row + 1].clone()
        sigma[keep], sigma_next[keep] = 0.0, 0.0
        t = (sigma * TIMESTEP_SCALE)[None].expand(batch, -1).to(x.device)
        velocity = model(x, t, context, frame_text=frame_text).float()
        step = (sigma_next - sigma).to(x.device)[None, None, :, None, None]
        x = (x.float() + step * velocity).to(x.dtype)
    return x
