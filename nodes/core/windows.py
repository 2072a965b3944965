"""Window loops for long video as planners (paper appendix D): PMWD (algorithm 3), sliding window
(algorithm 1) and FIFO (algorithm 2). Each turns its settings into a :class:`.plan.Plan`; the one
executor runs them. All honour anchors (latents held clean) and validate before sampling.

PMWD: parallel multi-window denoising.

The video of F latents is covered by K windows of W latents. With the paper's
``F_overlap = (K W - F) / (K - 1)`` and ``F_slide = W - F_overlap``, window k starts at
``k * F_slide``. Every iteration evaluates all K windows (batched), averages the x0 predictions of
latents seen by several windows with fusion weights, and then steps every latent on its own sigma.

Window starts when the division is not exact: ``start_k = floor(k * (F - W) / (K - 1))``. This is
exactly ``k * F_slide`` whenever F_slide is an integer; otherwise the remainder is spread evenly over the
gaps (gaps differ by at most one latent; e.g. F = 121, K = 7: starts 0 16 33 50 66 83 100). Window 0 starts at 0,
window K-1 ends exactly at F, so no window runs past the end; every latent is covered because each
gap is at most W (guaranteed by K W >= F). Windows never repeat (K <= F - W + 1).

Instead of K the caller may give a minimum ``overlap``: K is then the fewest windows whose
neighbours overlap by at least that many latents, ``K = 1 + ceil((F - W) / (W - overlap))``.

Fusion weights per window position p (0..W-1):

* ``flat``: 1 (the paper's plain average);
* ``pyramid``: ``min(p + 1, W - p)``, a triangle peaking in the middle (two equal peaks for even W);
* ``linear``: 1 inside, ramps over the overlap with each neighbour: ``(p + 1) / (O_left + 1)`` on the
  first O_left positions and ``(W - p) / (O_right + 1)`` on the last O_right; no ramp at the video
  ends. Two neighbouring ramps sum to 1 over their shared latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .df_schedule import DFSchedule, as_sigma_matrix, check_anchors, df_sigma_matrix
from .plan import Plan, Window, make_plan
from .sigmas import check_base_sigmas, steps_of

# ---------------------------------------------------------------------------------------- PMWD

FUSIONS = ("flat", "pyramid", "linear")


@dataclass(frozen=True)
class PMWDOptions:
    """window: W latents per window (Wan 2.1: 21 = 81 pixel frames). Give exactly one of
    num_windows (K) or overlap (minimum latents shared by neighbouring windows); both may be left
    None when the video is a single window. fusion: "flat", "pyramid" or "linear".
    anchors: latents held clean throughout (only used with a 1-D base schedule)."""

    window: int = 21
    num_windows: int | None = None
    overlap: int | None = None
    fusion: str = "flat"
    anchors: tuple[int, ...] = ()


def windows_for_overlap(num_frames: int, window: int, overlap: int) -> int:
    """Fewest windows whose neighbours share at least ``overlap`` latents."""
    if not 0 <= overlap < window:
        raise ValueError(f"overlap={overlap} latents must be in 0..window-1 ({window - 1}); "
                         "an overlap as long as the window never advances. Lower the overlap")
    if num_frames <= window:
        return 1
    return 1 + math.ceil((num_frames - window) / (window - overlap))


def _check_sizes(num_frames: int, window: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames (latents) must be >= 1, got {num_frames}")
    if window < 1:
        raise ValueError(f"window must be >= 1 latent, got {window}")
    if window > num_frames:
        raise ValueError(f"window={window} latents is longer than the video ({num_frames} latents); "
                         f"set window <= {num_frames} or make the video longer")


def resolve_num_windows(num_frames: int, options: PMWDOptions) -> int:
    """K from the options, validated (see module docstring)."""
    W, F = options.window, num_frames
    _check_sizes(F, W)
    if options.num_windows is not None and options.overlap is not None:
        raise ValueError(f"give num_windows or overlap, not both (got num_windows={options.num_windows}, "
                         f"overlap={options.overlap})")
    if options.num_windows is None:
        if options.overlap is None:
            if F == W:
                return 1
            raise ValueError(f"the video ({F} latents) is longer than one window ({W}); set num_windows "
                             f"(at least {math.ceil(F / W)}) or overlap")
        return windows_for_overlap(F, W, options.overlap)
    K = options.num_windows
    if F == W and K != 1:
        raise ValueError(f"num_windows={K} but the video ({F} latents) is exactly one window; set num_windows=1")
    if F > W and K < 2:
        raise ValueError(f"num_windows={K} cannot cover {F} latents with window={W}; "
                         f"use num_windows >= {math.ceil(F / W)}")
    if K * W < F:
        raise ValueError(f"num_windows={K} x window={W} = {K * W} latents leaves gaps in {F} latents; "
                         f"use num_windows >= {math.ceil(F / W)} or a longer window")
    if F > W and K > F - W + 1:
        raise ValueError(f"num_windows={K} is more than the {F - W + 1} distinct windows of {W} latents "
                         f"in {F}; use num_windows <= {F - W + 1}")
    return K


def window_starts(num_frames: int, window: int, num_windows: int) -> list[int]:
    """``floor(k * (F - W) / (K - 1))`` for k = 0..K-1 (``[0]`` for K = 1)."""
    if num_windows == 1:
        return [0]
    span = num_frames - window
    return [(k * span) // (num_windows - 1) for k in range(num_windows)]


def fusion_weights(starts: list[int], window: int, fusion: str) -> list[tuple[float, ...]]:
    """Per-window weight tuples for the given starts (module docstring has the formulas)."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion={fusion!r} is unknown; choose one of {FUSIONS}")
    W = window
    out = []
    for k, start in enumerate(starts):
        if fusion == "flat":
            out.append((1.0,) * W)
            continue
        if fusion == "pyramid":
            out.append(tuple(float(min(p + 1, W - p)) for p in range(W)))
            continue
        left = starts[k - 1] + W - start if k > 0 else 0
        right = start + W - starts[k + 1] if k + 1 < len(starts) else 0
        weights = []
        for p in range(W):
            w = 1.0
            if p < left:
                w = min(w, (p + 1) / (left + 1))
            if p >= W - right:
                w = min(w, (W - p) / (right + 1))
            weights.append(w)
        out.append(tuple(weights))
    return out


