"""Atomic, resumable checkpoints whose resume runs no code from the checkpoint folder.

Layout: <output_dir>/checkpoints/step-00000010/ plus a `latest` file naming the newest complete one.
A checkpoint is written under `.tmp-step-...` and moved into place with os.replace only when
complete; `latest` is rewritten the same way. A crash at any moment leaves either the previous
checkpoint or the new one, never a half-written directory. Step folders without `latest` (deleted,
or copied without it) stop the run with the fix instead of starting again from step 0 and later
overwriting them.

Every checkpoint holds (trainer_state.json "format": 2):
- trainer_state.json: step, data position (`batches_consumed`), accelerate's step counter, the kind,
  the process count and the SHA-256 of every other file ("files"); resume checks all of them first.
- scheduler.json (+ scaler.json under fp16): the LR scheduler's (GradScaler's) state as JSON.
- rng_state_<process>.safetensors: Python, NumPy, torch CPU and accelerator RNG states.
- the weights and optimizer state, by kind (trainer_state.json "checkpoint"):
  - "full" (full fine-tune): `model.safetensors` (original names) + `optimizer.bin` (torch.save of
    the optimizer state, read back with torch.load(weights_only=True), which runs no code); under
    FSDP the sharded torch.distributed.checkpoint folders `pytorch_model_fsdp_0/` + `optimizer_0/`
    (read with safe_state.safe_distributed_checkpoint_reads); under DeepSpeed, DeepSpeed's own folder.
  - "adapters" (LoRA): `adapters.safetensors` holds only the trainable (LoRA) parameters, gathered
    to full tensors, with the model's own names; `adapters_optimizer.pt` their optimizer state (keyed
    by parameter name, so it loads under any process count or engine; weights_only=True). Resume
    builds the base model from its original source ([model] weights or the seeded random init,
    recorded in trainer_state.json and checked) and loads the adapters into it. Under DeepSpeed,
    DeepSpeed's checkpoint is written with exclude_frozen_parameters instead.
DeepSpeed checkpoints and those of earlier trainer versions (accelerate's pickled scheduler and RNG
states) are pickles that can run code when loaded: resume refuses them unless
train.trust_pickled_state (`--trust-pickles`) is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from ..nodes.core.files import atomic_path, save_safetensors_atomic, write_text_atomic
from .safe_state import (
    RNG_FILE,
    SCALER_FILE,
    SCHEDULER_FILE,
    TRUST_HINT,
    UntrustedCheckpoint,
    hash_files,
    load_json_state,
    load_rng_state,
    load_tensors_only,
    safe_distributed_checkpoint_reads,
    save_json_state,
    save_rng_state,
    verify_files,
)

STATE_FILE = "trainer_state.json"
ADAPTERS_FILE = "adapters.safetensors"
ADAPTERS_OPTIMIZER_FILE = "adapters_optimizer.pt"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.bin"
FORMAT = 2
STEP_NAME = re.compile(r"step-\d{8}")


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


def save_checkpoint(accelerator, output_dir, step: int, trainer_state: dict, keep: int, write) -> Path:
    """Write a checkpoint atomically; `write(directory)` stores the training state (every process),
    then the main process hashes every file into trainer_state.json, written last."""
    root = checkpoint_root(output_dir)
    name = f"step-{step:08d}"
    tmp, final = root / f".tmp-{name}", root / name
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    write(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        record = {**trainer_state, "step": step, "format": FORMAT, "processes": accelerator.num_processes,
                  "files": hash_files(tmp, skip=(STATE_FILE,))}
        write_text_atomic(tmp / STATE_FILE, json.dumps(record, indent=1))
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
    """The checkpoint `latest` names; None when there is none at all. Step folders without `latest`
    are an error: starting over would train from step 0 and later overwrite them."""
    root = checkpoint_root(output_dir)
    pointer = root / "latest"
    if not pointer.exists():
        folders = sorted(p.name for p in root.glob("step-*")) if root.is_dir() else []
        if folders:
            complete = [n for n in folders if (root / n / STATE_FILE).exists()]
            resume = (f"to resume, write the newest complete one into it: echo {complete[-1]} > {pointer}"
                      if complete else "none of them is complete (no trainer_state.json)")
            raise RuntimeError(f"{root} holds checkpoint folders ({', '.join(folders[-3:])}) but no `latest` "
                               f"file; {resume}. To start a new run instead, use another train.output_dir "
                               f"or move {root} away. Training does not start over on top of them.")
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not STEP_NAME.fullmatch(name):
        raise RuntimeError(f"{pointer} holds {name[:40]!r}, not a checkpoint name like step-00000010; write the "
                           f"name of one of the step-* folders in {root} into it")
    path = root / name
    if not (path / STATE_FILE).exists():
        raise RuntimeError(f"{pointer} names {name}, which is missing or incomplete; write the name of a complete "
                           f"step-* folder in {root} into it (or use another train.output_dir to start over)")
    return path


def read_trainer_state(path) -> dict:
    file = Path(path) / STATE_FILE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        for key in ("step", "batches_consumed"):
            if not isinstance(state.get(key), int) or isinstance(state[key], bool) or state[key] < 0:
                raise ValueError(f"{key!r} is {state.get(key)!r}, not a step count")
    except (OSError, ValueError) as error:
        raise UntrustedCheckpoint(f"{file} cannot be read ({error}); write the name of another step-* folder "
                                  f"into {Path(path).parent / 'latest'}") from error
    return state


# ----------------------------------------------------------------------------------------------
# the whole training state


def save_training_state(accelerator, model, optimizer, scheduler, directory, adapters: bool) -> None:
    """Weights, optimizer, scheduler (JSON), scaler (JSON) and this process's RNG states (safetensors)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if adapters:
        save_adapter_state(accelerator, model, optimizer, directory)
    else:
        _save_full_state(accelerator, model, optimizer, directory)
    if accelerator.is_main_process:
        save_json_state(scheduler, directory / SCHEDULER_FILE)
        if accelerator.scaler is not None:
            save_json_state(accelerator.scaler, directory / SCALER_FILE)
    save_rng_state(directory / RNG_FILE.format(accelerator.process_index))


