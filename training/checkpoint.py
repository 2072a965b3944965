"""Atomic, resumable checkpoints on top of accelerate's save_state/load_state.

Layout: <output_dir>/checkpoints/step-00000010/ plus a `latest` file naming the newest complete one.
A checkpoint is written under `.tmp-step-...` and moved into place with os.replace only when
complete; `latest` is rewritten the same way. A crash at any moment leaves either the previous
checkpoint or the new one, never a half-written directory.

Two kinds (trainer_state.json "checkpoint"):
- "full" (full fine-tune): accelerate's state as is - model and optimizer (sharded
  torch.distributed.checkpoint folders under FSDP with SHARDED_STATE_DICT, DeepSpeed's own folder
  under DeepSpeed), RNG per process, the registered scheduler.
- "adapters" (LoRA): `adapters.safetensors` holds only the trainable (LoRA) parameters, gathered
  to full tensors, with the model's own names; `adapters_optimizer.pt` their optimizer state (keyed
  by parameter name, so it loads under any process count or engine); accelerate writes the rest
  (RNG, scheduler, step) with the model and optimizer hidden from it. Resume builds the base model
  from its original source ([model] weights or the seeded random init, recorded in
  trainer_state.json and checked) and loads the adapters into it. Under DeepSpeed, accelerate's
  DeepSpeed checkpoint is written with exclude_frozen_parameters instead.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from ..nodes.core.files import atomic_path, save_safetensors_atomic, write_text_atomic

STATE_FILE = "trainer_state.json"
ADAPTERS_FILE = "adapters.safetensors"
ADAPTERS_OPTIMIZER_FILE = "adapters_optimizer.pt"


def checkpoint_root(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def remove_partial_checkpoints(output_dir) -> list[str]:
    """Delete leftovers of an interrupted save (main process only)."""
    root = checkpoint_root(output_dir)
    removed = []
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
                removed.append(entry.name)
    return removed


def save_checkpoint(accelerator, output_dir, step: int, trainer_state: dict, keep: int, write=None) -> Path:
    """Write a checkpoint atomically; `write(directory)` stores the training state (default:
    accelerate's save_state), trainer_state.json is added last."""
    root = checkpoint_root(output_dir)
    name = f"step-{step:08d}"
    tmp, final = root / f".tmp-{name}", root / name
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    if write is None:
        accelerator.save_state(str(tmp), safe_serialization=True)
    else:
        write(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_text_atomic(tmp / STATE_FILE, json.dumps({**trainer_state, "step": step}, indent=1))
        if final.exists():
            _discard(final)
        os.replace(tmp, final)
        write_text_atomic(root / "latest", name)
        _prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def _discard(folder: Path) -> None:
    """Delete a checkpoint folder without ever leaving a half-deleted `step-*` behind: it is renamed
    to `.tmp-...` first (one atomic step; a kill after it leaves a leftover that the next start
    removes), then deleted."""
    trash = folder.with_name(f".tmp-discard-{folder.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _prune(root: Path, keep: int) -> None:
    complete = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).exists())
    for old in complete[:-keep]:
        _discard(old)


def latest_checkpoint(output_dir) -> Path | None:
    root = checkpoint_root(output_dir)
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip()
    if not (path / STATE_FILE).exists():
        raise RuntimeError(f"{pointer} names {path.name}, which is incomplete; delete {pointer} to start over")
    return path


def read_trainer_state(path) -> dict:
    return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------
# LoRA: adapters only


@contextmanager
def _without_model_and_optimizer(accelerator):
    """Let accelerate save/load only RNG, scheduler, step (and scaler): hide what we store ourselves."""
    models, optimizers = accelerator._models, accelerator._optimizers
    accelerator._models, accelerator._optimizers = [], []
    try:
        yield
    finally:
        accelerator._models, accelerator._optimizers = models, optimizers


def _raw_optimizer(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it


def _full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **extra)


def trainable_names(accelerator, model) -> set[str]:
    return {n for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}


def adapter_state(accelerator, model) -> dict[str, torch.Tensor]:
    """The trainable parameters as full CPU tensors (collective under FSDP; full dict on the main process)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_full_options(ignore_frozen_params=True))
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_adapter_state(accelerator, model, optimizer, directory) -> None:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    from .distributed import is_deepspeed

    directory = Path(directory)
    if is_deepspeed(accelerator):  # ZeRO partitions the optimizer; let DeepSpeed write it, frozen base left out
        accelerator.save_state(str(directory), safe_serialization=True,
                               save_model_func_kwargs={"exclude_frozen_parameters": True})
        return
    adapters = adapter_state(accelerator, model)
    optim_state = get_optimizer_state_dict(model, _raw_optimizer(optimizer), options=_full_options())
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        expected = trainable_names(accelerator, model)
        if set(adapters) != expected:
            raise RuntimeError(f"adapter state has keys {sorted(set(adapters) ^ expected)[:4]} that differ from the "
                               f"trainable parameters")
        save_safetensors_atomic(adapters, directory / ADAPTERS_FILE)
        with atomic_path(directory / ADAPTERS_OPTIMIZER_FILE) as temp:
            torch.save(optim_state, temp)
    with _without_model_and_optimizer(accelerator):
        accelerator.save_state(str(directory), safe_serialization=True)


def load_adapter_state(accelerator, model, optimizer, directory) -> None:
    """Load adapters + their optimizer state into a model whose base came from its original source."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    from .distributed import is_deepspeed

    directory = Path(directory)
    if is_deepspeed(accelerator):
        accelerator.load_state(str(directory), load_module_strict=False)
        return
    adapters = load_file(str(directory / ADAPTERS_FILE))
    expected = trainable_names(accelerator, model)
    if set(adapters) != expected:
        missing, extra = sorted(expected - set(adapters)), sorted(set(adapters) - expected)
        raise RuntimeError(f"{directory / ADAPTERS_FILE} does not match this model's LoRA parameters "
                           f"(missing {missing[:3]}, unexpected {extra[:3]}); was it trained with another "
                           f"[lora] rank or target_modules?")
    set_model_state_dict(model, adapters, options=_full_options(strict=False))
    optim_state = torch.load(directory / ADAPTERS_OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    set_optimizer_state_dict(model, _raw_optimizer(optimizer), optim_state, options=_full_options())
    with _without_model_and_optimizer(accelerator):
        accelerator.load_state(str(directory))