def pmwd_windows(num_frames: int, options: PMWDOptions) -> tuple[Window, ...]:
    """The K windows of one iteration (identical every iteration)."""
    K = resolve_num_windows(num_frames, options)
    starts = window_starts(num_frames, options.window, K)
    weights = fusion_weights(starts, options.window, options.fusion)
    return tuple(Window(tuple(range(s, s + options.window)), w) for s, w in zip(starts, weights, strict=True))


def pmwd_plan(schedule: torch.Tensor, num_frames: int, options: PMWDOptions = PMWDOptions()) -> Plan:
    """PMWD plan. ``schedule`` is a 1-D base schedule (all latents share it: the paper's PMWD) or
    an [I + 1, F] per-latent sigma matrix (e.g. a Diffusion Forcing schedule inside the windows)."""
    anchors = check_anchors(options.anchors, num_frames) if options.anchors else ()
    sigmas = as_sigma_matrix(schedule, num_frames, anchors)
    layout = pmwd_windows(num_frames, options)
    starts = [w.frames[0] for w in layout]
    info = {"window": options.window, "num_windows": len(layout), "starts": starts, "fusion": options.fusion}
    if options.overlap is not None:
        info["overlap"] = options.overlap
    return make_plan("pmwd", sigmas, [layout] * (sigmas.shape[0] - 1), anchors, info=info)


# ------------------------------------------------------------------------------- sliding window


@dataclass(frozen=True)
class SlidingOptions:
    """Sequential sliding window (algorithm 1), all counts in latents.

    window (W) latents per model call; slide (S) new latents per chunk, so the last H = W - S
    latents of what exists are the history. Chunk 0 generates latents 0..W-1; chunk c >= 1
    generates ``[W + (c-1) S, W + c S)`` (the last chunk may be shorter) with the H latents
    before it as history. History is clean and never updated; the model sees it re-noised to
    ``history_sigma`` with fresh noise every iteration (0 = clean). Inside a chunk the new latents
    follow a Diffusion Forcing schedule with ``step_size`` / ``causal_block_size`` (0 = synchronous).
    """

    window: int = 21
    slide: int = 16
    history_sigma: float = 0.0
    step_size: float = 0.0
    causal_block_size: int = 1
    anchors: tuple[int, ...] = ()


