"""Resume that can be trusted: no code-running pickle is loaded from a checkpoint folder unless the user
says so (train.trust_pickled_state / --trust-pickles), every file is checked against its SHA-256 in
trainer_state.json, an unreadable RNG state is an error, and step folders without `latest` are never
trained over from step 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import comfyui_framelevel.training as training_package
import pytest
import torch
from comfyui_framelevel.training.checkpoint import STATE_FILE
from comfyui_framelevel.training.config import config_from_dict
from comfyui_framelevel.training.safe_state import (
    UntrustedCheckpoint,
    load_rng_state,
    save_rng_state,
    sha256_file,
)
from comfyui_framelevel.training.testing import prepare_tiny_run
from comfyui_framelevel.training.train import Trainer

ROOT = Path(training_package.__file__).resolve().parents[1]


class _Payload:
    """Unpickling this creates `marker` (what a hostile pickle would do with os.system)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _hostile_pickle(path: Path, marker: Path) -> None:
    torch.save({"state": {}, "param_groups": [], "payload": _Payload(marker)}, path)


@pytest.fixture(scope="module", params=[False, True], ids=["full", "lora"])
def saved_run(request, tmp_path_factory):
    """A tiny run stopped after 2 steps (checkpoint step-00000002), and its continuation to step 4 as
    the uninterrupted reference."""
    tmp = tmp_path_factory.mktemp("lora" if request.param else "full")
    sections = {"lora": {"rank": 4, "alpha": 4}, "optim": {"learning_rate": 1e-2}} if request.param else {}
    raw = prepare_tiny_run(tmp, clips=2, train={"max_steps": 4, "checkpoint_every": 2}, **sections)
    trainer = Trainer(config_from_dict(raw))
    trainer.fit(stop_after=2)
    step2 = Path(raw["train"]["output_dir"]) / "checkpoints/step-00000002"
    pristine = tmp / "pristine"
    shutil.copytree(step2, pristine)
    trainer.fit()
    reference = {k: v.clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}
    return raw, pristine, reference


def _fresh_copy(saved_run, tmp_path, trust: bool = False):
    """The saved step-2 checkpoint as the only (and `latest`) checkpoint of a new output_dir."""
    raw, pristine, _ = saved_run
    out = tmp_path / "out"
    root = out / "checkpoints"
    shutil.copytree(pristine, root / "step-00000002")
    (root / "latest").write_text("step-00000002")
    raw = {**raw, "train": {**raw["train"], "output_dir": str(out), "trust_pickled_state": trust}}
    return raw, root / "step-00000002"


def _weights_file(raw) -> str:
    return "adapters.safetensors" if "lora" in raw else "model.safetensors"


def _optimizer_file(raw) -> str:
    return "adapters_optimizer.pt" if "lora" in raw else "optimizer.bin"


def _rehash(step: Path) -> None:
    """What an attacker who can also edit trainer_state.json does: record the changed files' hashes."""
    state = json.loads((step / STATE_FILE).read_text())
    state["files"] = {name: sha256_file(step / name) for name in state["files"]}
    (step / STATE_FILE).write_text(json.dumps(state))


def test_a_checkpoint_is_safetensors_json_and_hashes(saved_run):
    raw, step, _ = saved_run
    names = {p.name for p in step.iterdir()}
    assert names == {_weights_file(raw), _optimizer_file(raw), "scheduler.json", "rng_state_0.safetensors", STATE_FILE}
    assert not list(step.glob("*.pkl"))
    state = json.loads((step / STATE_FILE).read_text())
    assert state["format"] == 2 and state["processes"] == 1
    assert state["files"] == {n: sha256_file(step / n) for n in names - {STATE_FILE}}
    assert json.loads((step / "scheduler.json").read_text())["last_epoch"] == 2


def test_resume_continues_exactly(saved_run, tmp_path):
    raw, _, reference = saved_run
    raw, _ = _fresh_copy(saved_run, tmp_path)
    trainer = Trainer(config_from_dict(raw))
    assert trainer.resume_if_possible() and trainer.step == 2
    trainer.fit()
    state = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_flipped_bytes_in_the_weights_are_refused(saved_run, tmp_path):
    raw, step = _fresh_copy(saved_run, tmp_path)
    weights = step / _weights_file(raw)
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10  # one bit of the last tensor: still a valid safetensors file
    weights.write_bytes(bytes(data))
    trainer = Trainer(config_from_dict(raw))
    with pytest.raises(UntrustedCheckpoint) as caught:
        trainer.resume_if_possible()
    message = str(caught.value)
    assert str(weights) in message and "SHA-256" in message and "latest" in message, message
    assert trainer.step == 0


