"""The one way the pack writes a file: atomically.

Every file the pack writes (LLM reply cache, annotator clips and captions, trainer caches,
checkpoints' state, exported weights, sample latents, workflow files) goes through
:func:`atomic_path`: the content is written to a temporary file in the same folder, flushed to
disk (fsync), then renamed over the target, so a reader or a crash never sees half a file; the
temporary file is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that pick a format by
    extension still work); when the block ends without an error it is synced and renamed over
    ``path``. The temporary file never outlives the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        _fsync_file(temp)
        os.replace(temp, path)
        _fsync_folder(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path, obj, **dumps_options) -> Path:
    return write_text_atomic(path, json.dumps(obj, **dumps_options))


def save_safetensors_atomic(tensors: dict, path, metadata: dict | None = None) -> Path:
    """safetensors file of ``tensors`` (made contiguous); metadata values that are not strings are
    stored as JSON."""
    from safetensors.torch import save_file

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    with atomic_path(path) as temp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(temp), metadata=meta or None)
    return Path(path)
