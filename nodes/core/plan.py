"""The plan: a whole sampling run written out as data, before any model call.

A plan for a video of F latent frames and I iterations holds

* ``sigmas`` [I + 1, F]: the noise level of every latent before each iteration (row i) and at the
  end (row I). Iteration i moves latent f from ``sigmas[i, f]`` to ``sigmas[i + 1, f]``; a latent
  whose level does not change is not touched (bit-identical).
* ``windows[i]``: the windows evaluated in iteration i. A :class:`Window` is a list of global
  latent indices that the model sees together (one model input) and one fusion weight per frame.
  A weight of 0 means "context only": the model sees the latent but its prediction is not used.
* ``condition_sigmas`` [I, F] (optional): for a *clean* latent (sigma 0), the level at which the
  model sees it, re-noised with fresh noise every iteration (SkyReels' addnoise_condition, the
  sliding window's history level). 0 = fed clean.
* ``anchors``: latents held clean (sigma 0) from the first to the last row (first/last frame,
  keyframes, a given clip). Their values come from the initial latent and come back unchanged.

Every loop of the pack (Diffusion Forcing, PMWD, sliding window, FIFO) is a *planner* that builds
such a plan; :func:`..executor.execute_plan` runs any of them. Because a plan is data, it can be
validated, printed (:func:`summarize_plan`), drawn (``schedule_picture``), compared with golden
plans in tests and counted (:func:`window_evaluations`, :func:`denoiser_calls`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .sigmas import SIGMA_DTYPE


@dataclass(frozen=True)
class Window:
    """One model input: ``frames`` are global latent indices (distinct, in the order the model
    sees them); ``weights`` are the fusion weights of their predictions (>= 0, 0 = context only)."""

    frames: tuple[int, ...]
    weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.frames) != len(self.weights):
            raise ValueError(f"window has {len(self.frames)} frames but {len(self.weights)} weights")
        if len(self.frames) == 0:
            raise ValueError("a window needs at least one frame")
        if len(set(self.frames)) != len(self.frames):
            raise ValueError(f"window frames must be distinct, got {self.frames}")
        if any(w < 0 for w in self.weights):
            raise ValueError(f"window weights must be >= 0, got {self.weights}")

    @property
    def length(self) -> int:
        return len(self.frames)

    def written_frames(self) -> tuple[int, ...]:
        """Frames whose prediction this window contributes (weight > 0)."""
        return tuple(f for f, w in zip(self.frames, self.weights, strict=True) if w > 0)

    def describe(self) -> str:
        """Compact text: ``[3..9]`` for a contiguous run, else the list; context frames in ()."""
        written = set(self.written_frames())
        contiguous = list(self.frames) == list(range(self.frames[0], self.frames[0] + self.length))
        if contiguous and len(written) == self.length:
            return f"[{self.frames[0]}..{self.frames[-1]}]"
        parts = [str(f) if f in written else f"({f})" for f in self.frames]
        return "[" + " ".join(parts) + "]"


def full_window(frames: Sequence[int], weight: float = 1.0) -> Window:
    """Window over ``frames`` with the same weight for every frame."""
    frames = tuple(int(f) for f in frames)
    return Window(frames, (float(weight),) * len(frames))


@dataclass(frozen=True, eq=False)
class Plan:
    """A complete sampling run as data; see the module docstring for the meaning of each field.

    ``kind`` names the planner ("df", "pmwd", "sliding", "fifo", ...); ``info`` keeps the planner's
    settings for printing (never read by the executor)."""

    kind: str
    sigmas: torch.Tensor
    windows: tuple[tuple[Window, ...], ...]
    anchors: tuple[int, ...] = ()
    condition_sigmas: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.sigmas.shape[1])

    @property
    def num_iterations(self) -> int:
        return int(self.sigmas.shape[0]) - 1

    def moving(self, iteration: int) -> torch.Tensor:
        """Bool [F]: latents whose level changes in ``iteration``."""
        return self.sigmas[iteration + 1] != self.sigmas[iteration]

    def condition_row(self, iteration: int) -> torch.Tensor:
        """Float64 [F]: re-noise level of clean latents in ``iteration`` (zeros when unused)."""
        if self.condition_sigmas is None:
            return torch.zeros(self.num_frames, dtype=SIGMA_DTYPE)
        return self.condition_sigmas[iteration]


def make_plan(kind: str, sigmas: torch.Tensor, windows: Sequence[Sequence[Window]],
              anchors: Sequence[int] = (), condition_sigmas: torch.Tensor | None = None,
              info: dict | None = None) -> Plan:
    """Build and validate a plan (the one constructor planners should use)."""
    sigmas = torch.as_tensor(sigmas).detach().to("cpu", SIGMA_DTYPE)
    if condition_sigmas is not None:
        condition_sigmas = torch.as_tensor(condition_sigmas).detach().to("cpu", SIGMA_DTYPE)
        if not bool(condition_sigmas.any()):
            condition_sigmas = None
    plan = Plan(kind=kind, sigmas=sigmas, windows=tuple(tuple(w) for w in windows),
                anchors=tuple(sorted(int(a) for a in anchors)), condition_sigmas=condition_sigmas,
                info=dict(info or {}))
    validate_plan(plan)
    return plan


def validate_plan(plan: Plan) -> None:
    """Check every promise the executor relies on; raises ValueError naming the broken one."""
    sig = plan.sigmas
    if sig.ndim != 2 or sig.shape[0] < 2 or sig.shape[1] < 1:
        raise ValueError(f"plan sigmas must be [iterations + 1, frames], got {tuple(sig.shape)}")
    frames, iterations = plan.num_frames, plan.num_iterations
    if len(plan.windows) != iterations:
        raise ValueError(f"plan has {iterations} iterations but {len(plan.windows)} window lists")
    if float(sig.min()) < 0 or float(sig.max()) > 1:
        raise ValueError("plan sigmas must lie in [0, 1]")
    if bool((sig[1:] > sig[:-1]).any()):
        bad = torch.nonzero(sig[1:] > sig[:-1])[0].tolist()
        raise ValueError(f"plan sigma goes up at iteration {bad[0]}, latent {bad[1]}")
    if bool(sig[-1].any()):
        raise ValueError(f"plan must end with every latent clean; latents "
                         f"{torch.nonzero(sig[-1]).flatten().tolist()} end above 0")
    for a in plan.anchors:
        if not 0 <= a < frames:
            raise ValueError(f"anchor latent {a} is outside the video (0..{frames - 1})")
        if bool(sig[:, a].any()):
            raise ValueError(f"anchor latent {a} must stay at sigma 0 in every row")
    cond = plan.condition_sigmas
    if cond is not None:
        if tuple(cond.shape) != (iterations, frames):
            raise ValueError(f"condition_sigmas must be [{iterations}, {frames}], got {tuple(cond.shape)}")
        if bool(((cond > 0) & (sig[:-1] > 0)).any()) or float(cond.min()) < 0 or float(cond.max()) > 1:
            raise ValueError("condition_sigmas may only be set (in (0, 1]) on latents at sigma 0")
    for i, windows in enumerate(plan.windows):
        written = torch.zeros(frames, dtype=torch.bool)
        for w in windows:
            if min(w.frames) < 0 or max(w.frames) >= frames:
                raise ValueError(f"iteration {i}: window {w.describe()} reaches outside 0..{frames - 1}")
            written[list(w.written_frames())] = True
        missed = plan.moving(i) & ~written
        if bool(missed.any()):
            raise ValueError(f"iteration {i}: latents {torch.nonzero(missed).flatten().tolist()} "
                             "change level but no window writes them")


def window_evaluations(plan: Plan) -> int:
    """Model evaluations of one latent batch element through the whole plan (windows summed over
    iterations), for a first-order solver; every solver in the executor uses exactly this many."""
    return sum(len(ws) for ws in plan.windows)


def window_batches(windows: Sequence[Window], max_windows_per_batch: int = 0) -> list[list[int]]:
    """Group the windows of one iteration into denoiser calls: windows of equal length, in order,
    at most ``max_windows_per_batch`` per call (0 = no limit). Returns lists of window positions."""
    if max_windows_per_batch < 0:
        raise ValueError(f"max_windows_per_batch must be >= 0 (0 = no limit), got {max_windows_per_batch}")
    by_length: dict[int, list[int]] = {}
    for pos, w in enumerate(windows):
        by_length.setdefault(w.length, []).append(pos)
    batches = []
    for positions in by_length.values():
        size = max_windows_per_batch or len(positions)
        batches.extend(positions[k:k + size] for k in range(0, len(positions), size))
    return batches


def denoiser_calls(plan: Plan, max_windows_per_batch: int = 0) -> int:
    """Number of denoiser calls the executor makes for ``plan`` with that batching knob."""
    return sum(len(window_batches(ws, max_windows_per_batch)) for ws in plan.windows)


def initial_latents(plan: Plan, noise: torch.Tensor, clean: torch.Tensor | None = None) -> torch.Tensor:
    """The state the executor must start from: every latent at its row-0 level,
    ``(1 - sigma) * clean + sigma * noise`` on the frame axis (dim 2) of [B, C, F, H, W].
    Pure-noise latents (sigma 1) are ``noise`` exactly; anchors (sigma 0) are ``clean`` exactly.
    ``clean`` is required as soon as some latent starts below sigma 1."""
    if noise.ndim != 5 or noise.shape[2] != plan.num_frames:
        raise ValueError(f"noise must be [B, C, {plan.num_frames}, H, W], got {tuple(noise.shape)}")
    row = plan.sigmas[0]
    if clean is None:
        if bool((row < 1).any()):
            raise ValueError("clean latents are needed: latents "
                             f"{torch.nonzero(row < 1).flatten().tolist()} start below sigma 1")
        return noise.clone()
    if clean.shape != noise.shape:
        raise ValueError(f"clean must have the noise shape {tuple(noise.shape)}, got {tuple(clean.shape)}")
    x = noise.clone()
    for f in range(plan.num_frames):
        s = float(row[f])
        if s == 0.0:
            x[:, :, f] = clean[:, :, f]
        elif s < 1.0:
            x[:, :, f] = (1 - s) * clean[:, :, f] + s * noise[:, :, f]
    return x


def with_condition_sigma(plan: Plan, sigma: float, frames: Sequence[int] | None = None) -> Plan:
    """Copy of ``plan`` whose clean latents ``frames`` (default: the anchors) are fed to the model
    re-noised to ``sigma`` with fresh noise every iteration (SkyReels' addnoise_condition; the
    SkyReels CLI value a in 0..1000 is sigma = a / 1000). They still never change."""
    if not 0.0 <= sigma <= 1.0:
        raise ValueError(f"condition sigma must be in [0, 1], got {sigma}; small values like 0.02 "
                         "are typical (SkyReels addnoise_condition 20)")
    frames = plan.anchors if frames is None else tuple(frames)
    cond = plan.condition_row(0).new_zeros(plan.num_iterations, plan.num_frames)
    if plan.condition_sigmas is not None:
        cond = plan.condition_sigmas.clone()
    for f in frames:
        clean_rows = plan.sigmas[:-1, f] == 0
        cond[clean_rows, f] = sigma
    return make_plan(plan.kind, plan.sigmas, plan.windows, plan.anchors, cond,
                     {**plan.info, "condition_sigma": sigma})


def _layout_key(windows: Sequence[Window]) -> tuple:
    return tuple((w.frames, w.weights) for w in windows)


def summarize_plan(plan: Plan, max_lines: int = 12) -> str:
    """Readable multi-line summary: settings, counts and the window layout, with runs of
    iterations that share one layout folded into a single line."""
    lines = [f"{plan.kind} plan: {plan.num_frames} latents, {plan.num_iterations} iterations, "
             f"{window_evaluations(plan)} window evaluations "
             f"({denoiser_calls(plan)} denoiser calls when each iteration is one batch)"]
    if plan.info:
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in plan.info.items()))
    if plan.anchors:
        lines.append(f"anchors (held clean): {list(plan.anchors)}")
    runs: list[tuple[int, int, tuple]] = []
    for i, ws in enumerate(plan.windows):
        key = _layout_key(ws)
        if runs and runs[-1][2] == key:
            runs[-1] = (runs[-1][0], i, key)
        else:
            runs.append((i, i, key))
    for start, stop, _ in runs[:max_lines]:
        ws = plan.windows[start]
        span = f"iteration {start}" if start == stop else f"iterations {start}-{stop}"
        lines.append(f"  {span}: {len(ws)} window(s) " + " ".join(w.describe() for w in ws))
    if len(runs) > max_lines:
        lines.append(f"  ... {len(runs) - max_lines} more layouts")
    return "\n".join(lines)