def test_a_truncated_rng_state_is_refused(saved_run, tmp_path):
    raw, step = _fresh_copy(saved_run, tmp_path)
    rng = step / "rng_state_0.safetensors"
    rng.write_bytes(rng.read_bytes()[:-100])
    with pytest.raises(UntrustedCheckpoint, match="rng_state_0.safetensors does not match its SHA-256"):
        Trainer(config_from_dict(raw)).resume_if_possible()
    _rehash(step)  # hashes made to agree: the load itself still refuses instead of going on without it
    with pytest.raises(UntrustedCheckpoint, match="the RNG state .*rng_state_0.safetensors cannot be loaded"):
        Trainer(config_from_dict(raw)).resume_if_possible()


def test_rng_state_round_trip_and_damage(tmp_path):
    import random

    import numpy as np

    save_rng_state(tmp_path / "rng.safetensors")
    expected = (torch.rand(3), random.random(), np.random.rand())
    load_rng_state(tmp_path / "rng.safetensors")
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert np.random.rand() == expected[2]
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "rng.safetensors").read_bytes()[:200])
    with pytest.raises(UntrustedCheckpoint, match="cannot be loaded"):
        load_rng_state(tmp_path / "bad.safetensors")


def test_a_replaced_optimizer_pickle_is_never_executed(saved_run, tmp_path):
    raw, step = _fresh_copy(saved_run, tmp_path)
    marker = tmp_path / "pwned"
    _hostile_pickle(step / _optimizer_file(raw), marker)
    with pytest.raises(UntrustedCheckpoint, match="does not match its SHA-256"):
        Trainer(config_from_dict(raw)).resume_if_possible()
    assert not marker.exists()
    state = json.loads((step / STATE_FILE).read_text())
    state["files"].pop(_optimizer_file(raw))  # dropping the file's hash does not skip the check
    (step / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(UntrustedCheckpoint, match=f"records no SHA-256 for {_optimizer_file(raw)}"):
        Trainer(config_from_dict(raw)).resume_if_possible()
    state["files"][_optimizer_file(raw)] = "0" * 64
    (step / STATE_FILE).write_text(json.dumps(state))
    _rehash(step)  # even with matching hashes the pickle is read with weights_only=True
    with pytest.raises(UntrustedCheckpoint, match="more than tensors and plain values"):
        Trainer(config_from_dict(raw)).resume_if_possible()
    assert not marker.exists()


def test_pickles_dropped_into_a_checkpoint_are_ignored(saved_run, tmp_path):
    raw, step = _fresh_copy(saved_run, tmp_path)
    marker = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "scheduler.bin", "optimizer_1.bin"):
        _hostile_pickle(step / name, marker)
    trainer = Trainer(config_from_dict(raw))
    assert trainer.resume_if_possible() and trainer.step == 2
    assert not marker.exists()


def test_a_legacy_pickled_checkpoint_needs_the_trust_flag(saved_run, tmp_path):
    """Checkpoints of the earlier trainer (accelerate's save_state: the scheduler in custom_checkpoint_0.pkl,
    loaded with weights_only=False) are refused without train.trust_pickled_state; a hostile one runs nothing."""
    raw, step = _fresh_copy(saved_run, tmp_path)
    marker = tmp_path / "pwned"
    state = json.loads((step / STATE_FILE).read_text())
    for key in ("format", "files", "processes"):
        state.pop(key)
    (step / STATE_FILE).write_text(json.dumps(state))
    _hostile_pickle(step / "custom_checkpoint_0.pkl", marker)
    with pytest.raises(UntrustedCheckpoint, match="--trust-pickles") as caught:
        Trainer(config_from_dict(raw)).resume_if_possible()
    assert "train.trust_pickled_state" in str(caught.value) and not marker.exists()


