"""The training loop: config errors, overfitting a tiny set, 2-process equality (DDP and FSDP2, gloo on
CPU), SIGKILL + resume (full and LoRA), adapter-only LoRA checkpoints."""

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
from comfyui_framelevel.training.checkpoint import ADAPTERS_FILE, STATE_FILE
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


def _launch_2proc(accelerate_config: str, config, output_dir, *extra):
    return _launch([str(ACCELERATE), "launch", "--config_file", str(ROOT / "training/configs" / accelerate_config),
                    "--num_cpu_threads_per_process", "1", *_train_cmd(config, output_dir, *extra)[1:]],
                   {"PYTHONFAULTHANDLER": "1"})


def _max_difference(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


LORA_RUN = {"lora": {"rank": 4, "alpha": 4}, "optim": {"learning_rate": 1e-2}}


@pytest.fixture(scope="module")
def one_process_run(request, tmp_path_factory):
    """6 steps (checkpoints at 3 and 6) of a tiny run, global batch 2, in one process."""
    tmp = tmp_path_factory.mktemp("lora" if request.param else "full")
    sections = LORA_RUN if request.param else {}
    raw = prepare_tiny_run(tmp, clips=4, train={"max_steps": 6, "checkpoint_every": 3}, **sections)
    config = tmp / "run.toml"
    config.write_text(to_toml(raw))
    single = _launch(_train_cmd(config, tmp / "one"))
    assert single.wait(240) == 0, single.stdout.read()
    return raw, config, tmp / "one"


@pytest.mark.parametrize("one_process_run", [False], ids=["full"], indirect=True)
def test_two_processes_match_one_process_with_the_same_global_batch(one_process_run, tmp_path):
    """DDP (gloo): tolerance 1e-4 absolute on every weight after 6 AdamW steps (measured ~1e-5: gloo sums
    in another order)."""
    raw, config, one = one_process_run
    two = _launch_2proc("cpu_2proc.yaml", config, tmp_path / "two")
    assert two.wait(240) == 0, two.stdout.read()
    assert (tmp_path / "two/checkpoints/step-00000006/rng_state_1.safetensors").exists()  # really 2 processes
    a, b = load_file(str(one / "model.safetensors")), load_file(str(tmp_path / "two/model.safetensors"))
    assert _max_difference(a, b) < 1e-4
    initial = Trainer(config_from_dict(raw)).accelerator.unwrap_model(Trainer(config_from_dict(raw)).model)
    moved = max(float((a[k] - v).abs().max()) for k, v in initial.state_dict().items())
    assert moved > 1e-3, "training changed the weights"


@pytest.mark.parametrize("one_process_run", [False, True], ids=["full", "lora"], indirect=True)
def test_fsdp2_two_processes_match_one_process_and_resume_from_their_checkpoints(one_process_run, tmp_path):
    """FSDP2 (`fully_shard`, gloo, 2 CPU processes, one shard unit per WanBlock), stopped after step 4 and
    resumed from its step-3 checkpoint, ends within 1e-4 (absolute, every weight) of one process with the
    same global batch; measured ~2e-5 full, ~4e-6 LoRA (the reduce-scatter sums in another order).

    Full fine-tune: the checkpoint is sharded (one torch.distributed.checkpoint file per process), and
    accelerate's offline merge of it equals the one-process checkpoint. LoRA: the checkpoint holds the
    gathered adapters only. The export gathers the full state on the main process."""
    raw, config, one = one_process_run
    lora = "lora" in raw
    out = tmp_path / "fsdp"
    first = _launch_2proc("cpu_2proc_fsdp.yaml", config, out, "--stop-after", "4")
    assert first.wait(240) == 0, first.stdout.read()
    step3 = out / "checkpoints/step-00000003"
    assert (out / "checkpoints/latest").read_text() == "step-00000003"
    assert not (out / "model.safetensors").exists() and (step3 / "rng_state_1.safetensors").exists()
    assert not (step3 / "model.safetensors").exists()
    if lora:
        assert not (step3 / "pytorch_model_fsdp_0").exists()
        shards = load_file(str(step3 / ADAPTERS_FILE))
        reference = load_file(str(one / "checkpoints/step-00000003" / ADAPTERS_FILE))
    else:
        from accelerate.utils import merge_fsdp_weights

        assert {p.name for p in (step3 / "pytorch_model_fsdp_0").glob("*.distcp")} == {"__0_0.distcp", "__1_0.distcp"}
        merge_fsdp_weights(str(step3 / "pytorch_model_fsdp_0"), str(tmp_path / "merged"))
        shards = load_file(str(tmp_path / "merged/model.safetensors"))
        reference = load_file(str(one / "checkpoints/step-00000003/model.safetensors"))
    assert _max_difference(shards, reference) < 1e-4

    second = _launch_2proc("cpu_2proc_fsdp.yaml", config, out)
    output = second.communicate(timeout=240)[0]
    assert second.returncode == 0 and "resumed from" in output and "step-00000003" in output, output
    name = "lora.safetensors" if lora else "model.safetensors"
    a, b = load_file(str(one / name)), load_file(str(out / name))
    assert _max_difference(a, b) < 1e-4
    if lora:
        assert max(float(v.abs().max()) for k, v in a.items() if ".lora_B." in k) > 1e-3, "adapters trained"


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path, lora):
    sections = LORA_RUN if lora else {}
    raw = prepare_tiny_run(tmp_path, clips=4, train={"max_steps": 120, "checkpoint_every": 4,
                                                    "keep_checkpoints": 2}, **sections)
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
    weights = ADAPTERS_FILE if lora else "model.safetensors"
    for entry in root.glob("step-*"):
        assert (entry / STATE_FILE).exists() and (entry / weights).exists()
    assert (root / latest.read_text() / "trainer_state.json").exists()

    resumed = _launch(_train_cmd(config, tmp_path / "run"))
    output = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0 and "resumed from" in output, output
    assert not list(root.glob(".tmp-*"))
    name = "lora.safetensors" if lora else "model.safetensors"
    a, b = load_file(str(tmp_path / "ref" / name)), load_file(str(tmp_path / "run" / name))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    shutil.rmtree(tmp_path / "ref", ignore_errors=True)


