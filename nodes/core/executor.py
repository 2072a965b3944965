"""The one executor: runs any :class:`~.plan.Plan` over a denoiser.

Denoiser contract (the ComfyUI glue implements it)::

    denoiser(x, sigma, frame_index) -> x0
    x           [N, C, L, H, W]  N = (windows in this call) * B, window-major: rows k*B..k*B+B-1
                                 are window k of the batch for latent batch elements 0..B-1
    sigma       [N, L]           per-frame flow-matching sigma the model must see
    frame_index [N, L] int64     global latent index of every frame (route frame prompts, RoPE)
    returns x0  [N, C, L, H, W]  the denoised prediction (after CFG)

Per iteration the executor feeds every window of the plan (windows of equal length are stacked
on the batch dimension, at most ``max_windows_per_batch`` per call), fuses the predictions of a
latent seen by several windows as a weighted mean, and steps every latent whose level changes
from its own sigma to its own next sigma. Latents whose level does not change are left untouched,
so anchors come back bit-identical.

Solvers, registered by name in :data:`SOLVERS` (k-diffusion style: the nodes' solver choices are
its keys). Each is exact per frame: a latent's update depends only on its own sigmas and its own
predictions, so latents on different clocks never mix:

* ``euler``: flow-matching Euler ``x' = x + v (s' - s)``, with ``v = (x - x0) / s``, written as
  ``x' = x0 + (s' / s) (x - x0)`` which is the same number but returns x0 exactly at s' = 0.
* ``dpmpp_2m``: DPM-Solver++(2M) in flow form, second order with one stored prediction per frame.
  Chosen over Heun because it costs no extra model evaluations (Heun would evaluate every window
  twice per iteration, and for Diffusion Forcing the whole window, including latents that do not
  move) and because each latent keeps its own history, which is what per-frame multistep solvers
  in SkyReels (UniPC per frame) do. It falls back to Euler on a latent's first step, after a step
  that started at sigma 1, and on the final step to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .fusion import evaluate_windows, gather_window_columns, gather_windows
from .plan import Plan, Window

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ProgressCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]



@dataclass(frozen=True)
class ExecutorOptions:
    """solver: a name in :data:`SOLVERS`. max_windows_per_batch: windows stacked per denoiser call
    (0 = all windows of one length in one call; see :func:`windows_per_batch`). noise_seed: seed
    of the fresh noise used to re-noise conditioning latents (plan.condition_sigmas)."""

    solver: str = "euler"
    max_windows_per_batch: int = 0
    noise_seed: int = 0


def windows_per_batch(free_bytes: int, bytes_per_window: int, reserve_fraction: float = 0.1,
                      limit: int = 0) -> int:
    """How many windows fit in one denoiser call: ``(free_bytes * (1 - reserve_fraction)) //
    bytes_per_window``, at least 1, at most ``limit`` when limit > 0. ``bytes_per_window`` is the
    peak memory of one window evaluation (activations for B latents, cond and uncond)."""
    if bytes_per_window <= 0:
        raise ValueError(f"bytes_per_window must be > 0, got {bytes_per_window}")
    if not 0.0 <= reserve_fraction < 1.0:
        raise ValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction}")
    fit = int(max(free_bytes, 0) * (1.0 - reserve_fraction)) // int(bytes_per_window)
    fit = max(1, fit)
    return min(fit, limit) if limit > 0 else fit


def _sigma_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _model_input(plan: Plan, iteration: int, x: torch.Tensor, generator: torch.Generator):
    """State as the model sees it: clean conditioning latents re-noised to their condition level."""
    sigma = plan.sigmas[iteration].clone()
    cond = plan.condition_row(iteration)
    frames = torch.nonzero(cond > 0).flatten()
    if frames.numel() == 0:
        return x, sigma
    noise = torch.randn(x[:, :, frames].shape, generator=generator, dtype=x.dtype).to(x.device)
    level = cond[frames].to(x.dtype).to(x.device).view(1, 1, -1, 1, 1)
    model_x = x.clone()
    model_x[:, :, frames] = (1 - level) * x[:, :, frames] + level * noise
    sigma[frames] = cond[frames]
    return model_x, sigma


def _evaluate_batch(windows: list[Window], denoiser: Denoiser, model_x: torch.Tensor,
                    sigma: torch.Tensor) -> torch.Tensor:
    batch = model_x.shape[0]
    x_in = gather_windows(model_x, windows)
    sigmas = gather_window_columns(sigma.to(_sigma_dtype(model_x)), batch, windows)
    indices = gather_window_columns(torch.arange(sigma.shape[0]), batch, windows)
    out = denoiser(x_in, sigmas.to(model_x.device), indices.to(model_x.device))
    if out.shape != x_in.shape:
        raise ValueError(f"denoiser returned shape {tuple(out.shape)} for input {tuple(x_in.shape)}; "
                         "it must return the x0 prediction of the same shape")
    return out


def fused_prediction(plan: Plan, iteration: int, denoiser: Denoiser, model_x: torch.Tensor,
                     sigma: torch.Tensor, options: ExecutorOptions,
                     interrupt_check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of the window predictions per latent (:func:`.fusion.evaluate_windows`).
    Returns (x0 [B, C, F, H, W], written bool [F]); a latent written by exactly one window gets
    that prediction bit-exactly; latents written by no window keep the model input (only previews
    ever look at them)."""
    def evaluate(group: list[Window]) -> torch.Tensor:
        return _evaluate_batch(group, denoiser, model_x, sigma)

    return evaluate_windows(model_x, plan.windows[iteration], options.max_windows_per_batch, evaluate,
                            interrupt_check)


