"""PMWD planner: golden window layouts (worked out by hand from F_overlap = (KW - F)/(K - 1) and
the floor spreading rule), coverage/weight properties, fusion arithmetic and equivalence with a
single full-length pass for per-latent denoisers."""

from __future__ import annotations

import math

import pytest
import torch
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_plan, df_sigma_matrix
from comfyui_framelevel.nodes.core.executor import ExecutorOptions, execute_plan
from comfyui_framelevel.nodes.core.plan import denoiser_calls, initial_latents, window_evaluations
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas
from comfyui_framelevel.nodes.core.windows import PMWDOptions, pmwd_plan, pmwd_windows
from hypothesis import given, settings
from hypothesis import strategies as st

W = 21
GOLDEN_K = [
    # F, K, starts. Exact cases: F_overlap = (K*21 - F)/(K - 1), F_slide = 21 - F_overlap, start k*F_slide
    (21, 1, [0]),
    (41, 2, [0, 20]),                     # overlap 1, slide 20
    (33, 2, [0, 12]),                     # overlap 9, slide 12
    (61, 3, [0, 20, 40]),                 # overlap 1
    (81, 4, [0, 20, 40, 60]),             # overlap 1
    (81, 5, [0, 15, 30, 45, 60]),         # overlap 6, slide 15
    (121, 6, [0, 20, 40, 60, 80, 100]),   # overlap 1
    (121, 11, [10 * k for k in range(11)]),  # overlap 11, slide 10
    # non-exact: overlap (63-50)/2 = 6.5 -> starts floor(k*29/2) = 0, 14, 29
    (50, 3, [0, 14, 29]),
    # non-exact: overlap 26/6 -> starts floor(k*100/6) = 0, 16, 33, 50, 66, 83, 100
    (121, 7, [0, 16, 33, 50, 66, 83, 100]),
    # non-exact: F=100, K=5 -> floor(k*79/4) = 0, 19, 39, 59, 79
    (100, 5, [0, 19, 39, 59, 79]),
    (22, 2, [0, 1]),
]
GOLDEN_OVERLAP = [
    # F, overlap, starts: K = 1 + ceil((F - 21)/(21 - overlap)), then the same starts rule
    (81, 5, [0, 15, 30, 45, 60]),           # K = 1 + ceil(60/16) = 5
    (121, 11, [10 * k for k in range(11)]),  # K = 1 + ceil(100/10) = 11
    (100, 0, [0, 19, 39, 59, 79]),          # K = 1 + ceil(79/21) = 5
    (41, 1, [0, 20]),                       # K = 1 + ceil(20/20) = 2
    (42, 1, [0, 10, 21]),                   # K = 1 + ceil(21/20) = 3 -> floor(k*21/2)
]


@pytest.mark.parametrize("F, K, starts", GOLDEN_K)
def test_golden_starts_from_num_windows(F, K, starts):
    windows = pmwd_windows(F, PMWDOptions(window=W, num_windows=K))
    assert [w.frames for w in windows] == [tuple(range(s, s + W)) for s in starts]


@pytest.mark.parametrize("F, overlap, starts", GOLDEN_OVERLAP)
def test_golden_starts_from_overlap(F, overlap, starts):
    windows = pmwd_windows(F, PMWDOptions(window=W, overlap=overlap))
    assert [w.frames[0] for w in windows] == starts


def test_golden_weights_w5():
    # F = 8, W = 5, K = 2 -> starts 0, 3, overlap latents 3, 4
    flat = pmwd_windows(8, PMWDOptions(5, 2, fusion="flat"))
    assert [w.weights for w in flat] == [(1, 1, 1, 1, 1)] * 2
    pyr = pmwd_windows(8, PMWDOptions(5, 2, fusion="pyramid"))
    assert [w.weights for w in pyr] == [(1, 2, 3, 2, 1)] * 2
    lin = pmwd_windows(8, PMWDOptions(5, 2, fusion="linear"))
    assert lin[0].weights == (1, 1, 1, 2 / 3, 1 / 3)
    assert lin[1].weights == (1 / 3, 2 / 3, 1, 1, 1)


@pytest.mark.parametrize("F, opts, word", [
    (10, PMWDOptions(21, 1), "longer than the video"),
    (30, PMWDOptions(21, overlap=21), "overlap=21"),
    (30, PMWDOptions(21, 1), "num_windows=1"),
    (30, PMWDOptions(21), "set num_windows"),
    (50, PMWDOptions(21, 2), "leaves gaps"),
    (22, PMWDOptions(21, 3), "distinct windows"),
    (21, PMWDOptions(21, 2), "exactly one window"),
    (30, PMWDOptions(21, 2, 3), "not both"),
    (30, PMWDOptions(21, 2, fusion="gauss"), "fusion"),
    (30, PMWDOptions(21, 2, anchors=(30,)), "anchor latent 30"),
])
def test_invalid_settings_are_named(F, opts, word):
    with pytest.raises(ValueError, match=word):
        pmwd_plan(flow_sigmas(2), F, opts)


