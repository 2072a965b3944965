"""Flow-matching objective and the Diffusion Forcing noise sampler (property tests)."""

from __future__ import annotations

import torch
from comfyui_framelevel.nodes.core.sigmas import flow_shift
from comfyui_framelevel.training.objective import (
    FrameNoise,
    NoiseConfig,
    diffusion_forcing_u,
    frame_loss,
    noisy_input,
    sample_frame_noise,
    velocity_target,
)
from hypothesis import given, settings
from hypothesis import strategies as st

configs = st.builds(
    NoiseConfig,
    timestep_sampling=st.sampled_from(["logit_normal", "uniform"]),
    shift=st.floats(0.5, 8.0),
    df_ratio=st.floats(0.0, 1.0),
    df_step=st.floats(0.0, 1.0),
    clean_prefix_ratio=st.floats(0.0, 1.0),
    max_clean_frames=st.integers(0, 5),
)


def generators(count, seed):
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(config=configs, batch=st.integers(1, 4), frames=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_df_sampler_invariants(config, batch, frames, seed):
    levels = sample_frame_noise(batch, frames, config, generators(batch, seed))
    sigma, u, mask = levels.sigma, levels.u, levels.loss_mask
    assert ((sigma >= 0) & (sigma <= 1)).all()
    assert mask.any(dim=1).all(), "every sample keeps at least one frame in the loss"
    assert torch.equal(mask, sigma > 0), "clean frames (sigma = 0) are out of the loss"
    for i in range(batch):
        if levels.is_df[i]:
            gaps = u[i, 1:] - u[i, :-1]
            assert (gaps >= -1e-6).all(), "earlier frames are cleaner (u non-decreasing)"
            assert (gaps <= config.df_step + 1e-6).all(), "neighbours within the step size"
            clean = int((sigma[i] == 0).sum())
            assert (sigma[i, :clean] == 0).all() and (sigma[i, clean:] > 0).all(), "clean frames lead"
        else:
            assert torch.equal(sigma[i], sigma[i, :1].expand(frames)), "synchronous: one level per clip"


@settings(max_examples=30, deadline=None)
@given(u_ref=st.floats(0.001, 0.999), frames=st.integers(1, 12), seed=st.integers(0, 1000),
       data=st.data())
def test_df_walk_keeps_reference_and_zero_step_is_synchronous(u_ref, frames, seed, data):
    ref = data.draw(st.integers(0, frames - 1))
    walk = diffusion_forcing_u(u_ref, ref, frames, 0.3, torch.Generator().manual_seed(seed))
    assert abs(float(walk[ref]) - u_ref) < 1e-12
    flat = diffusion_forcing_u(u_ref, ref, frames, 0.0, torch.Generator().manual_seed(seed))
    assert torch.allclose(flat, torch.full((frames,), u_ref, dtype=torch.float64))


def test_df_ratio_is_respected_on_average_and_same_generator_same_sample():
    config = NoiseConfig(df_ratio=0.3, clean_prefix_ratio=0.0)
    levels = sample_frame_noise(2000, 5, config, generators(2000, 1))
    assert abs(float(levels.is_df.float().mean()) - 0.3) < 0.04
    again = sample_frame_noise(2000, 5, config, generators(2000, 1))
    assert torch.equal(levels.sigma, again.sigma)


def test_shift_is_monotone_and_fixes_the_ends():
    u = torch.linspace(0, 1, 101, dtype=torch.float64)
    sigma = flow_shift(u, 3.0)
    assert sigma[0] == 0 and sigma[-1] == 1 and (sigma[1:] > sigma[:-1]).all() and (sigma >= u).all()


def test_noisy_input_and_velocity_follow_the_straight_path():
    x0, noise = torch.randn(2, 16, 3, 2, 2), torch.randn(2, 16, 3, 2, 2)
    sigma = torch.tensor([[0.0, 0.5, 1.0], [0.25, 0.25, 0.25]])
    x_t = noisy_input(x0, noise, sigma)
    torch.testing.assert_close(x_t[0, :, 0], x0[0, :, 0])
    torch.testing.assert_close(x_t[0, :, 2], noise[0, :, 2])
    # moving along the velocity from x_t by sigma lands on the noise end
    torch.testing.assert_close(x_t + (1 - sigma)[:, None, :, None, None] * velocity_target(x0, noise),
                               noise, atol=1e-5, rtol=0)


def test_clean_frames_do_not_contribute_to_the_loss():
    target = torch.zeros(1, 16, 3, 2, 2)
    prediction = torch.zeros_like(target)
    prediction[:, :, 0] = 100.0  # a huge error on the clean frame only
    levels = FrameNoise(sigma=torch.tensor([[0.0, 0.4, 0.6]]), u=torch.zeros(1, 3),
                        loss_mask=torch.tensor([[False, True, True]]), is_df=torch.tensor([True]))
    assert float(frame_loss(prediction, target, levels)) == 0.0
    prediction[:, :, 1] = 1.0
    assert abs(float(frame_loss(prediction, target, levels)) - 0.5) < 1e-6
