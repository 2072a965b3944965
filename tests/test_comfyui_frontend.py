"""Every UI-format workflow in workflows/ loads in the real ComfyUI frontend (served by a real ComfyUI
with the pack loaded) in headless Chromium: no missing node type, no console error, nothing dropped.

Needs COMFYUI_PATH, Chromium (/usr/bin/chromium or FRAMELEVEL_CHROMIUM; Debian: `apt-get install
chromium`) and the Python package `playwright` (no `playwright install`: it drives that Chromium).
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import frontend_support as fs  # noqa: E402
import run_workflow  # noqa: E402

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

UI_WORKFLOWS = sorted(p for p in (ROOT / "workflows").glob("*.json") if not p.name.endswith(".api.json"))
READY_NODE = "FrameLevelPMWDSampler"
FAKE_TYPE = "FrameLevelDoesNotExist"


def test_there_are_ui_workflows():
    assert len(UI_WORKFLOWS) >= 6, UI_WORKFLOWS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.environ.get("COMFYUI_PATH"):
        pytest.skip("needs a ComfyUI checkout: set COMFYUI_PATH to it")
    if fs.chromium_path() is None:
        pytest.skip(f"needs Chromium at {fs.DEFAULT_CHROMIUM} (apt-get install chromium) or FRAMELEVEL_CHROMIUM")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        pytest.skip(f"needs the Python package playwright ({err})")
    comfy_dir = Path(os.environ["COMFYUI_PATH"])
    tmp = tmp_path_factory.mktemp("frontend")
    nodes_dir = tmp / "custom_nodes"
    nodes_dir.mkdir()
    (nodes_dir / "comfyui-framelevel").symlink_to(ROOT, target_is_directory=True)
    # Empty model files (and 1x1 input images) named as the API workflows name them, so the loader
    # dropdowns hold values the server lists and LoadImage's preview finds its image.
    apis = [json.loads(p.read_text()) for p in sorted((ROOT / "api_workflows").glob("*.api.json"))]
    wanted = fs.model_placeholders(apis, run_workflow.MODEL_INPUTS)
    input_dir = fs.write_placeholders(tmp / "models", wanted)
    config = tmp / "extra_paths.yaml"
    config.write_text(fs.extra_paths_yaml(nodes_dir, tmp / "models", wanted))
    try:
        frontend_version = importlib.metadata.version("comfyui-frontend-package")
    except importlib.metadata.PackageNotFoundError:
        frontend_version = None
    fs.seed_user_dir(tmp / "user", frontend_version)
    instance = run_workflow.ComfyServer(
        comfy_dir, sys.executable, cpu=True, log_path=tmp / "server.log",
        extra_args=["--extra-model-paths-config", str(config), "--user-directory", str(tmp / "user"),
                    "--input-directory", str(input_dir), "--output-directory", str(tmp / "output")])
    try:
        instance.wait_ready()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def frontend(server):
    from playwright.sync_api import sync_playwright

    collector = fs.Collector(server.url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=fs.chromium_path(), headless=True,
                                             args=fs.LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            collector.attach(page)
            page.goto(server.url + "/")
            page.wait_for_function(fs.READY_JS, arg=READY_NODE, timeout=90_000)
            page.evaluate(fs.EXTENSION_JS)
            page.wait_for_load_state("networkidle")
            yield SimpleNamespace(page=page, collector=collector, start_errors=collector.take())
        finally:
            browser.close()


def load(frontend, workflow: dict) -> tuple[dict, list]:
    """Load a UI-format workflow the way the app does; the graph as loaded and the console errors."""
    result = frontend.page.evaluate(fs.LOAD_JS, workflow)
    frontend.page.wait_for_timeout(500)  # image previews and deferred callbacks report errors late
    return result, frontend.collector.take()


def test_frontend_starts_without_console_errors(frontend):
    assert [str(p) for p in frontend.start_errors] == []


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.name)
def test_workflow_loads_with_every_node_and_no_console_error(frontend, path):
    workflow = json.loads(path.read_text())
    result, errors = load(frontend, workflow)
    assert result["reported_missing"] == [], f"{path.name}: the frontend reports missing node types"
    assert result["unregistered"] == [], f"{path.name}: nodes without a registered type"
    assert not result["missing_dialog"]
    assert [str(e) for e in errors] == [], f"{path.name}: console errors while loading"
    assert result["node_count"] == len(workflow["nodes"])
    assert result["link_count"] == len(workflow["links"])
    assert result["types"] == {str(n["id"]): n["type"] for n in workflow["nodes"]}
    assert result["bad_combos"] == [], f"{path.name}: dropdown values the server does not offer"
    # Every widget value the file holds survives the load unchanged. The frontend may append values
    # of its own frontend-only widgets (LoadImage's upload button saves as "image"), so compare the
    # file's values with the leading part of what the frontend would save.
    changed = {}
    for node in workflow["nodes"]:
        expected = node.get("widgets_values")
        saved = result["widgets_values"][str(node["id"])]
        if isinstance(expected, list) and isinstance(saved, list):
            saved = saved[:len(expected)]
        if expected is not None and saved != expected:
            changed[node["id"]] = {"file": expected, "frontend": saved}
    assert changed == {}, f"{path.name}: widget values changed on load"


def test_detector_reports_a_renamed_node_type_as_missing(frontend):
    """The checks above cannot pass vacuously: a node of an unknown type is caught by each missing-node
    check, and a console error reaches the collector."""
    original = json.loads(UI_WORKFLOWS[0].read_text())
    workflow = copy.deepcopy(original)
    victim = next(n for n in workflow["nodes"] if n["type"].startswith("FrameLevel"))
    victim["type"] = FAKE_TYPE
    result, _ = load(frontend, workflow)
    assert result["reported_missing"] == [FAKE_TYPE]
    assert [u["id"] for u in result["unregistered"]] == [victim["id"]]
    assert result["missing_dialog"]
    frontend.page.evaluate("() => console.error('framelevel probe: console errors are collected')")
    assert "framelevel probe" in " ".join(str(e) for e in frontend.collector.take())
    # Closing the dialog and loading the untouched workflow again is clean, so the checks are not stuck.
    frontend.page.evaluate(fs.CLOSE_DIALOGS_JS)
    frontend.page.wait_for_function("() => !document.querySelector('.p-dialog')", timeout=10_000)
    result, errors = load(frontend, original)
    assert result["reported_missing"] == [] and result["unregistered"] == [] and errors == []
    assert not result["missing_dialog"]
