"""A real ComfyUI server (COMFYUI_PATH) with this checkout linked into a custom_nodes folder of its
own, plus any model folders a test needs, read through an extra model paths config."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402


@contextlib.contextmanager
def pack_server(tmp: Path, **model_folders: Path):
    """The started server (run_workflow.ComfyServer), stopped on exit; `model_folders` maps ComfyUI
    folder names (e.g. diffusion_models) to folders of the test's own files."""
    nodes_dir = tmp / "custom_nodes"
    nodes_dir.mkdir()
    (nodes_dir / run_workflow.PACK_NAME).symlink_to(ROOT, target_is_directory=True)
    folders = {"custom_nodes": nodes_dir, **model_folders}
    config = tmp / "extra_paths.yaml"
    config.write_text("framelevel_test:\n" + "".join(f"  {kind}: {path}\n" for kind, path in folders.items()))
    instance = run_workflow.ComfyServer(Path(os.environ["COMFYUI_PATH"]), sys.executable, cpu=True,
                                        extra_args=["--extra-model-paths-config", str(config)],
                                        log_path=tmp / "server.log")
    try:
        instance.wait_ready()
        yield instance
    finally:
        instance.stop()
