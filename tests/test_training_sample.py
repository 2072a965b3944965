"""Validation samples go through the pack's own DF sampler (nodes/core plan + executor)."""

from __future__ import annotations

import json

import pytest
import torch
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas
from comfyui_framelevel.training.config import ConfigError, config_from_dict
from comfyui_framelevel.training.sample import df_sample
from comfyui_framelevel.training.testing import prepare_tiny_run
from comfyui_framelevel.training.train import Trainer
from safetensors.torch import load_file


class OracleVelocity(torch.nn.Module):
    """Knows the clean video: returns the exact flow velocity (x - x0) / sigma for every frame."""

    def __init__(self, x0):
        super().__init__()
        self.x0 = x0

    def forward(self, x, t, context=None, frame_text=None):
        sigma = (t / 1000.0).to(torch.float64)[:, None, :, None, None]
        return ((x.double() - self.x0.double()) / sigma).to(x.dtype)


class LinearVelocity(torch.nn.Module):
    """v = a(t) x + c mean_f(x) + b_f: frames interact (so noise levels per frame matter), smooth."""

    def forward(self, x, t, context=None, frame_text=None):
        s = (t / 1000.0)[:, None, :, None, None].to(x.dtype)
        frames = torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1, 1, 1)
        return (0.5 - s) * x + 0.2 * x.mean(dim=2, keepdim=True) + 0.1 * frames   # frames interact


@pytest.mark.parametrize("step_size,solver", [(0.0, "euler"), (2.0, "euler"), (0.0, "dpmpp_2m"), (1.5, "dpmpp_2m")])
def test_an_oracle_model_is_sampled_to_its_clean_video(step_size, solver):
    x0 = torch.randn(2, 4, 5, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = df_sample(OracleVelocity(x0), noise, steps=6, shift=5.0, schedule=DFSchedule(step_size), solver=solver)
    assert torch.allclose(out, x0, atol=1e-10)


def test_synchronous_df_equals_euler_integration_in_float64():
    noise = torch.randn(1, 4, 5, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model = LinearVelocity()
    sigmas = flow_sigmas(8, 3.0)
    x = noise.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):   # dx/dsigma = v, plain Euler
        t = torch.full((1, 5), float(s) * 1000.0, dtype=torch.float64)
        x = x + (s_next - s) * model(x, t)
    out = df_sample(model, noise, steps=8, shift=3.0)
    assert torch.allclose(out, x, atol=1e-9, rtol=1e-9)


def test_a_staircase_differs_from_the_synchronous_run():
    noise = torch.randn(1, 4, 5, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sync = df_sample(LinearVelocity(), noise, steps=6, shift=3.0)
    stair = df_sample(LinearVelocity(), noise, steps=6, shift=3.0, schedule=DFSchedule(2.0))
    assert (sync - stair).abs().max() > 1e-3


def test_trainer_writes_validation_samples_with_the_df_sampler(tmp_path):
    captions = tmp_path / "story.json"
    captions.write_text(json.dumps({"1": "a fox in snow", "2": "the fox jumps"}))
    raw = prepare_tiny_run(tmp_path, clips=2, data={"validation_captions": [str(captions)]},
                           train={"max_steps": 2, "checkpoint_every": 100},
                           validation={"every": 2, "steps": 3, "step_size": 1.0, "solver": "dpmpp_2m"})
    trainer = Trainer(config_from_dict(raw))
    trainer.fit()
    written = sorted((tmp_path / "out" / "samples").rglob("*.safetensors"))
    assert [p.relative_to(tmp_path / "out" / "samples").as_posix() for p in written] == ["step-00000002/story.safetensors"]
    latent = load_file(str(written[0]))["latent"]
    assert latent.shape == (1, 16, 3, 4, 4) and torch.isfinite(latent).all()
    again = load_file(str(trainer.validate()[0]))["latent"]     # same weights, same seed: same sample
    assert torch.equal(latent, again)


@pytest.mark.parametrize("values,needle", [({"solver": "heun"}, "validation.solver"),
                                           ({"step_size": -1.0}, "validation.step_size"),
                                           ({"causal_block_size": 0}, "validation.causal_block_size")])
def test_bad_validation_settings_are_refused_up_front(tmp_path, values, needle):
    from comfyui_framelevel.training.testing import tiny_run_config
    with pytest.raises(ConfigError, match=needle):
        config_from_dict(tiny_run_config(tmp_path, validation=values))
