"""Load the pack the way ComfyUI does: as a package under its own name, never with the repository
root itself on sys.path (ComfyUI owns a top-level module called `nodes`)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import ci_strict
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_framelevel"


def keep_root_off_sys_path() -> None:
    """Take the repository root off sys.path (where `python -m pytest`, `python -c` or a script's
    cwd put it), before anything else is imported.

    On sys.path the root's folders would shadow installed packages of the same top-level names:
    `kernels` (transformers 5 imports the `kernels` package of that name), `nodes` (ComfyUI's own
    module), `training`. The pack is loaded under its own name (`load_pack`), never through the
    root."""
    def is_root(entry: str) -> bool:
        try:
            return Path(entry or os.getcwd()).resolve() == ROOT
        except OSError:
            return False
    sys.path[:] = [entry for entry in sys.path if not is_root(entry)]
    for name in ("kernels", "nodes", "training", "tools"):
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", []) or []), None)
        if origin and (ROOT / name) in (Path(origin).resolve(), *Path(origin).resolve().parents):
            del sys.modules[name]   # imported through the root before conftest ran


keep_root_off_sys_path()


def load_pack():
    """The pack as `comfyui_framelevel` (also used by subprocess helpers run as scripts)."""
    existing = sys.modules.get(PACKAGE)
    if existing is not None and Path(existing.__file__).resolve().parent == ROOT:
        return existing
    spec = importlib.util.spec_from_file_location(
        PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


load_pack()


class _RootAsPlainDirectory:
    """Collect the repository root as a plain directory, not as a Python package.

    The root holds the pack's `__init__.py`, so pytest (8+) would collect it as a `Package` and import
    that file under the checkout folder's name, which fails for any folder that is not a Python
    identifier (README's `comfyui-framelevel`, a path with spaces) and would import the pack a second
    time under a foreign name otherwise. The pack is loaded once, by `load_pack`, as
    `comfyui_framelevel`. A conftest hook alone cannot do this (conftest hooks apply below their own
    directory, and the root is collected by its parent's hooks), hence a plugin registered for the
    whole session."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if Path(path).resolve() == ROOT:
            return pytest.Dir.from_parent(parent, path=Path(path))
        return None


def pytest_configure(config):
    config.pluginmanager.register(_RootAsPlainDirectory(), "framelevel-root-as-plain-directory")
    ci_strict.register(config)


NO_COMFYUI = "needs a ComfyUI checkout: set COMFYUI_PATH to it (prepare it with .ci/setup_comfyui.sh)"


def has_comfyui() -> bool:
    path = os.environ.get("COMFYUI_PATH")
    return bool(path) and Path(path, "comfy").is_dir()


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip_comfy = pytest.mark.skip(reason=NO_COMFYUI)
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "comfyui" in item.keywords and not has_comfyui() and not ci_strict.active():
            item.add_marker(skip_comfy)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


def pytest_runtest_setup(item):
    # In CI's strict mode a `comfyui` test without ComfyUI errors instead of skipping.
    if "comfyui" in item.keywords and not has_comfyui():
        ci_strict.unavailable(f"{NO_COMFYUI} (COMFYUI_PATH={os.environ.get('COMFYUI_PATH', '')!r})")