def sliding_chunks(num_frames: int, options: SlidingOptions) -> list[tuple[range, range]]:
    """(history, new) latent ranges of every chunk, validated."""
    W, S, F = options.window, options.slide, num_frames
    _check_sizes(F, W)
    if not 1 <= S <= W:
        raise ValueError(f"slide={S} latents must be in 1..window ({W}); slide = window means no "
                         "history, slide > window would skip latents")
    if not 0.0 <= options.history_sigma < 1.0:
        raise ValueError(f"history_sigma={options.history_sigma} must be in [0, 1); small values "
                         "(<= 0.05) keep the history readable")
    chunks = [(range(0, 0), range(0, W))]
    start = W
    while start < F:
        chunks.append((range(start - (W - S), start), range(start, min(start + S, F))))
        start += S
    return chunks


def sliding_plan(base_sigmas: torch.Tensor, num_frames: int, options: SlidingOptions = SlidingOptions()) -> Plan:
    """Sliding-window plan: the chunks one after another, one window per iteration."""
    anchors = set(check_anchors(options.anchors, num_frames)) if options.anchors else set()
    F = num_frames
    state = torch.ones(F, dtype=torch.float64)
    state[list(anchors)] = 0.0
    rows, windows, cond_rows = [state.clone()], [], []
    chunks = sliding_chunks(F, options)
    for history, new in chunks:
        local_anchors = tuple(f - new.start for f in new if f in anchors)
        if len(local_anchors) == len(new):
            continue
        schedule = DFSchedule(options.step_size, options.causal_block_size, local_anchors)
        chunk_sigmas = df_sigma_matrix(base_sigmas, len(new), schedule)
        frames = tuple(history) + tuple(new)
        weights = tuple(0.0 for _ in history) + tuple(0.0 if f in anchors else 1.0 for f in new)
        window = Window(frames, weights)
        cond = torch.zeros(F, dtype=torch.float64)
        cond[list(history)] = options.history_sigma
        for row in chunk_sigmas[1:]:
            windows.append((window,))
            cond_rows.append(cond)
            state = state.clone()
            state[new.start:new.stop] = row
            rows.append(state)
    info = {"window": options.window, "slide": options.slide, "history": options.window - options.slide,
            "chunks": len(chunks), "history_sigma": options.history_sigma, "step_size": options.step_size}
    return make_plan("sliding", torch.stack(rows), windows, sorted(anchors), torch.stack(cond_rows), info)


# ---------------------------------------------------------------------------------------- FIFO

FIFO_STARTS = ("staircase", "clip")


@dataclass(frozen=True)
class FIFOOptions:
    """FIFO diagonal queue (algorithm 2), counts in latents.

    window (f): latents per model call. partitions (n): the queue holds n * f latents on n * f
    levels, so the base schedule must have exactly n * f steps (:func:`fifo_steps`).
    lookahead: 2n windows with stride f/2, each writing only its noisier half (f must be even).
    start: "staircase" starts from pure noise with the Diffusion Forcing staircase (latent j starts
    at iteration j; no warm-up clip); "clip" starts with the queue full: latents 0..n f - 1 hold a
    given clean clip of ``clip_latents`` latents noised to their queue levels (see
    :func:`fifo_clip_latents`); the first ``n f - clip_latents`` latents are warm-up to drop.
    anchors: latents held clean; they keep their place on the diagonal but never move.
    """

    window: int = 21
    partitions: int = 1
    lookahead: bool = False
    start: str = "staircase"
    clip_latents: int = 0
    anchors: tuple[int, ...] = ()


def fifo_steps(window: int, partitions: int = 1) -> int:
    """Sampling steps a FIFO base schedule must have: one level per queue slot, n * f."""
    return window * partitions