@st.composite
def layouts(draw):
    window = draw(st.integers(1, 24))
    frames = draw(st.integers(window, 130))
    fusion = draw(st.sampled_from(["flat", "pyramid", "linear"]))
    if frames == window:
        return frames, PMWDOptions(window, 1, fusion=fusion)
    if draw(st.booleans()):
        k = draw(st.integers(math.ceil(frames / window), max(math.ceil(frames / window), frames - window + 1)))
        return frames, PMWDOptions(window, max(k, 2), fusion=fusion)
    return frames, PMWDOptions(window, overlap=draw(st.integers(0, window - 1)), fusion=fusion)


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_coverage_and_weight_invariants(case):
    frames, opts = case
    windows = pmwd_windows(frames, opts)
    starts = [w.frames[0] for w in windows]
    assert starts[0] == 0 and starts[-1] + opts.window == frames
    assert starts == sorted(set(starts))
    assert all(w.length == opts.window for w in windows)
    weight_sum = torch.zeros(frames, dtype=torch.float64)
    for w in windows:
        weight_sum[list(w.frames)] += torch.tensor(w.weights, dtype=torch.float64)
    assert torch.all(weight_sum > 0)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    if gaps:
        assert max(gaps) - min(gaps) <= 1
    if opts.overlap is not None and len(windows) > 1:
        assert all(opts.window - g >= opts.overlap for g in gaps)
    if opts.num_windows and opts.num_windows > 1:
        slide = opts.window - (opts.num_windows * opts.window - frames) / (opts.num_windows - 1)
        if slide == int(slide):
            assert starts == [k * int(slide) for k in range(opts.num_windows)]
    if opts.fusion == "linear" and len(windows) == 2:
        overlap = starts[0] + opts.window - starts[1]
        shared = list(range(starts[1], starts[1] + overlap))
        assert torch.allclose(weight_sum[shared], torch.ones(len(shared), dtype=torch.float64))


SHAPE = (1, 2, 11, 2, 2)


def per_latent_denoiser(x, sigma, frame_index):
    """Exact Gaussian posterior mean with a per-latent mean 0.1 * global index: each latent's
    prediction depends on that latent, its sigma and its global index only."""
    s = sigma.view(sigma.shape[0], 1, -1, 1, 1).to(x.dtype)
    mu = 0.1 * frame_index.view(frame_index.shape[0], 1, -1, 1, 1).to(x.dtype)
    a, tau2 = 1 - s, 0.5
    return mu + a * tau2 / (a * a * tau2 + s * s) * (x - a * mu)


@pytest.mark.parametrize("opts", [PMWDOptions(5, 3), PMWDOptions(4, 4, fusion="pyramid"),
                                  PMWDOptions(6, overlap=3, fusion="linear", anchors=(0, 10))])
@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
def test_pmwd_equals_one_full_pass_for_per_latent_denoiser(opts, solver):
    base = flow_sigmas(6, shift=3.0)
    F = SHAPE[2]
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    clean = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    full = df_plan(base, F, DFSchedule(0.0, anchors=opts.anchors))
    plan = pmwd_plan(base, F, opts)
    o = ExecutorOptions(solver=solver, max_windows_per_batch=2)
    want = execute_plan(full, per_latent_denoiser, initial_latents(full, noise, clean), o)
    got = execute_plan(plan, per_latent_denoiser, initial_latents(plan, noise, clean), o)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    assert torch.equal(got[:, :, list(opts.anchors)], clean[:, :, list(opts.anchors)])


def test_pmwd_with_df_schedule_inside_windows_equals_full_pass():
    base = flow_sigmas(4)
    matrix = df_sigma_matrix(base, SHAPE[2], DFSchedule(1.0, 2))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plan = pmwd_plan(matrix, SHAPE[2], PMWDOptions(5, 3))
    full = df_plan(base, SHAPE[2], DFSchedule(1.0, 2))
    assert torch.allclose(execute_plan(plan, per_latent_denoiser, noise),
                          execute_plan(full, per_latent_denoiser, noise), atol=1e-12, rtol=0)


@pytest.mark.parametrize("fusion", ["flat", "pyramid", "linear"])
def test_overlap_predictions_are_weighted_means(fusion):
    # F = 6, W = 4, K = 2 -> windows [0..3], [2..5]; each window predicts the constant "its first
    # global index": 0 for window 0, 2 for window 1. Latents 2, 3 are shared.
    # flat: (0 + 2)/2 = 1 for both; pyramid [1,2,2,1]: latent 2 = (0*2 + 2*1)/3, latent 3 = (0*1 + 2*2)/3;
    # linear (ramps 2/3, 1/3 and 1/3, 2/3): the same as pyramid.
    want = {"flat": [0, 0, 1, 1, 2, 2], "pyramid": [0, 0, 2 / 3, 4 / 3, 2, 2], "linear": [0, 0, 2 / 3, 4 / 3, 2, 2]}
    plan = pmwd_plan(flow_sigmas(1), 6, PMWDOptions(4, 2, fusion=fusion))

    def first_index(x, sigma, frame_index):
        return frame_index[:, :1].to(x.dtype).view(-1, 1, 1, 1, 1).expand_as(x).clone()

    out = execute_plan(plan, first_index, torch.randn(1, 1, 6, 1, 1, dtype=torch.float64))
    assert torch.allclose(out.flatten(), torch.tensor(want[fusion], dtype=torch.float64))


@pytest.mark.parametrize("per_batch, calls_per_iteration", [(0, 1), (1, 5), (2, 3), (5, 1)])
def test_counting_denoiser_matches_plan(per_batch, calls_per_iteration):
    steps = 3
    plan = pmwd_plan(flow_sigmas(steps), 81, PMWDOptions(21, 5))
    calls, rows = [], []

    def counting(x, sigma, frame_index):
        calls.append(1)
        rows.append(x.shape[0])
        return torch.zeros_like(x)

    execute_plan(plan, counting, torch.randn(2, 1, 81, 1, 1), ExecutorOptions(max_windows_per_batch=per_batch))
    assert len(calls) == denoiser_calls(plan, per_batch) == steps * calls_per_iteration
    assert sum(rows) == 2 * window_evaluations(plan) == 2 * steps * 5
