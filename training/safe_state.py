"""Checkpoint pieces that resume can read without running code from the checkpoint folder.

- LR scheduler and GradScaler states: JSON.
- RNG states (Python, NumPy, torch CPU and accelerator, one file per process): safetensors, with
  the few scalars in its JSON metadata. A file that cannot be read is an error, never skipped.
- Every file of a checkpoint is hashed (SHA-256) into trainer_state.json; resume checks them all
  before loading anything (the processes share the hashing).
- Sharded FSDP checkpoints (torch.distributed.checkpoint) keep their format, but are read with a
  metadata unpickler that only rebuilds DCP's own metadata classes, and their non-tensor items with
  torch.load(weights_only=True) (torch's reader uses plain pickle for both).

Pickles that can run code (accelerate's older `custom_checkpoint_0.pkl`, DeepSpeed's engine
checkpoints) are only loaded when the user sets train.trust_pickled_state (`--trust-pickles`).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import random
from contextlib import contextmanager
from pathlib import Path

import torch

from ..nodes.core.files import save_safetensors_atomic, write_text_atomic  # noqa: TID252 - package-relative

RNG_FILE = "rng_state_{}.safetensors"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
TRUST_HINT = ("pass --trust-pickles (config: train.trust_pickled_state = true) only if you wrote this "
              "checkpoint yourself and nobody else could change it")


class UntrustedCheckpoint(RuntimeError):
    """A checkpoint that is damaged, changed after the save, or would need a code-running pickle."""


# ----------------------------------------------------------------------------------------------
# hashes


def sha256_file(path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_files(directory, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative POSIX path: SHA-256} of every file under directory (recursively), names in skip left out."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): sha256_file(p)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name not in skip}


def file_problem(directory: Path, name: str, expected: str) -> str | None:
    """Why directory/name does not match its recorded hash (None when it does)."""
    path = directory / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        return f"trainer_state.json lists {name!r}, which is not a file inside the checkpoint"
    if not path.is_file():
        return f"{path} is missing"
    found = sha256_file(path)
    if found != expected:
        return f"{path} does not match its SHA-256 in trainer_state.json (recorded {expected[:16]}..., found {found[:16]}...)"
    return None


def verify_files(accelerator, directory, files: dict[str, str]) -> None:
    """Check every recorded hash; the processes hash a share each and all raise the same error."""
    directory = Path(directory)
    if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
        raise UntrustedCheckpoint(f"{directory / 'trainer_state.json'} has no valid \"files\" hash list")
    names = sorted(files)
    rank, world = accelerator.process_index, accelerator.num_processes
    bad = torch.zeros(len(names), dtype=torch.int64)
    problems = {}
    for i in range(rank, len(names), world):
        problem = file_problem(directory, names[i], files[names[i]])
        if problem is not None:
            bad[i], problems[names[i]] = 1, problem
    if world > 1:
        bad = accelerator.reduce(bad.to(accelerator.device), reduction="sum").cpu()
    failed = [names[i] for i in range(len(names)) if bad[i]]
    if failed:
        detail = "; ".join(problems.get(n, f"{directory / n} is missing or changed") for n in failed[:4])
        raise UntrustedCheckpoint(
            f"checkpoint {directory} was changed or damaged after it was saved: {detail}. Nothing was loaded. "
            f"Resume from an earlier checkpoint instead: write the name of another step-* folder of "
            f"{directory.parent} into {directory.parent / 'latest'} (or restore the file from a backup)")


def load_tensors_only(path):
    """torch.load(weights_only=True): tensors and plain values only; a pickle that asks for anything
    else (a replaced file that would run code) is refused, never executed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UntrustedCheckpoint(
            f"{path} holds more than tensors and plain values, so it was not loaded (it could run code): "
            f"{str(error).splitlines()[0][:200]}. Resume from another checkpoint: write the name of an earlier "
            f"step-* folder into {Path(path).parent.parent / 'latest'}") from error


# ----------------------------------------------------------------------------------------------
# scheduler / scaler as JSON


