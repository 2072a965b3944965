"""Per-frame sigmas through a model that takes one sigma per batch row (pure helpers).

ComfyUI's model wrapper accepts a scalar sigma per batch row. The pack calls it with a reference
sigma per row (the row's largest per-frame sigma) while the model itself sees each frame's own
timestep; the denoised output is then x - sigma_ref * v, so v = (x - denoised) / sigma_ref is
exact (CFG is linear in v) and each frame's own prediction is x0_f = x_f - sigma_f * v_f.
"""

from __future__ import annotations

import math

import torch


def reference_sigmas(sigma: torch.Tensor) -> torch.Tensor:
    """[N] reference sigma per row: the row's largest sigma, or 1 when every frame is clean (then
    v is multiplied by 0 and the frames come back exactly)."""
    ref = sigma.amax(dim=1)
    return torch.where(ref > 0, ref, torch.ones_like(ref))


def per_frame_x0(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor,
                 sigma_ref: torch.Tensor) -> torch.Tensor:
    """x0 of every frame from a model output made at `sigma_ref`: x [N, C, L, H, W], sigma [N, L].
    Rows whose frames all sit at `sigma_ref` already are `denoised` (returned as is when all are)."""
    if bool((sigma.to(sigma_ref.dtype) == sigma_ref.view(-1, 1)).all()):
        return denoised
    shape = (x.shape[0], 1, x.shape[2]) + (1,) * (x.ndim - 3)
    velocity = (x - denoised) / sigma_ref.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return x - velocity * sigma.to(x.dtype).view(shape)


def anchors_from_mask(mask: torch.Tensor | None) -> tuple[int, ...]:
    """Latent frames kept clean by a denoise mask [B, C, F, H, W] (0 = keep, 1 = generate).

    Every frame must be wholly kept or wholly generated: partial (spatial) masks cannot be honoured
    by holding frames at sigma 0, so they are refused.
    """
    if mask is None:
        return ()
    if mask.ndim != 5:
        raise ValueError(f"a video denoise mask must be [B, C, F, H, W], got {tuple(mask.shape)}")
    per_frame = mask.transpose(0, 2).reshape(mask.shape[2], -1)
    kept = per_frame.amax(dim=1) == 0
    generated = per_frame.amin(dim=1) == 1
    partial = ~(kept | generated)
    if bool(partial.any()):
        raise ValueError(f"latent frames {torch.nonzero(partial).flatten().tolist()} are only partly masked; "
                         "frame-level samplers keep whole latent frames clean. Fix: use "
                         "FrameLevelAnchorFrames, or a mask that is 0 or 1 over each whole frame")
    return tuple(torch.nonzero(kept).flatten().tolist())


def progress_step(iteration: int, iterations: int, steps: int) -> int:
    """Index on a `steps`-long progress bar reached after `iteration` (0-based) of `iterations`."""
    return max(0, math.ceil((iteration + 1) * steps / iterations) - 1)
