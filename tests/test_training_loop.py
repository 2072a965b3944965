"""The training loop: config errors, overfitting a tiny set, 2-process equality, SIGKILL + resume."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import comfyui_framelevel.training as training_package
import pytest
import torch
from comfyui_framelevel.training.config import ConfigError, config_from_dict
from comfyui_framelevel.training.data.dataset import collate
from comfyui_framelevel.training.testing import prepare_tiny_run, tiny_run_config, to_toml
from comfyui_framelevel.training.train import Trainer, micro_batch_loss
from safetensors.torch import load_file

ROOT = Path(training_package.__file__).resolve().parents[1]  # the pack, wherever tests run from
CLI = ROOT / "training" / "cli.py"
ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.mark.parametrize("section, values, needle", [
    ("train", {"max_step": 3}, "did you mean 'max_steps'"),
    ("objective", {"df_ratio": 1.5}, "objective.df_ratio = 1.5 is out of range"),
    ("optim", {"optimizer": "sgd"}, "optim.optimizer = 'sgd' is not allowed"),
    ("data", {"frame_buckets": [80]}, "data.frame_buckets[0] = 80: pixel frame counts must be 4k+1"),
    ("data", {"resolutions": [[480, 830]]}, "multiples of 16"),
    ("train", {"global_batch_size": 3, "gradient_accumulation_steps": 2}, "use a multiple of 2"),
    ("lora", {"rank": "8"}, "lora.rank = '8': expected an integer"),
])
def test_config_errors_name_key_value_and_fix(tmp_path, section, values, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config_from_dict(tiny_run_config(tmp_path, **{section: values}))


def _fixed_loss(trainer: Trainer) -> float:
    batch = collate(trainer.data, list(range(len(trainer.data))), list(range(10**6, 10**6 + len(trainer.data))), 16)
    with torch.no_grad():
        return float(micro_batch_loss(trainer.model, batch, trainer.config, "cpu")[0])


@pytest.mark.parametrize("lora", [False, True])
def test_loss_decreases_on_a_tiny_overfit_set(tmp_path, lora):
    sections = {"train": {"max_steps": 40, "checkpoint_every": 1000}, "objective": {"df_ratio": 0.5}}
    if lora:
        sections["lora"] = {"rank": 8, "alpha": 8}
        sections["optim"] = {"learning_rate": 1e-2}
    raw = prepare_tiny_run(tmp_path, clips=2, **sections)
    trainer = Trainer(config_from_dict(raw))
    before = _fixed_loss(trainer)
    trainer.fit()
    after = _fixed_loss(trainer)
    assert after < 0.8 * before, (before, after)


def _launch(args, env_extra=None, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _train_cmd(config, output_dir, *extra):
    return [sys.executable, str(CLI), "train", "--config", str(config), "--set",
            f'train.output_dir="{output_dir}"', "--set", 'train.export_dtype="fp32"', *extra]


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """Tolerance 1e-4 absolute on every weight after 6 AdamW steps (measured ~1e-5: gloo sums in another order)."""
    raw = prepare_tiny_run(tmp_path, clips=4, train={"max_steps": 6, "checkpoint_every": 3})
    config = tmp_path / "run.toml"
    config.write_text(to_toml(raw))
    single = _launch(_train_cmd(config, tmp_path / "one"))
    assert single.wait(240) == 0, single.stdout.read()
    two = _launch([str(ACCELERATE), "launch", "--config_file", str(ROOT / "training/configs/cpu_2proc.yaml"),
                   "--num_cpu_threads_per_process", "1", *_train_cmd(config, tmp_path / "two")[1:]])
    assert two.wait(240) == 0, two.stdout.read()
    assert (tmp_path / "two/checkpoints/step-00000006/random_states_1.pkl").exists()  # really 2 processes
    a, b = load_file(str(tmp_path / "one/model.safetensors")), load_file(str(tmp_path / "two/model.safetensors"))
    assert set(a) == set(b)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    initial = Trainer(config_from_dict(raw)).accelerator.unwrap_model(Trainer(config_from_dict(raw)).model)
    moved = max(float((a[k] - v).abs().max()) for k, v in initial.state_dict().items())
    assert moved > 1e-3, "training changed the weights"


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path):
    raw = prepare_tiny_run(tmp_path, clips=4, train={"max_steps": 120, "checkpoint_every": 4,
                                                    "keep_checkpoints": 2})
    config = tmp_path / "run.toml"
    config.write_text(to_toml(raw))
    reference = _launch(_train_cmd(config, tmp_path / "ref"))
    assert reference.wait(240) == 0, reference.stdout.read()

    victim = _launch(_train_cmd(config, tmp_path / "run"))
    latest = tmp_path / "run/checkpoints/latest"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.exists() and latest.read_text() >= "step-00000040"):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    assert not (tmp_path / "run/model.safetensors").exists(), "killed before the end"
    root = tmp_path / "run/checkpoints"
    for entry in root.glob("step-*"):
        assert (entry / "trainer_state.json").exists() and (entry / "model.safetensors").exists()
    assert (root / latest.read_text() / "trainer_state.json").exists()

    resumed = _launch(_train_cmd(config, tmp_path / "run"))
    output = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0 and "resumed from" in output, output
    assert not list(root.glob(".tmp-*"))
    a, b = load_file(str(tmp_path / "ref/model.safetensors")), load_file(str(tmp_path / "run/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    shutil.rmtree(tmp_path / "ref", ignore_errors=True)
