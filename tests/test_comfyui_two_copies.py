"""Two copies of the pack in custom_nodes (a ComfyUI-Manager install beside a git clone, an old copy
renamed to comfyui-framelevel.bak): a real ComfyUI starts, serves one copy's nodes, route and web
extension, and logs one line naming both folders (nodes/pack_copies.py)."""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402

pytestmark = pytest.mark.comfyui
SCHEDULE = "FrameLevelPromptSchedule"
SCRIPT = "framelevel_timeline.js"
# What ComfyUI needs of the pack to load it; the tests, docs, workflows and trainer stay behind.
RUNTIME = ("__init__.py", "pyproject.toml", "nodes", "kernels", "web")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """custom_nodes holding a link to this checkout and a real copy of it under an old copy's name
    (so the two folders differ in path and in file identity)."""
    tmp = tmp_path_factory.mktemp("two_copies")
    nodes_dir = tmp / "custom_nodes"
    nodes_dir.mkdir()
    (nodes_dir / run_workflow.PACK_NAME).symlink_to(ROOT, target_is_directory=True)
    copy = nodes_dir / f"{run_workflow.PACK_NAME}.bak"
    copy.mkdir()
    for name in RUNTIME:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    config = tmp / "extra_paths.yaml"
    config.write_text(f"framelevel_two_copies:\n  custom_nodes: {nodes_dir}\n")
    instance = run_workflow.ComfyServer(Path(os.environ["COMFYUI_PATH"]), sys.executable, cpu=True,
                                        extra_args=["--extra-model-paths-config", str(config)],
                                        log_path=tmp / "server.log")
    try:
        instance.wait_ready()
        instance.folders = {path.name: str(path) for path in (nodes_dir / run_workflow.PACK_NAME, copy)}
        instance.object_info = run_workflow.http_json(instance.url + "/object_info")
        yield instance
    finally:
        instance.stop()


def test_one_copy_serves_and_one_line_names_both(server):
    log = server.log_path.read_text()
    assert "Added route will never be executed" not in log
    assert [line for line in log.splitlines() if "IMPORT FAILED" in line and "framelevel" in line] == []
    lines = [line for line in log.splitlines() if "copies of comfyui-framelevel" in line]
    assert len(lines) == 1, log
    (line,) = lines
    # Whichever folder ComfyUI listed first is the active copy: every node of the pack comes from it.
    active = server.object_info[SCHEDULE]["python_module"].removeprefix("custom_nodes.")
    (aside,) = set(server.folders) - {active}
    assert f"using {server.folders[active]}" in line and f"ignoring {server.folders[aside]}" in line
    assert "remove one" in line
    ours = {name: info for name, info in server.object_info.items() if name.startswith("FrameLevel")}
    assert len(ours) >= 15 and {info["python_module"] for info in ours.values()} == {f"custom_nodes.{active}"}


def test_the_route_and_the_web_extension_are_served_once(server):
    story = {"text": "a fox | the fox drinks", "length": 21, "length_unit": "pixel"}
    for prefix in ("", "/api"):
        answer = run_workflow.http_json(server.url + prefix + "/framelevel/story/timeline", story)
        assert answer["ok"] and answer["latent_frames"] == 6
    scripts = [path for path in run_workflow.http_json(server.url + "/extensions") if path.endswith(SCRIPT)]
    active = server.object_info[SCHEDULE]["python_module"].removeprefix("custom_nodes.")
    assert scripts == [f"/extensions/{active}/{SCRIPT}"]