def test_a_genuine_legacy_checkpoint_resumes_with_the_trust_flag(tmp_path):
    raw = prepare_tiny_run(tmp_path, clips=2, train={"max_steps": 4, "checkpoint_every": 100})
    trainer = Trainer(config_from_dict(raw))
    trainer.fit(stop_after=2)
    legacy = Path(raw["train"]["output_dir"]) / "checkpoints/step-00000002"
    acc = trainer.accelerator
    acc.register_for_checkpointing(trainer.scheduler)  # what the earlier trainer wrote
    acc.save_state(str(legacy), safe_serialization=True)
    (legacy / STATE_FILE).write_text(json.dumps({"step": 2, "batches_consumed": 2, "checkpoint": "full"}))
    trainer.fit()  # the uninterrupted reference (its step-4 save is removed again)
    shutil.rmtree(legacy.parent / "step-00000004")
    (legacy.parent / "latest").write_text(legacy.name)
    with pytest.raises(UntrustedCheckpoint, match="--trust-pickles"):
        Trainer(config_from_dict(raw)).resume_if_possible()
    trusted = Trainer(config_from_dict({**raw, "train": {**raw["train"], "trust_pickled_state": True}}))
    assert trusted.resume_if_possible() and trusted.step == 2
    trusted.fit()
    a = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    b = trusted.accelerator.unwrap_model(trusted.model).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_step_folders_without_latest_refuse_to_start_over(saved_run, tmp_path):
    raw, step = _fresh_copy(saved_run, tmp_path)
    latest = step.parent / "latest"
    latest.unlink()
    before = {p.name: sha256_file(p) for p in step.iterdir()}
    from comfyui_framelevel.training.train import run_training

    with pytest.raises(RuntimeError, match="no `latest`") as caught:
        run_training(config_from_dict(raw))
    message = str(caught.value)
    assert f"echo step-00000002 > {latest}" in message and "another train.output_dir" in message, message
    assert {p.name: sha256_file(p) for p in step.iterdir()} == before and not latest.exists()
    assert sorted(p.name for p in step.parent.iterdir()) == ["step-00000002"]


@pytest.mark.parametrize("pointer", ["../../elsewhere", "step-2", ""])
def test_latest_must_name_a_step_folder(saved_run, tmp_path, pointer):
    raw, step = _fresh_copy(saved_run, tmp_path)
    (step.parent / "latest").write_text(pointer)
    with pytest.raises(RuntimeError, match="not a checkpoint name like step-00000010"):
        Trainer(config_from_dict(raw)).resume_if_possible()


def test_the_trust_flag_is_on_the_command_line_and_in_the_readme():
    help_text = subprocess.run([sys.executable, str(ROOT / "training/cli.py"), "train", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--trust-pickles" in help_text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    trainer_section = readme[readme.index("## Trainer"):].split("\n## ", 1)[0]
    assert "--trust-pickles" in trainer_section and "train.trust_pickled_state" in trainer_section
    assert "--trust-pickles" in (ROOT / "training/README.md").read_text(encoding="utf-8")


def test_sharded_checkpoints_are_read_without_running_their_pickles(tmp_path):
    """FSDP's torch.distributed.checkpoint folders: torch's reader unpickles `.metadata` and non-tensor items
    with plain pickle; inside safe_distributed_checkpoint_reads (what resume uses) neither can run code."""
    import pickle

    import torch.distributed.checkpoint as dcp
    import torch.distributed.checkpoint.default_planner as planners
    from comfyui_framelevel.training.safe_state import safe_distributed_checkpoint_reads
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    saved = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)}
    with pytest.warns(UserWarning):
        dcp.save(saved, storage_writer=dcp.FileSystemWriter(tmp_path / "ckpt"), no_dist=True)

    target = {"model": {k: torch.zeros_like(v) for k, v in saved["model"].items()},
              "optimizer": get_optimizer_state_dict(model, torch.optim.AdamW(model.parameters()))}
    with safe_distributed_checkpoint_reads():
        dcp.load(target, storage_reader=dcp.FileSystemReader(tmp_path / "ckpt"),
                 planner=planners.DefaultLoadPlanner(), no_dist=True)
    assert dcp.FileSystemReader.__name__ == "FileSystemReader"  # restored afterwards
    assert all(torch.equal(target["model"][k], v) for k, v in saved["model"].items())
    assert target["optimizer"]["param_groups"][0]["lr"] == saved["optimizer"]["param_groups"][0]["lr"]

    marker = tmp_path / "pwned"
    (tmp_path / "ckpt/.metadata").write_bytes(pickle.dumps(_Payload(marker)))
    from torch.distributed.checkpoint.api import CheckpointException  # a BaseException, per rank

    with safe_distributed_checkpoint_reads(), pytest.raises(CheckpointException) as caught:
        dcp.load(target, storage_reader=dcp.FileSystemReader(tmp_path / "ckpt"),
                 planner=planners.DefaultLoadPlanner(), no_dist=True)
    assert "a torch.distributed.checkpoint metadata file never holds" in str(caught.value.failures[0])
    assert not marker.exists()