def load_training_state(accelerator, model, optimizer, scheduler, directory, state: dict, trust: bool) -> None:
    """Everything save_training_state wrote, after checking every file's hash. Nothing pickled is
    read except optimizer states with torch.load(weights_only=True), unless `trust` is set."""
    from .distributed import is_deepspeed

    directory = Path(directory)
    adapters = state.get("checkpoint") == "adapters"
    if state.get("format") != FORMAT:
        if not trust:
            raise UntrustedCheckpoint(
                f"{directory} was written by an earlier version of the trainer: its scheduler and RNG states are "
                f"pickles (custom_checkpoint_0.pkl, random_states_*.pkl) that can run code when loaded, and its "
                f"files carry no hashes. To resume it, {TRUST_HINT}; or start a new run in another "
                f"train.output_dir")
        _load_legacy_state(accelerator, model, optimizer, scheduler, directory, adapters)
        return
    files = state.get("files")
    verify_files(accelerator, directory, files)
    unlisted = sorted(_files_read_on_resume(accelerator, directory, adapters, state) - set(files))
    if unlisted:
        raise UntrustedCheckpoint(
            f"{directory / STATE_FILE} records no SHA-256 for {', '.join(unlisted[:4])}, which resume would read; "
            f"the checkpoint was changed after it was saved. Write the name of another step-* folder into "
            f"{directory.parent / 'latest'}")
    if is_deepspeed(accelerator):
        if not trust:
            raise UntrustedCheckpoint(
                f"{directory} holds a DeepSpeed checkpoint, which DeepSpeed loads with pickle (it can run code). "
                f"Its files match the hashes recorded at save time; to resume it, {TRUST_HINT}")
        accelerator.load_state(str(directory), load_module_strict=False)
    elif adapters:
        load_adapter_state(accelerator, model, optimizer, directory)
    else:
        _load_full_state(accelerator, model, optimizer, directory)
    load_json_state(scheduler, directory / SCHEDULER_FILE)
    if accelerator.scaler is not None:
        load_json_state(accelerator.scaler, directory / SCALER_FILE)
    saved_by = state.get("processes", accelerator.num_processes)
    if saved_by == accelerator.num_processes:
        load_rng_state(directory / RNG_FILE.format(accelerator.process_index))
    else:
        accelerator.print(f"note: {directory} was saved by {saved_by} process(es), this run has "
                          f"{accelerator.num_processes}: the per-process RNG states are not restored (per-sample "
                          f"noise is seeded by sample number; dropout draws differ from an uninterrupted run)")
    if isinstance(state.get("accelerate_step"), int):
        accelerator.step = state["accelerate_step"]


