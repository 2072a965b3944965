"""Diffusion Forcing schedules: every latent frame walks down the base schedule on its own clock.

Rule (T = sampling steps of the base schedule, s = step size, c = causal block size):

* latents are grouped into blocks of c consecutive latents from latent 0 (the last block may be
  shorter); a block moves as one;
* blocks made only of anchors are *held* (sigma 0 in every row) and do not take part in the
  staircase; every other block gets a rank r = 0, 1, 2, ... in video order;
* ``progress(i, block) = clamp(i - floor(r * min(s, T)), 0, T)`` is the number of steps the block
  has taken before iteration i; its sigma is ``base[progress]``. Anchors inside a free block stay 0;
* iterations I = T + floor(r_last * min(s, T)); row I is all zeros.

So s = 0 is the synchronous schedule (I = T), s = 1 lets neighbouring blocks differ by one step,
s >= T is fully autoregressive (a block starts on the iteration after its predecessor finished),
and a fractional s is the Diffusion Forcing paper's pyramid ``uncertainty_scale``: its
``level(m, t) = clip(K + floor(t * u) - m, 0, K)`` is our ``T - progress`` with K = T, u = s.

SkyReels-V2 (``generate_timestep_matrix``): ``ar_step`` = s, ``causal_block_size`` = c and
``num_pre_ready`` = anchors at latents 0..num_pre_ready-1. Its 1-based row r holds index
``clamp(r - rank * ar_step, 0, T + 1)`` per block, where index k in 1..T means "evaluated at the
k-th timestep and stepped", 0 "not started" and T + 1 "done"; our row i = r - 1 is then
``base[clamp(k - 1, 0, T)]``. SkyReels lets a block start right after its predecessor is done,
which is exactly our cap of s at T. Its row count T + (B - 1) * ar_step equals our I.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .plan import Plan, Window, full_window, make_plan, with_condition_sigma
from .sigmas import check_base_sigmas, steps_of

_FLOOR_EPS = 1e-9  # 0.1 * 30 is 3.0000000000000004 in floats; floor must still say 3


@dataclass(frozen=True)
class DFSchedule:
    """Settings of a Diffusion Forcing schedule (all in latent frames / steps).

    step_size: allowed difference in steps between neighbouring blocks (0 = synchronous,
        >= steps = autoregressive; fractional allowed).
    causal_block_size: latents that move together (SkyReels uses 5 for its async models).
    anchors: latent indices held clean (sigma 0) throughout: first/last frame, keyframes, prefix.
    """

    step_size: float = 0.0
    causal_block_size: int = 1
    anchors: tuple[int, ...] = ()


def from_skyreels(ar_step: int, causal_block_size: int = 1, num_pre_ready: int = 0) -> DFSchedule:
    """The schedule SkyReels-V2 builds with these arguments (``num_pre_ready`` in latents)."""
    return DFSchedule(step_size=float(ar_step), causal_block_size=causal_block_size,
                      anchors=tuple(range(num_pre_ready)))


def check_anchors(anchors: Sequence[int], num_frames: int) -> tuple[int, ...]:
    """Sorted distinct anchors; ValueError naming the bad index otherwise."""
    out = sorted({int(a) for a in anchors})
    for a in out:
        if not 0 <= a < num_frames:
            raise ValueError(f"anchor latent {a} is outside the video of {num_frames} latents "
                             f"(valid 0..{num_frames - 1}); anchors are latent indices, convert pixel "
                             "frames with frames.latent_of_pixel")
    if len(out) == num_frames:
        raise ValueError(f"every latent ({num_frames}) is an anchor: nothing left to generate; "
                         "remove an anchor or lengthen the video")
    return tuple(out)


def _check_schedule(schedule: DFSchedule, num_frames: int) -> tuple[int, ...]:
    if num_frames < 1:
        raise ValueError(f"num_frames (latents) must be >= 1, got {num_frames}")
    if not schedule.step_size >= 0 or math.isinf(schedule.step_size):
        raise ValueError(f"step_size must be a finite number >= 0 (0 = synchronous), got {schedule.step_size}")
    if schedule.causal_block_size < 1:
        raise ValueError(f"causal_block_size must be >= 1 latent, got {schedule.causal_block_size}")
    return check_anchors(schedule.anchors, num_frames)


def block_delays(num_frames: int, steps: int, schedule: DFSchedule) -> list[int | None]:
    """Per latent: the iteration at which its block starts, or None for anchors."""
    anchors = set(_check_schedule(schedule, num_frames))
    size = schedule.causal_block_size
    step = min(float(schedule.step_size), float(steps))
    delays: list[int | None] = []
    rank = -1
    for start in range(0, num_frames, size):
        block = range(start, min(start + size, num_frames))
        if all(f in anchors for f in block):
            delays.extend(None for _ in block)
            continue
        rank += 1
        delay = math.floor(rank * step + _FLOOR_EPS)
        delays.extend(None if f in anchors else delay for f in block)
    return delays


def df_progress(num_frames: int, steps: int, schedule: DFSchedule) -> torch.Tensor:
    """Int64 [I + 1, F]: steps taken by each latent before each iteration (anchors count as done)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    delays = block_delays(num_frames, steps, schedule)
    iterations = steps + max(d for d in delays if d is not None)
    rows = torch.arange(iterations + 1).unsqueeze(1)
    delay = torch.tensor([steps if d is None else d for d in delays]).unsqueeze(0)
    progress = (rows - delay).clamp(0, steps)
    anchored = torch.tensor([d is None for d in delays])
    progress[:, anchored] = steps
    return progress


