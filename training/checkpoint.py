"""Atomic, resumable checkpoints on top of accelerate's save_state/load_state.

Layout: <output_dir>/checkpoints/step-00000010/ (accelerate's model, optimizer, RNG files, plus the
registered scheduler, plus trainer_state.json with step and data position) and a `latest` file
naming the newest complete one. A checkpoint is written under `.tmp-step-...` and moved into place
with os.replace only when complete; `latest` is rewritten the same way. A crash at any moment
leaves either the previous checkpoint or the new one, never a half-written directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.json"


def checkpoint_root(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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


def save_checkpoint(accelerator, output_dir, step: int, trainer_state: dict, keep: int) -> Path:
    root = checkpoint_root(output_dir)
    name = f"step-{step:08d}"
    tmp, final = root / f".tmp-{name}", root / name
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_atomic(tmp / STATE_FILE, json.dumps({**trainer_state, "step": step}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _write_atomic(root / "latest", name)
        _prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def _prune(root: Path, keep: int) -> None:
    complete = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).exists())
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(output_dir) -> Path | None:
    root = checkpoint_root(output_dir)
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip()
    if not (path / STATE_FILE).exists():
        raise RuntimeError(f"{pointer} names {path.name}, which is incomplete; delete {pointer} to start over")
    return path


def load_checkpoint(accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))