def _files_read_on_resume(accelerator, directory: Path, adapters: bool, state: dict) -> set[str]:
    """The files (relative names) this process's resume loads, which must all carry a recorded hash."""
    from .distributed import is_deepspeed, is_fsdp

    names = {SCHEDULER_FILE} | ({SCALER_FILE} if accelerator.scaler is not None else set())
    if state.get("processes", accelerator.num_processes) == accelerator.num_processes:
        names.add(RNG_FILE.format(accelerator.process_index))
    if is_deepspeed(accelerator):
        folders = [p for p in directory.iterdir() if p.is_dir()]
    elif adapters:
        return names | {ADAPTERS_FILE, ADAPTERS_OPTIMIZER_FILE}
    elif is_fsdp(accelerator):
        folders = [directory / "pytorch_model_fsdp_0", directory / "optimizer_0"]
        names |= {f"{f.name}/.metadata" for f in folders}
    else:
        return names | {MODEL_FILE, OPTIMIZER_FILE}
    return names | {p.relative_to(directory).as_posix() for f in folders if f.is_dir() for p in f.rglob("*")
                    if p.is_file()}


def _save_full_state(accelerator, model, optimizer, directory: Path) -> None:
    from .distributed import is_deepspeed, is_fsdp

    if is_deepspeed(accelerator):
        with _without_custom_objects(accelerator):
            accelerator.save_state(str(directory), safe_serialization=True)
    elif is_fsdp(accelerator):
        from accelerate.utils import save_fsdp_model, save_fsdp_optimizer

        plugin = accelerator.state.fsdp_plugin
        save_fsdp_model(plugin, accelerator, model, str(directory), 0)
        save_fsdp_optimizer(plugin, accelerator, optimizer, model, str(directory), 0)
    else:
        weights = accelerator.get_state_dict(model)
        optim_state = optimizer.state_dict()
        if accelerator.is_main_process:
            save_safetensors_atomic({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                                    directory / MODEL_FILE, metadata={"format": "pt"})
            with atomic_path(directory / OPTIMIZER_FILE) as temp:
                torch.save(optim_state, temp)


def _load_full_state(accelerator, model, optimizer, directory: Path) -> None:
    from safetensors.torch import load_file

    from .distributed import is_fsdp

    if is_fsdp(accelerator):
        from accelerate.utils import load_fsdp_model, load_fsdp_optimizer

        plugin = accelerator.state.fsdp_plugin
        with safe_distributed_checkpoint_reads():
            load_fsdp_model(plugin, accelerator, model, str(directory), 0)
            load_fsdp_optimizer(plugin, accelerator, optimizer, model, str(directory), 0)
        return
    accelerator.unwrap_model(model).load_state_dict(load_file(str(directory / MODEL_FILE)))
    optimizer.load_state_dict(load_tensors_only(directory / OPTIMIZER_FILE))


def _load_legacy_state(accelerator, model, optimizer, scheduler, directory: Path, adapters: bool) -> None:
    """A checkpoint of an earlier trainer (accelerate's save_state, scheduler as custom_checkpoint_0.pkl):
    only with train.trust_pickled_state."""
    from .distributed import is_deepspeed

    accelerator.register_for_checkpointing(scheduler)
    try:
        if is_deepspeed(accelerator):
            accelerator.load_state(str(directory), load_module_strict=False)
        elif adapters:
            _load_adapters_and_optimizer(accelerator, model, optimizer, directory)
            with _without_model_and_optimizer(accelerator):
                accelerator.load_state(str(directory))
        else:
            accelerator.load_state(str(directory))
    finally:
        accelerator._custom_objects.remove(scheduler)


@contextmanager
def _without_custom_objects(accelerator):
    """Keep accelerate from pickling registered objects (the scheduler is stored as JSON)."""
    custom = accelerator._custom_objects
    accelerator._custom_objects = []
    try:
        yield
    finally:
        accelerator._custom_objects = custom


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
        with _without_custom_objects(accelerator):
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


def load_adapter_state(accelerator, model, optimizer, directory) -> None:
    """Load adapters + their optimizer state into a model whose base came from its original source
    (not under DeepSpeed: load_training_state hands DeepSpeed's checkpoint to accelerate)."""
    _load_adapters_and_optimizer(accelerator, model, optimizer, Path(directory))


def _load_adapters_and_optimizer(accelerator, model, optimizer, directory: Path) -> None:
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    adapters = load_file(str(directory / ADAPTERS_FILE))
    expected = trainable_names(accelerator, model)
    if set(adapters) != expected:
        missing, extra = sorted(expected - set(adapters)), sorted(set(adapters) - expected)
        raise RuntimeError(f"{directory / ADAPTERS_FILE} does not match this model's LoRA parameters "
                           f"(missing {missing[:3]}, unexpected {extra[:3]}); was it trained with another "
                           f"[lora] rank or target_modules?")
    set_model_state_dict(model, adapters, options=_full_options(strict=False))
    optim_state = load_tensors_only(directory / ADAPTERS_OPTIMIZER_FILE)
    set_optimizer_state_dict(model, _raw_optimizer(optimizer), optim_state, options=_full_options())
