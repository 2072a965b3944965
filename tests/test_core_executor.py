"""The executor against closed-form denoisers, plain k-diffusion-style loops written here, and
counting denoisers."""

from __future__ import annotations

import math

import pytest
import torch
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_plan
from comfyui_framelevel.nodes.core.executor import ExecutorOptions, execute_plan, windows_per_batch
from comfyui_framelevel.nodes.core.plan import (
    denoiser_calls,
    initial_latents,
    summarize_plan,
    window_evaluations,
    with_condition_sigma,
)
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas

SHAPE = (2, 3, 6, 2, 2)  # B, C, F, H, W
MU, TAU = 0.3, 0.7


def sigma_view(sigma):
    return sigma.view(sigma.shape[0], 1, sigma.shape[1], 1, 1)


def gaussian_posterior_mean(x, sigma, frame_index):
    """Exact E[x0 | x_s] when every element of x0 is N(MU, TAU^2) and x_s = (1-s) x0 + s n."""
    s = sigma_view(sigma).to(x.dtype)
    a = 1 - s
    return MU + a * TAU**2 / (a**2 * TAU**2 + s**2) * (x - a * MU)


def exact_ode_end(noise):
    """Probability-flow ODE of that Gaussian from s = 1 to 0: standardised values are kept."""
    return MU + TAU * noise


class ConstantDenoiser:
    """Returns the known clean video for every frame, whatever it is given; counts calls."""

    def __init__(self, clean):
        self.clean, self.calls, self.rows, self.seen = clean, 0, 0, []

    def __call__(self, x, sigma, frame_index):
        self.calls += 1
        self.rows += x.shape[0]
        self.seen.append((sigma.clone(), frame_index.clone(), x.clone()))
        batch = self.clean.shape[0]
        per_window = [self.clean[:, :, idx] for idx in frame_index[::batch]]
        return torch.cat(per_window).to(x.dtype)


def euler_loop(model, x, sigmas):
    """Plain k-diffusion Euler on a flow model: d = (x - denoised) / sigma."""
    for i in range(len(sigmas) - 1):
        s = float(sigmas[i])
        denoised = model(x, torch.full((x.shape[0], x.shape[2]), s, dtype=x.dtype))
        x = x + (x - denoised) / s * (float(sigmas[i + 1]) - s)
    return x


def dpmpp_2m_loop(model, x, sigmas):
    """Textbook DPM-Solver++(2M) for x_s = alpha x0 + s n with alpha = 1 - s."""
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = model(x, torch.full((x.shape[0], x.shape[2]), s, dtype=x.dtype))
        if s_next == 0:
            x = denoised
            break
        lam = math.log((1 - s) / s) if s < 1 else -math.inf
        lam_next = math.log((1 - s_next) / s_next)
        h = lam_next - lam
        if old is None or not math.isfinite(h_last):
            d = denoised
        else:
            r = h_last / h
            d = (1 + 1 / (2 * r)) * denoised - 1 / (2 * r) * old
        x = (s_next / s) * x - (1 - s_next) * math.expm1(-h) * d
        old, h_last = denoised, h
    return x


def noise(seed=0, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
@pytest.mark.parametrize("schedule", [DFSchedule(0.0), DFSchedule(1.0, anchors=(0, 5)),
                                      DFSchedule(1.5, 2, anchors=(2,))])
def test_constant_denoiser_returns_clean_video_and_anchors_bit_identical(solver, schedule):
    clean = noise(1)
    start_clean = noise(2)  # the anchors' own values differ from what the denoiser claims
    plan = df_plan(flow_sigmas(5, shift=3.0), SHAPE[2], schedule)
    x = initial_latents(plan, noise(0), start_clean)
    den = ConstantDenoiser(clean)
    out = execute_plan(plan, den, x, ExecutorOptions(solver=solver))
    free = [f for f in range(SHAPE[2]) if f not in schedule.anchors]
    assert torch.equal(out[:, :, free], clean[:, :, free])
    assert torch.equal(out[:, :, list(schedule.anchors)], start_clean[:, :, list(schedule.anchors)])
    assert den.calls == denoiser_calls(plan) == window_evaluations(plan)


def test_synchronous_euler_equals_plain_loop():
    sigmas = flow_sigmas(8, shift=5.0)
    plan = df_plan(sigmas, SHAPE[2], DFSchedule(0.0))
    x = noise(3)
    got = execute_plan(plan, gaussian_posterior_mean, x)
    want = euler_loop(lambda x, s: gaussian_posterior_mean(x, s, None), x, sigmas)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)