def _check_fifo(num_frames: int, steps: int, options: FIFOOptions) -> int:
    _check_sizes(num_frames, options.window)
    queue = options.window * options.partitions
    if options.partitions < 1:
        raise ValueError(f"partitions={options.partitions} must be >= 1")
    if steps != queue:
        raise ValueError(f"FIFO needs one step per queue slot: window x partitions = {queue} steps, but the "
                         f"base schedule has {steps}; build it with flow_sigmas({queue}, shift)")
    if options.lookahead and options.window % 2:
        raise ValueError(f"lookahead needs an even window, got window={options.window}; use {options.window + 1}")
    if options.start not in FIFO_STARTS:
        raise ValueError(f"start={options.start!r} is unknown; choose one of {FIFO_STARTS}")
    if options.start == "clip":
        if not 1 <= options.clip_latents <= queue:
            raise ValueError(f"clip_latents={options.clip_latents} must be in 1..{queue} (the queue length) "
                             "for start='clip'")
        if num_frames <= queue:
            raise ValueError(f"start='clip' fills the first {queue} latents with warm-up; the video needs "
                             f"more than {queue} latents, got {num_frames}")
    return queue


def _fifo_windows(cursor: int, progress: torch.Tensor, steps: int, options: FIFOOptions) -> tuple[Window, ...]:
    """Windows of one FIFO iteration. A latent j sits at queue position q = cursor - j (steps
    taken); virtual window m covers j in [cursor - m d - f + 1, cursor - m d] and writes the d
    latents of positions [m d, m d + d) that are still moving (d = f, or f/2 with lookahead).
    Windows reaching outside the video are shifted inside; windows with equal frames merge."""
    f = options.window
    stride = f // 2 if options.lookahead else f
    frames_total = progress.shape[0]
    active = (progress < steps)
    merged: dict[int, list[float]] = {}
    for m in range(steps // stride):
        top = cursor - m * stride
        owned = [j for j in range(top - stride + 1, top + 1) if 0 <= j < frames_total and bool(active[j])]
        if not owned:
            continue
        start = min(max(top - f + 1, 0), frames_total - f)
        weights = merged.setdefault(start, [0.0] * f)
        for j in owned:
            weights[j - start] = 1.0
    return tuple(Window(tuple(range(s, s + f)), tuple(merged[s])) for s in sorted(merged))


def fifo_plan(base_sigmas: torch.Tensor, num_frames: int, options: FIFOOptions = FIFOOptions()) -> Plan:
    """FIFO plan: every iteration each moving latent goes exactly one level down."""
    base = check_base_sigmas(base_sigmas, "base_sigmas")
    steps = steps_of(base)
    queue = _check_fifo(num_frames, steps, options)
    anchors = check_anchors(options.anchors, num_frames) if options.anchors else ()
    offset = steps - 1 if options.start == "clip" else 0
    last_free = max(j for j in range(num_frames) if j not in anchors)
    iterations = steps + last_free - offset
    j = torch.arange(num_frames)
    rows, windows = [], []
    for r in range(iterations + 1):
        progress = (r + offset - j).clamp(0, steps)
        progress[list(anchors)] = steps
        rows.append(base[progress])
        if r < iterations:
            windows.append(_fifo_windows(r + offset, progress, steps, options))
    info = {"window": options.window, "partitions": options.partitions, "queue": queue,
            "lookahead": options.lookahead, "start": options.start}
    if options.start == "clip":
        info["drop_latents"] = queue - options.clip_latents
    return make_plan("fifo", torch.stack(rows), windows, anchors, info=info)


def fifo_clip_latents(clip: torch.Tensor, num_frames: int, queue: int) -> torch.Tensor:
    """Clean latents [B, C, F, H, W] for ``start='clip'``: latent j < queue holds clip frame
    ``max(0, j - (queue - c))`` (front slots repeat the clip's first latent, the last c slots hold
    the clip in order, as FIFO-Diffusion fills its queue); later latents are zeros (they start as
    pure noise). Pass it as ``clean`` to :func:`.plan.initial_latents`."""
    c = clip.shape[2]
    if not 1 <= c <= queue:
        raise ValueError(f"clip has {c} latents; it must have 1..{queue} (the queue length)")
    shape = list(clip.shape)
    shape[2] = num_frames
    out = clip.new_zeros(shape)
    for j in range(min(queue, num_frames)):
        out[:, :, j] = clip[:, :, max(0, j - (queue - c))]
    return out