def save_json_state(obj, path) -> None:
    try:
        text = json.dumps(obj.state_dict(), indent=1, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise RuntimeError(f"the state of {type(obj).__name__} cannot be stored as JSON ({error}); resume "
                           f"checkpoints hold no pickles") from error
    write_text_atomic(path, text)


def load_json_state(obj, path) -> None:
    path = Path(path)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        obj.load_state_dict(state)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise UntrustedCheckpoint(f"{path} cannot be loaded into the {type(obj).__name__} ({error}); resume from "
                                  f"another checkpoint (write its step-* name into checkpoints/latest)") from error


# ----------------------------------------------------------------------------------------------
# RNG states


def _accelerator_rng_module():
    """(name, module) of the accelerator whose RNG state is saved, or (None, None) on CPU."""
    if torch.cuda.is_available():
        return "cuda", torch.cuda
    for name in ("xpu", "mps"):
        module = getattr(torch, name, None)
        backend = getattr(torch.backends, name, None)
        available = (backend.is_available() if backend is not None and hasattr(backend, "is_available")
                     else module is not None and hasattr(module, "is_available") and module.is_available())
        if module is not None and available:
            return name, module
    return None, None


def save_rng_state(path) -> None:
    import numpy as np

    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(), "python": torch.tensor(py_state, dtype=torch.int64),
               "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64))}
    meta = {"python_version": py_version, "python_gauss": py_gauss, "numpy_kind": np_kind, "numpy_pos": int(np_pos),
            "numpy_has_gauss": int(np_has_gauss), "numpy_gauss": float(np_gauss)}
    name, module = _accelerator_rng_module()
    if name is not None:
        states = module.get_rng_state_all() if hasattr(module, "get_rng_state_all") else [module.get_rng_state()]
        meta.update(device=name, devices=len(states))
        tensors.update({f"{name}_{i}": s.cpu() for i, s in enumerate(states)})
    save_safetensors_atomic(tensors, path, metadata={"framelevel_rng": json.dumps(meta)})


def load_rng_state(path) -> None:
    """Restore every RNG state saved in path; anything unreadable raises (an exact resume needs them)."""
    import numpy as np
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["framelevel_rng"])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open has no iterator
        cpu = tensors["torch_cpu"]
        if cpu.dtype != torch.uint8:
            raise ValueError(f"torch_cpu has dtype {cpu.dtype}")
        python = tuple(int(v) for v in tensors["python"].tolist())
        numpy_state = (str(meta["numpy_kind"]), tensors["numpy_keys"].numpy().astype(np.uint32),
                       int(meta["numpy_pos"]), int(meta["numpy_has_gauss"]), float(meta["numpy_gauss"]))
        device_states = []
        if meta.get("device"):
            name, module = _accelerator_rng_module()
            if name != meta["device"]:
                raise ValueError(f"saved on {meta['device']}, this machine has {name or 'no accelerator'}")
            device_states = [tensors[f"{name}_{i}"] for i in range(int(meta["devices"]))]
        torch.set_rng_state(cpu)  # validates the state's length
        random.setstate((int(meta["python_version"]), python, meta["python_gauss"]))
        np.random.set_state(numpy_state)
        if device_states:
            if hasattr(module, "set_rng_state_all") and len(device_states) == len(module.get_rng_state_all()):
                module.set_rng_state_all(device_states)
            else:
                module.set_rng_state(device_states[0])
    except Exception as error:  # noqa: BLE001 - every failure means the same thing: no exact resume
        raise UntrustedCheckpoint(
            f"the RNG state {path} cannot be loaded ({type(error).__name__}: {error}); the resumed run would not "
            f"continue exactly. Resume from another checkpoint: write the name of an earlier step-* folder "
            f"into {path.parent.parent / 'latest'}") from error


# ----------------------------------------------------------------------------------------------
# torch.distributed.checkpoint without code-running pickles


class _MetadataUnpickler(pickle.Unpickler):
    """Rebuilds DCP's metadata (dataclasses, dtypes, sizes, paths) and nothing else."""

    def find_class(self, module, name):
        import pathlib

        import torch.distributed.checkpoint.filesystem as dcp_fs
        import torch.distributed.checkpoint.metadata as dcp_md

        if module == "torch.distributed.checkpoint.metadata":
            found = getattr(dcp_md, name, None)
            if isinstance(found, type):
                return found
        elif module == "torch.distributed.checkpoint.filesystem" and name == "_StorageInfo":
            return dcp_fs._StorageInfo
        elif module == "torch" and name == "Size":
            return torch.Size
        elif module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        elif module == "torch.serialization" and name == "_get_layout":
            return torch.serialization._get_layout
        elif module == "pathlib" and name in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"):
            return getattr(pathlib, name)
        raise pickle.UnpicklingError(f"the checkpoint metadata refers to {module}.{name}, which a "
                                     f"torch.distributed.checkpoint metadata file never holds")


def _safe_dcp_classes():
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeFileSystemReader(FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            path = self._get_metadata_path(kwargs.get("rank"))
            with self.fs.create_stream(path, "rb") as handle:
                metadata = _MetadataUnpickler(handle).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class SafeLoadPlanner(DefaultLoadPlanner):
        def load_bytes(self, read_item, value: io.BytesIO) -> None:
            from torch.distributed.checkpoint._traverse import set_element

            obj = torch.load(value, weights_only=True)
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
            else:
                self.state_dict[read_item.dest_index.fqn] = obj

    return SafeFileSystemReader, SafeLoadPlanner


@contextmanager
def safe_distributed_checkpoint_reads():
    """While active, torch.distributed.checkpoint's FileSystemReader and DefaultLoadPlanner (which
    accelerate's FSDP loaders look up when called) read metadata and non-tensor items safely."""
    import torch.distributed.checkpoint as dcp
    import torch.distributed.checkpoint.default_planner as planner_module

    reader, planner = _safe_dcp_classes()
    saved = dcp.FileSystemReader, planner_module.DefaultLoadPlanner
    dcp.FileSystemReader, planner_module.DefaultLoadPlanner = reader, planner
    try:
        yield
    finally:
        dcp.FileSystemReader, planner_module.DefaultLoadPlanner = saved