def test_synchronous_dpmpp_2m_equals_plain_loop_and_beats_euler():
    sigmas = flow_sigmas(6, shift=3.0)
    plan = df_plan(sigmas, SHAPE[2], DFSchedule(0.0))
    x = noise(4)
    got = execute_plan(plan, gaussian_posterior_mean, x, ExecutorOptions(solver="dpmpp_2m"))
    want = dpmpp_2m_loop(lambda x, s: gaussian_posterior_mean(x, s, None), x, sigmas)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    plan = df_plan(flow_sigmas(10), SHAPE[2], DFSchedule(0.0))
    second = execute_plan(plan, gaussian_posterior_mean, x, ExecutorOptions(solver="dpmpp_2m"))
    euler = execute_plan(plan, gaussian_posterior_mean, x)
    exact = exact_ode_end(x)
    assert (second - exact).abs().max() < 0.2 * (euler - exact).abs().max()


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
def test_per_frame_exactness_async_equals_sync_for_a_per_element_denoiser(solver):
    # The Gaussian denoiser acts on each element alone, so every latent follows its own ODE;
    # any schedule that walks each latent through the same levels must give the same video.
    sigmas = flow_sigmas(5, shift=2.0)
    x = noise(5)
    opts = ExecutorOptions(solver=solver)
    sync = execute_plan(df_plan(sigmas, SHAPE[2], DFSchedule(0.0)), gaussian_posterior_mean, x, opts)
    for sch in (DFSchedule(1.0), DFSchedule(2.5, 2), DFSchedule(9.0, 3)):
        got = execute_plan(df_plan(sigmas, SHAPE[2], sch), gaussian_posterior_mean, x, opts)
        assert torch.allclose(got, sync, atol=1e-12, rtol=0)


def test_model_sees_global_frame_index_and_per_frame_sigma():
    sigmas = flow_sigmas(3)
    plan = df_plan(sigmas, SHAPE[2], DFSchedule(1.0), window=4)
    den = ConstantDenoiser(noise(1))
    execute_plan(plan, den, initial_latents(plan, noise(0)))
    for i, (sig, idx, _) in enumerate(den.seen):
        frames = torch.tensor(plan.windows[i][0].frames)
        assert torch.equal(idx, frames.expand(SHAPE[0], -1))
        assert torch.equal(sig, plan.sigmas[i, frames].expand(SHAPE[0], -1))


def test_condition_sigma_renoises_anchors_but_keeps_them():
    plan = with_condition_sigma(df_plan(flow_sigmas(3), SHAPE[2], DFSchedule(0.0, anchors=(0,))), 0.05)
    start = noise(2)
    den = ConstantDenoiser(noise(1))
    out = execute_plan(plan, den, initial_latents(plan, noise(0), start))
    for sig, _, x_in in den.seen:
        assert torch.all(sig[:, 0] == 0.05)
        assert not torch.equal(x_in[:, :, 0], start[:, :, 0])  # the model saw a noisy copy
        assert (x_in[:, :, 0] - start[:, :, 0]).abs().max() < 1.0
    assert torch.equal(out[:, :, 0], start[:, :, 0])
    assert "condition_sigma=0.05" in summarize_plan(plan)
    # the DF planner's condition_sigma setting writes the same plan
    planned = df_plan(flow_sigmas(3), SHAPE[2], DFSchedule(0.0, anchors=(0,)), condition_sigma=0.05)
    den2 = ConstantDenoiser(noise(1))
    out2 = execute_plan(planned, den2, initial_latents(planned, noise(0), start))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(den.seen, den2.seen, strict=True))
    assert torch.equal(out2, out)


def test_callback_and_interrupt():
    plan = df_plan(flow_sigmas(4), SHAPE[2], DFSchedule(0.0))
    seen = []
    execute_plan(plan, gaussian_posterior_mean, noise(0), callback=lambda i, n, x, x0: seen.append((i, n)))
    assert seen == [(i, 4) for i in range(4)]

    class Stop(Exception):
        pass

    calls = {"n": 0}

    def check():
        calls["n"] += 1
        if calls["n"] == 3:
            raise Stop

    with pytest.raises(Stop):
        execute_plan(plan, gaussian_posterior_mean, noise(0), interrupt_check=check)


def test_bad_denoiser_output_and_options():
    plan = df_plan(flow_sigmas(2), SHAPE[2])
    with pytest.raises(ValueError, match="same shape"):
        execute_plan(plan, lambda x, s, i: x[:, :, :1], noise(0))
    with pytest.raises(ValueError, match="solver"):
        execute_plan(plan, gaussian_posterior_mean, noise(0), ExecutorOptions(solver="heun"))
    with pytest.raises(ValueError, match="x must be"):
        execute_plan(plan, gaussian_posterior_mean, noise(0, (1, 1, 5, 1, 1)))


def test_windows_per_batch_helper():
    assert windows_per_batch(10_000, 1_000, reserve_fraction=0.0) == 10
    assert windows_per_batch(10_000, 1_000) == 9
    assert windows_per_batch(500, 1_000) == 1
    assert windows_per_batch(10_000, 1_000, limit=4) == 4
    with pytest.raises(ValueError, match="bytes_per_window"):
        windows_per_batch(10, 0)


def test_solver_registry_is_what_the_nodes_offer():
    from comfyui_framelevel.nodes.core.executor import SOLVERS, make_solver
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcingSampler
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDSampler
    for node in (FrameLevelDiffusionForcingSampler, FrameLevelPMWDSampler):
        assert node.schema().input("solver").choices == tuple(SOLVERS)
    x = torch.zeros(1, 1, 3, 1, 1)
    assert {type(make_solver(name, x)) for name in SOLVERS} == set(SOLVERS.values())
    with pytest.raises(ValueError, match="solver must be one of euler, dpmpp_2m, got 'heun'"):
        make_solver("heun", x)