def df_sigma_matrix(base_sigmas: torch.Tensor, num_frames: int, schedule: DFSchedule) -> torch.Tensor:
    """Float64 [I + 1, F] per-iteration per-latent sigma of the schedule (see module docstring)."""
    base = check_base_sigmas(base_sigmas, "base_sigmas")
    return base[df_progress(num_frames, steps_of(base), schedule)]


def df_iterations(num_frames: int, steps: int, schedule: DFSchedule) -> int:
    """Iterations of the schedule, known before sampling: T + floor(last rank * min(s, T))."""
    delays = block_delays(num_frames, steps, schedule)
    return steps + max(d for d in delays if d is not None)


def moving_window(sigmas: torch.Tensor, window: int) -> list[tuple[int, int]]:
    """SkyReels' moving model window for a video longer than the model: per iteration the span
    [end - window, end) where end is one past the last latent that has started moving (at least
    ``window``). Raises ValueError when a moving latent would fall outside it."""
    iterations = sigmas.shape[0] - 1
    spans, end = [], window
    for i in range(iterations):
        moving = torch.nonzero(sigmas[i + 1] != sigmas[i]).flatten()
        if moving.numel():
            end = max(end, int(moving.max()) + 1)
            if int(moving.min()) < end - window:
                raise ValueError(
                    f"window={window} latents is too short for this step_size: at iteration {i} latents "
                    f"{int(moving.min())}..{int(moving.max())} move together. Raise step_size (needs "
                    f">= steps / window blocks), lengthen the window, or use PMWD / sliding window")
        spans.append((end - window, end))
    return spans


def df_plan(base_sigmas: torch.Tensor, num_frames: int, schedule: DFSchedule = DFSchedule(),
            window: int | None = None, condition_sigma: float = 0.0) -> Plan:
    """Plan of a Diffusion Forcing run: one window per iteration.

    window: latents per model call; None (or >= num_frames) = the whole video every iteration.
        A shorter window moves along the video like SkyReels' ``base_num_frames`` interval.
    condition_sigma: feed anchors re-noised to this level (SkyReels addnoise_condition / 1000).
    """
    sigmas = df_sigma_matrix(base_sigmas, num_frames, schedule)
    anchors = check_anchors(schedule.anchors, num_frames)
    if window is None or window >= num_frames:
        layout = (full_window(range(num_frames)),)
        windows: list[tuple[Window, ...]] = [layout] * (sigmas.shape[0] - 1)
    else:
        if window < 1:
            raise ValueError(f"window must be >= 1 latent (or None for the whole video), got {window}")
        windows = [(full_window(range(a, b)),) for a, b in moving_window(sigmas, window)]
    info = {"steps": steps_of(base_sigmas), "step_size": schedule.step_size,
            "causal_block_size": schedule.causal_block_size, "window": window or num_frames}
    plan = make_plan("df", sigmas, windows, anchors, info=info)
    if condition_sigma:
        plan = with_condition_sigma(plan, condition_sigma)
    return plan


def as_sigma_matrix(schedule: torch.Tensor, num_frames: int, anchors: Sequence[int] = ()) -> torch.Tensor:
    """Accept either a 1-D base schedule (-> synchronous matrix, anchors held at 0) or a ready
    [I + 1, F] per-latent matrix (e.g. from :func:`df_sigma_matrix`; anchors must already be 0)."""
    schedule = torch.as_tensor(schedule)
    if schedule.ndim == 1:
        return df_sigma_matrix(schedule, num_frames, DFSchedule(0.0, anchors=tuple(anchors)))
    matrix = schedule.detach().to("cpu", torch.float64)
    if matrix.ndim != 2 or matrix.shape[1] != num_frames or matrix.shape[0] < 2:
        raise ValueError(f"schedule must be a 1-D base schedule or an [iterations + 1, {num_frames}] "
                         f"sigma matrix, got shape {tuple(matrix.shape)}")
    for a in check_anchors(anchors, num_frames):
        if bool(matrix[:, a].any()):
            raise ValueError(f"anchor latent {a} is not held at sigma 0 by the given schedule matrix; "
                             "build it with df_sigma_matrix(..., DFSchedule(anchors=...))")
    return matrix
