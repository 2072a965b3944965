"""`run_workflow.py --smoke`, the install check without weights: the main workflow runs end to end in
the running ComfyUI on tiny stand-in model files written into a temporary folder."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402

MAIN_WORKFLOW = ROOT / "workflows" / "api" / "story_pmwd_30s.api.json"


def test_smoke_overrides_shrink_the_picture_and_the_steps_only():
    workflow = json.loads(MAIN_WORKFLOW.read_text())
    items = run_workflow.smoke_overrides(workflow)
    assert sorted(items) == ["13.steps=2", "9.height=32", "9.width=32"]
    run_workflow.apply_overrides(workflow, items + ["13.steps=3"])   # the user's own --set wins
    assert workflow["13"]["inputs"]["steps"] == 3 and workflow["9"]["inputs"]["length"] == 481


def test_stand_ins_carry_the_names_the_workflow_loads():
    names = run_workflow.stand_in_names(json.loads(MAIN_WORKFLOW.read_text()))
    assert names == ["--unet", "wan2.1_t2v_1.3B_fp16.safetensors", "--text-encoder",
                     "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "--vae", "wan_2.1_vae.safetensors"]


def test_smoke_folders_come_first_and_the_checkout_is_left_alone(tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    nodes = run_workflow.smoke_custom_nodes(comfy, tmp_path / "smoke")
    assert sorted(p.name for p in nodes.iterdir()) == ["comfyui-framelevel", "framelevel_tiny_loaders.py"]
    assert list((comfy / "custom_nodes").iterdir()) == []
    config = run_workflow.smoke_paths_config(tmp_path / "smoke", nodes).read_text()
    assert "is_default: true" in config and f"vae: {tmp_path / 'smoke' / 'models' / 'vae'}" in config


def test_smoke_refuses_download():
    with pytest.raises(SystemExit):
        run_workflow.parse_args(["--comfyui", "/x", "--smoke", "--download"])


@pytest.mark.comfyui
@pytest.mark.slow
def test_smoke_command_runs_the_main_workflow_on_tiny_weights(tmp_path):
    comfy = os.environ["COMFYUI_PATH"]
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "run_workflow.py"), "--comfyui", comfy, "--smoke"],
                          env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke test passed" in done.stdout and "The video is noise" in done.stdout, done.stdout
    assert "the pack loaded, the graph validated, every node ran and the video file was written" in done.stdout
    video = Path(re.search(r"^video: (.+)$", done.stdout, re.MULTILINE).group(1))
    assert video.is_file() and video.stat().st_size > 0
    assert tmp_path in video.parents                                    # the temporary folder, not the checkout
    assert not (Path(comfy) / "custom_nodes" / "framelevel_tiny_loaders.py").exists()