def test_lora_checkpoint_holds_only_the_adapters_and_is_much_smaller_than_a_full_one(tmp_path):
    raw = prepare_tiny_run(tmp_path, clips=2, train={"max_steps": 4, "checkpoint_every": 2}, **LORA_RUN)
    trainer = Trainer(config_from_dict(raw))
    trainer.fit(stop_after=2)
    lora_dir = Path(raw["train"]["output_dir"]) / "checkpoints/step-00000002"
    adapters = load_file(str(lora_dir / ADAPTERS_FILE))
    model = trainer.accelerator.unwrap_model(trainer.model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    base = {n for n in model.state_dict() if n not in trainable}
    assert set(adapters) == trainable and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    assert not base & set(adapters) and "blocks.0.self_attn.q.weight" in base
    assert not (lora_dir / "model.safetensors").exists()
    state = (lora_dir / STATE_FILE).read_text()
    assert '"checkpoint": "adapters"' in state and '"init_seed": 0' in state

    full_raw = {**raw, "train": {**raw["train"], "output_dir": str(tmp_path / "full")}}
    full_raw.pop("lora")
    Trainer(config_from_dict(full_raw)).fit(stop_after=2)
    full_dir = tmp_path / "full/checkpoints/step-00000002"
    assert set(load_file(str(full_dir / "model.safetensors"))) == base  # the full model, original names
    lora_bytes = sum(f.stat().st_size for f in lora_dir.iterdir())
    full_bytes = sum(f.stat().st_size for f in full_dir.iterdir())
    weights_ratio = (lora_dir / ADAPTERS_FILE).stat().st_size / (full_dir / "model.safetensors").stat().st_size
    print(f"tiny Wan, LoRA rank 4: adapters {(lora_dir / ADAPTERS_FILE).stat().st_size} B vs full model "
          f"{(full_dir / 'model.safetensors').stat().st_size} B; whole checkpoint {lora_bytes} B vs {full_bytes} B")
    assert weights_ratio < 0.25 and lora_bytes < 0.25 * full_bytes

    # resume takes the base from its source and refuses another base or a config without [lora]
    resumed = Trainer(config_from_dict(raw))
    assert resumed.resume_if_possible() and resumed.step == 2
    for name, p in resumed.accelerator.unwrap_model(resumed.model).named_parameters():
        assert torch.equal(p, dict(model.named_parameters())[name])
    other_base = {**raw, "model": {**raw["model"], "init_seed": 1}}
    with pytest.raises(RuntimeError, match="trained on base model"):
        Trainer(config_from_dict(other_base)).resume_if_possible()
    no_lora = {k: v for k, v in raw.items() if k != "lora"}
    with pytest.raises(RuntimeError, match="holds LoRA adapters but the config has no"):
        Trainer(config_from_dict(no_lora)).resume_if_possible()


def test_nan_loss_stops_before_the_optimizer_touches_the_weights(tmp_path):
    from comfyui_framelevel.training.train import TrainingDiverged

    raw = prepare_tiny_run(tmp_path, clips=2, train={"max_steps": 4, "checkpoint_every": 10})
    trainer = Trainer(config_from_dict(raw))
    model = trainer.accelerator.unwrap_model(trainer.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.head.register_forward_hook(lambda module, args, out: out * float("nan"))
    with pytest.raises(TrainingDiverged, match=re.escape("step 1: the loss is [nan] (per process)")):
        trainer.fit()
    assert trainer.step == 0 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_without_a_progress_bar_the_loss_is_printed_every_log_every_steps(tmp_path, capsys):
    raw = prepare_tiny_run(tmp_path, clips=2, train={"max_steps": 5, "log_every": 2, "checkpoint_every": 1000})
    losses = [result.loss for result in Trainer(config_from_dict(raw)).steps()]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/5", "4/5", "5/5"]
    for line, step in zip(lines, (2, 4, 5), strict=True):
        assert f"loss {losses[step - 1]:.4f}" in line and "grad_norm" in line and "lr" in line