def _euler_step(x, x0, s, s_next):
    """x0 + (s'/s)(x - x0), computed in at least float32 (bf16 latents keep their precision)."""
    work = torch.promote_types(x.dtype, torch.float32)
    ratio = (s_next / s).to(work).to(x.device).view(1, 1, -1, 1, 1)
    x0w = x0.to(work)
    return (x0w + ratio * (x.to(work) - x0w)).to(x.dtype)


def _log_snr(s: torch.Tensor) -> torch.Tensor:
    """Flow-matching half log-SNR lambda = log((1 - s) / s): -inf at s = 1, +inf at s = 0."""
    return torch.log1p(-s) - torch.log(s)


class EulerSolver:
    """Flow-matching Euler per frame; keeps no state."""

    def __init__(self, x: torch.Tensor):
        pass

    def step(self, x, x0, frames, s, s_next):
        """Move the latents ``x`` [B, C, n, H, W] of global ``frames`` [n] from sigmas s to s_next."""
        return _euler_step(x, x0, s, s_next)


class DPMPP2MSolver:
    """DPM-Solver++(2M) per frame: each latent remembers its last prediction and its lambda."""

    def __init__(self, x: torch.Tensor):
        self.work = torch.promote_types(x.dtype, torch.float32)
        self.prev_x0 = torch.zeros(x.shape, dtype=self.work, device=x.device)
        self.prev_lambda = torch.full((x.shape[2],), math.nan, dtype=torch.float64)

    def step(self, x, x0, frames, s, s_next):
        lam, lam_next = _log_snr(s), _log_snr(s_next)
        h = lam_next - lam
        h_prev = lam - self.prev_lambda[frames]
        usable = torch.isfinite(h_prev) & torch.isfinite(h) & (s_next > 0)
        coef = torch.where(usable, h / (2.0 * h_prev), torch.zeros_like(h))  # 1 / (2 r), r = h_prev / h
        coef = coef.to(self.work).to(x.device).view(1, 1, -1, 1, 1)
        dev = frames.to(x.device)
        x0w = x0.to(self.work)
        corrected = x0w + coef * (x0w - self.prev_x0[:, :, dev])
        self.prev_x0[:, :, dev] = x0w
        self.prev_lambda[frames] = lam
        return _euler_step(x, corrected, s, s_next)


# name -> solver class, built with the whole video's latents [B, C, F, H, W] at the start of a run
SOLVERS: dict[str, type] = {"euler": EulerSolver, "dpmpp_2m": DPMPP2MSolver}


def make_solver(name: str, x: torch.Tensor):
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {name!r}")
    return SOLVERS[name](x)


def execute_plan(plan: Plan, denoiser: Denoiser, x: torch.Tensor, options: ExecutorOptions = ExecutorOptions(),
                 callback: ProgressCallback | None = None,
                 interrupt_check: Callable[[], None] | None = None) -> torch.Tensor:
    """Run ``plan`` and return the final latents [B, C, F, H, W].

    x: the starting state, every latent at its row-0 level (see :func:`.plan.initial_latents`):
        pure noise for sigma 1, the clean latent for anchors. The input is not modified.
    callback(iteration, total, x, x0): after every iteration, with the new state and the fused
        prediction (for progress bars and previews).
    interrupt_check(): called before every denoiser call; raise from it to cancel.
    """
    if x.ndim != 5 or x.shape[2] != plan.num_frames:
        raise ValueError(f"x must be [B, C, {plan.num_frames}, H, W] for this plan, got {tuple(x.shape)}")
    x = x.clone()
    generator = torch.Generator().manual_seed(options.noise_seed)
    solver = make_solver(options.solver, x)
    total = plan.num_iterations
    for i in range(total):
        model_x, sigma = _model_input(plan, i, x, generator)
        x0, _ = fused_prediction(plan, i, denoiser, model_x, sigma, options, interrupt_check)
        frames = torch.nonzero(plan.moving(i)).flatten()
        if frames.numel():
            s, s_next = plan.sigmas[i, frames], plan.sigmas[i + 1, frames]
            dev = frames.to(x.device)
            x[:, :, dev] = solver.step(x[:, :, dev], x0[:, :, dev], frames, s, s_next)
        if callback is not None:
            callback(i, total, x, x0)
    return x
