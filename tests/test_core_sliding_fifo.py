"""Sliding-window and FIFO planners: hand-derived golden plans, invariants, and equivalence with
a full-length pass for a per-latent denoiser."""

from __future__ import annotations

import pytest
import torch
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_plan
from comfyui_framelevel.nodes.core.executor import ExecutorOptions, execute_plan
from comfyui_framelevel.nodes.core.plan import initial_latents, window_evaluations
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas
from comfyui_framelevel.nodes.core.windows import (
    FIFOOptions,
    SlidingOptions,
    fifo_clip_latents,
    fifo_plan,
    fifo_steps,
    sliding_plan,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def rows(text):
    return torch.tensor([[int(c) for c in r.strip()] for r in text.split("/")])


def layout(plan):
    """Per iteration: list of (frames, weights as 0/1 string)."""
    return [[(w.frames, "".join(str(int(x)) for x in w.weights)) for w in ws] for ws in plan.windows]


# --- sliding window ------------------------------------------------------------------------------

def test_sliding_golden():
    # F = 7, W = 4, S = 2 -> history 2. chunk 0 makes 0..3, chunk 1 makes 4, 5 with history 2, 3,
    # chunk 2 makes 6 with history 4, 5. Two steps per chunk.
    base = flow_sigmas(2, shift=2.0)
    plan = sliding_plan(base, 7, SlidingOptions(window=4, slide=2, history_sigma=0.1))
    want = rows("0000000/1111000/2222000/2222110/2222220/2222221/2222222")
    assert torch.equal(plan.sigmas, base[want])
    assert layout(plan) == [[((0, 1, 2, 3), "1111")]] * 2 + [[((2, 3, 4, 5), "0011")]] * 2 + \
        [[((4, 5, 6), "001")]] * 2
    cond = torch.zeros(6, 7, dtype=torch.float64)
    cond[2:4, 2:4] = 0.1
    cond[4:6, 4:6] = 0.1
    assert torch.equal(plan.condition_sigmas, cond)


@st.composite
def sliding_cases(draw):
    window = draw(st.integers(1, 10))
    frames = draw(st.integers(window, 40))
    slide = draw(st.integers(1, window))
    anchors = draw(st.sets(st.integers(0, frames - 1), max_size=min(3, frames - 1)))
    return frames, SlidingOptions(window, slide, 0.05, draw(st.sampled_from([0.0, 1.0])), 1, tuple(anchors))


@settings(max_examples=120, deadline=None)
@given(sliding_cases())
def test_sliding_invariants(case):
    frames, opts = case
    plan = sliding_plan(flow_sigmas(2), frames, opts)
    made = set()
    for i, ws in enumerate(plan.windows):
        (w,) = ws
        written = set(w.written_frames())
        assert w.length <= opts.window
        history = [f for f in w.frames if f not in written and f not in opts.anchors]
        assert len(history) <= opts.window - opts.slide  # history never exceeds W - S
        assert set(history) <= made  # history was generated before
        assert all(plan.sigmas[i, f] == 0 and plan.sigmas[i + 1, f] == 0 for f in history)  # never updated
        assert max(written) > max(history, default=-1)  # new latents come after the history
        made |= written
    assert made | set(opts.anchors) == set(range(frames))
    assert torch.all(plan.sigmas[-1] == 0)


def per_latent_denoiser(x, sigma, frame_index):
    s = sigma.view(sigma.shape[0], 1, -1, 1, 1).to(x.dtype)
    mu = 0.1 * frame_index.view(frame_index.shape[0], 1, -1, 1, 1).to(x.dtype)
    a, tau2 = 1 - s, 0.5
    return mu + a * tau2 / (a * a * tau2 + s * s) * (x - a * mu)


SHAPE = (1, 2, 9, 1, 2)


def full_pass(base, noise, anchors=(), clean=None, solver="euler"):
    plan = df_plan(base, SHAPE[2], DFSchedule(0.0, anchors=anchors))
    return execute_plan(plan, per_latent_denoiser, initial_latents(plan, noise, clean), ExecutorOptions(solver))


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
def test_sliding_equals_full_pass_for_per_latent_denoiser(solver):
    base = flow_sigmas(5, shift=3.0)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    clean = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    plan = sliding_plan(base, SHAPE[2], SlidingOptions(4, 3, history_sigma=0.05, anchors=(8,)))
    got = execute_plan(plan, per_latent_denoiser, initial_latents(plan, noise, clean), ExecutorOptions(solver))
    assert torch.allclose(got, full_pass(base, noise, (8,), clean, solver), atol=1e-12, rtol=0)
    assert torch.equal(got[:, :, 8], clean[:, :, 8])


@pytest.mark.parametrize("frames, opts, word", [
    (3, SlidingOptions(4, 2), "window=4"), (8, SlidingOptions(4, 0), "slide=0"),
    (8, SlidingOptions(4, 5), "slide=5"), (8, SlidingOptions(4, 2, history_sigma=1.0), "history_sigma"),
    (8, SlidingOptions(4, 2, anchors=(-1,)), "anchor latent -1"),
])
def test_sliding_validation(frames, opts, word):
    with pytest.raises(ValueError, match=word):
        sliding_plan(flow_sigmas(2), frames, opts)


# --- FIFO ----------------------------------------------------------------------------------------
# Latent j has taken p = clamp(r + offset - j, 0, T) steps before iteration r; the queue position
# q = r + offset - j; virtual window m covers j in [c - m d - f + 1, c - m d] (c = r + offset),
# writes positions [m d, m d + d); windows outside the video are shifted in.

FIFO_GOLDEN = [
    ("f2n1", 4, FIFOOptions(2, 1), "0000/1000/2100/2210/2221/2222",
     [[((0, 1), "10")], [((0, 1), "11")], [((1, 2), "11")], [((2, 3), "11")], [((2, 3), "01")]]),
    ("f2n2", 3, FIFOOptions(2, 2), "000/100/210/321/432/443/444",
     [[((0, 1), "10")], [((0, 1), "11")], [((0, 1), "10"), ((1, 2), "11")],
      [((0, 1), "11"), ((1, 2), "01")], [((1, 2), "11")], [((1, 2), "01")]]),
    ("lookahead", 3, FIFOOptions(2, 1, lookahead=True), "000/100/210/221/222",
     [[((0, 1), "10")], [((0, 1), "11")], [((0, 1), "01"), ((1, 2), "01")], [((1, 2), "01")]]),
    ("clip", 4, FIFOOptions(2, 1, start="clip", clip_latents=1), "1000/2100/2210/2221/2222",
     [[((0, 1), "11")], [((1, 2), "11")], [((2, 3), "11")], [((2, 3), "01")]]),
    ("anchor", 4, FIFOOptions(2, 1, anchors=(1,)), "0200/1200/2200/2210/2221/2222",
     [[((0, 1), "10")], [((0, 1), "10")], [((1, 2), "01")], [((2, 3), "11")], [((2, 3), "01")]]),
]


@pytest.mark.parametrize("name, frames, opts, progress, windows", FIFO_GOLDEN, ids=[g[0] for g in FIFO_GOLDEN])
def test_fifo_golden(name, frames, opts, progress, windows):
    base = flow_sigmas(fifo_steps(opts.window, opts.partitions), shift=2.0)
    plan = fifo_plan(base, frames, opts)
    assert torch.equal(plan.sigmas, base[rows(progress)])
    assert layout(plan) == windows


@st.composite
def fifo_cases(draw):
    window = draw(st.sampled_from([1, 2, 3, 4, 6]))
    partitions = draw(st.integers(1, 3))
    lookahead = window % 2 == 0 and draw(st.booleans())
    frames = draw(st.integers(window, 30))
    anchors = draw(st.sets(st.integers(0, frames - 1), max_size=min(2, frames - 1)))
    return frames, FIFOOptions(window, partitions, lookahead, anchors=tuple(anchors))


@settings(max_examples=120, deadline=None)
@given(fifo_cases())
def test_fifo_every_latent_every_level_once_in_order(case):
    frames, opts = case
    steps = fifo_steps(opts.window, opts.partitions)
    base = flow_sigmas(steps)
    plan = fifo_plan(base, frames, opts)
    free = [f for f in range(frames) if f not in opts.anchors]
    for f in free:
        path = torch.unique_consecutive(plan.sigmas[:, f])
        assert torch.equal(path, base)  # every level, once, in order
    level = (plan.sigmas.unsqueeze(-1) == base).float().argmax(-1)
    moved = level[1:] - level[:-1]
    assert torch.all((moved == 0) | (moved == 1))  # one level per iteration
    started = (level[:-1] > 0) & (level[:-1] < steps)
    assert torch.all(moved[started] == 1)  # a latent in the queue never waits
    assert plan.num_iterations == steps + max(free)
    for ws in plan.windows:
        written = [f for w in ws for f in w.written_frames()]
        assert len(written) == len(set(written))  # each latent written by exactly one window
        assert all(w.length == opts.window for w in ws)
        assert len(ws) <= (2 if opts.lookahead else 1) * opts.partitions


def test_fifo_equals_full_pass_and_clip_helper():
    base = flow_sigmas(fifo_steps(2, 2), shift=3.0)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    plan = fifo_plan(base, SHAPE[2], FIFOOptions(2, 2, lookahead=True))
    got = execute_plan(plan, per_latent_denoiser, noise)
    assert torch.allclose(got, full_pass(base, noise), atol=1e-12, rtol=0)
    assert window_evaluations(plan) > plan.num_iterations  # two partitions cost more calls

    clip = torch.arange(3, dtype=torch.float64).view(1, 1, 3, 1, 1)
    clean = fifo_clip_latents(clip, 6, 4)
    assert clean.flatten().tolist() == [0, 0, 1, 2, 0, 0]  # front slot repeats latent 0
    plan = fifo_plan(base, 6, FIFOOptions(2, 2, start="clip", clip_latents=3))
    assert plan.info["drop_latents"] == 1
    x = initial_latents(plan, torch.zeros(1, 1, 6, 1, 1, dtype=torch.float64), clean)
    row0 = plan.sigmas[0]
    assert torch.allclose(x.flatten(), (1 - row0) * clean.flatten())


@pytest.mark.parametrize("frames, opts, steps, word", [
    (8, FIFOOptions(4, 2), 4, "8 steps"), (8, FIFOOptions(3, 1, lookahead=True), 3, "even window"),
    (8, FIFOOptions(2, 1, start="clip"), 2, "clip_latents=0"), (2, FIFOOptions(2, 1, start="clip", clip_latents=1), 2,
                                                                "more than 2"),
    (8, FIFOOptions(2, 1, start="warm"), 2, "start="), (1, FIFOOptions(2, 1), 2, "window=2"),
])
def test_fifo_validation(frames, opts, steps, word):
    with pytest.raises(ValueError, match=word):
        fifo_plan(flow_sigmas(steps), frames, opts)
