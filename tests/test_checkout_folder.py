"""README's test command works from any checkout folder name, and the pack is imported only once.

pytest would collect the repository root (it holds the pack's `__init__.py`) as a Python package
named after the folder; tests/conftest.py makes it a plain directory, so `comfyui-framelevel` (README's
install name) and paths with spaces work, and the pack is loaded once, as `comfyui_framelevel`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_framelevel"
SMALL_RUN = ["tests/test_frames.py", "tests/test_checkout_folder.py::test_the_pack_is_imported_once",
             "tests/test_checkout_folder.py::test_the_root_shadows_no_installed_package"]


def _modules_from(path: Path) -> list[str]:
    return sorted(name for name, module in list(sys.modules.items())
                  if getattr(module, "__file__", None) and Path(module.__file__).resolve() == path)


def test_the_pack_is_imported_once():
    assert _modules_from(ROOT / "__init__.py") == [PACKAGE]
    assert _modules_from(ROOT / "nodes" / "__init__.py") == [f"{PACKAGE}.nodes"]


def test_the_root_shadows_no_installed_package():
    """`python -m pytest` puts the checkout on sys.path, where its `kernels/` would hide the
    installed `kernels` package that transformers 5 imports (CI was red on exactly that); conftest
    takes the root off before anything imports."""
    import importlib.util

    assert all(Path(entry or os.getcwd()).resolve() != ROOT for entry in sys.path), sys.path
    for name in ("kernels", "nodes", "training"):
        spec = importlib.util.find_spec(name) if name not in sys.modules else sys.modules[name].__spec__
        origin = spec and (spec.origin or next(iter(spec.submodule_search_locations or []), None))
        inside = origin and (ROOT / name) in (Path(origin).resolve(), *Path(origin).resolve().parents)
        assert not inside, f"{name} resolves to the checkout's own folder: {origin}"
    transformers = pytest.importorskip("transformers")
    from transformers import PreTrainedModel  # transformers 5 imports the `kernels` package here

    assert PreTrainedModel.__module__.startswith("transformers"), transformers.__version__


def _checkout_files() -> list[str]:
    """Tracked files plus new files git does not ignore (what a commit of this tree would hold)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.fail(f"this test copies the checkout with `git ls-files`, which failed here: {err}")
    return [name for name in out.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["comfyui-framelevel", "with space/comfyui-framelevel"])
def test_readme_test_command_runs_from_any_checkout_folder(tmp_path, folder):
    copy = tmp_path / folder
    for name in _checkout_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SMALL_RUN],
                            cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in summary and "error" not in summary and "skipped" not in summary, summary
