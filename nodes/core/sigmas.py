"""Flow-matching sigma schedules (pure).

Wan is a flow-matching model: a latent at noise level sigma in [0, 1] is
``x_sigma = (1 - sigma) * x0 + sigma * noise``. A *base schedule* is a 1-D tensor of sigmas that
starts at the top level (usually 1), strictly descends and ends at exactly 0; ``len - 1`` is the
number of sampling steps T. Every planner in this package takes such a base schedule and decides
which latent sits at which of its levels at every iteration.
"""

from __future__ import annotations

import torch

SIGMA_DTYPE = torch.float64


def flow_shift(sigma: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    """Wan's time shift: ``shift * s / (1 + (shift - 1) * s)``; keeps 0 and 1 fixed, pushes the
    rest towards 1 for shift > 1 (ComfyUI's ModelSamplingSD3 / time_snr_shift)."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}; Wan 2.1 uses 8.0 (1.3B) or 5.0 (14B)")
    return shift * sigma / (1 + (shift - 1) * sigma)


def flow_sigmas(steps: int, shift: float = 1.0) -> torch.Tensor:
    """Base schedule of ``steps`` sampling steps: a linear grid from 1 to 0 with ``steps + 1``
    points, each shifted with :func:`flow_shift`. Equals ComfyUI's "simple" scheduler for a
    ModelSamplingSD3 model with the same shift (4 steps, shift 8: 1, 0.96, 0.889, 0.727, 0)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=SIGMA_DTYPE)
    sigmas = flow_shift(grid, shift)
    sigmas[-1] = 0.0
    return sigmas


def check_base_sigmas(sigmas: torch.Tensor, name: str = "sigmas") -> torch.Tensor:
    """Validate a base schedule and return it as a float64 CPU tensor.

    Raises ValueError unless it is 1-D with at least 2 values in [0, 1], strictly descending and
    ending at exactly 0 (the planners need distinct levels to tell "moved" from "held")."""
    if not isinstance(sigmas, torch.Tensor):
        sigmas = torch.as_tensor(sigmas)
    sigmas = sigmas.detach().to("cpu", SIGMA_DTYPE)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"{name} must be a 1-D schedule with at least 2 values, got shape "
                         f"{tuple(sigmas.shape)}; build one with flow_sigmas(steps, shift)")
    if float(sigmas[-1]) != 0.0:
        raise ValueError(f"{name} must end at 0, got last value {float(sigmas[-1])}; "
                         "append a 0 (a full denoise ends clean)")
    if float(sigmas.max()) > 1.0 or float(sigmas.min()) < 0.0:
        raise ValueError(f"{name} are flow-matching sigmas and must lie in [0, 1], got range "
                         f"[{float(sigmas.min())}, {float(sigmas.max())}]")
    if not bool(torch.all(sigmas[1:] < sigmas[:-1])):
        raise ValueError(f"{name} must be strictly descending, got {sigmas.tolist()}; "
                         "remove repeated values")
    return sigmas


def steps_of(sigmas: torch.Tensor) -> int:
    """Number of sampling steps T of a base schedule (its length minus one)."""
    return int(sigmas.shape[0]) - 1
