"""Every UI workflow in workflows/ loads in the real ComfyUI frontend (served by a real ComfyUI
with the pack loaded) in headless Chromium: no missing node type, no console error, nothing dropped,
and the main workflows open laid out for people (groups around their nodes, no link through a node,
a readable story node, the whole graph in view at a scale where text is drawn), with a screenshot kept.

Two frontends: the one ComfyUI 0.3.64 serves (comfyui-frontend-package 1.27.10, its requirement) and
the newest from the registry, served with --front-end-root from $FRAMELEVEL_NEWEST_FRONTEND_ROOT (that
parametrisation skips, naming the variable, when it is unset). With the newest one, only its calls to
endpoints 0.3.64 lacks (frontend_support.NEWER_SERVER_PATHS) are ignored.

Needs COMFYUI_PATH, Chromium (/usr/bin/chromium or FRAMELEVEL_CHROMIUM; Debian: `apt-get install
chromium`) and the Python package `playwright` (no `playwright install`: it drives that Chromium).
Screenshots go to pytest's temporary folder and, if FRAMELEVEL_TEST_ARTIFACTS is set, are copied there.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import frontend_support as fs  # noqa: E402
import node_specs  # noqa: E402
import ui_layout  # noqa: E402
from ui_geometry import Box, curve_hits_box, link_curve  # noqa: E402

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

UI_WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
# Workflows saved by an earlier release (V1 nodes, before global_prompt): they must still load with
# every node and every widget value, now that the nodes are V3.
SAVED_BEFORE_V3 = sorted((ROOT / "tests" / "data" / "saved_workflows").glob("*.json"))
MAIN = ("story_pmwd_30s", "story_pmwd_ksampler_30s")
READY_NODE = "FrameLevelPMWDSampler"
FAKE_TYPE = "FrameLevelDoesNotExist"


def test_there_are_ui_workflows():
    assert len(UI_WORKFLOWS) >= 7, UI_WORKFLOWS


@pytest.fixture(scope="module", params=fs.FRONTENDS)
def frontend(request, tmp_path_factory):
    fs.require_browser()
    root = fs.frontend_root(request.param)
    tmp = tmp_path_factory.mktemp(f"frontend-{request.param}")
    with fs.comfy_server(tmp, root) as server:
        object_info = fs.run_workflow.http_json(server.url + "/object_info")
        with fs.browser_page(server, READY_NODE, which=request.param) as (page, collector, start_errors):
            yield SimpleNamespace(page=page, collector=collector, start_errors=start_errors, which=request.param,
                                  object_info=object_info, version=server.frontend_version or "")


def load(frontend, workflow: dict) -> tuple[dict, list]:
    """Load a UI-format workflow the way the app does; the graph as loaded and the console errors."""
    result = frontend.page.evaluate(fs.LOAD_JS, workflow)
    frontend.page.wait_for_timeout(500)  # image previews and deferred callbacks report errors late
    return result, frontend.collector.take()


def test_frontend_starts_without_console_errors(frontend):
    assert [str(p) for p in frontend.start_errors] == []


@pytest.mark.parametrize("path", UI_WORKFLOWS + SAVED_BEFORE_V3, ids=lambda p: p.name)
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
    if path in UI_WORKFLOWS:   # ours open where the frontend draws text (the saved old files keep their view)
        frontend.page.wait_for_timeout(300)
        assert not frontend.page.evaluate(fs.GEOMETRY_JS)["lowQuality"], f"{path.name}: opens without text"
    # Every widget value the file holds survives the load unchanged. The frontend may append values
    # of its own frontend-only widgets (LoadImage's upload button saves as "image"), so compare the
    # file's values with the leading part of what the frontend would save.
    changed = {}
    for node in workflow["nodes"]:
        expected = node.get("widgets_values")
        saved = result["widgets_values"][str(node["id"])]
        if isinstance(expected, list) and isinstance(saved, list):
            saved = saved[:len(expected)]
        if expected == [] and saved is None:
            continue    # a node without widgets: newer frontends save no widgets_values at all
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
    assert [str(u["id"]) for u in result["unregistered"]] == [str(victim["id"])]   # newer frontends: string ids
    assert result["missing_dialog"]
    frontend.page.evaluate("() => console.error('framelevel probe: console errors are collected')")
    assert "framelevel probe" in " ".join(str(e) for e in frontend.collector.take())
    # Closing the dialog and loading the untouched workflow again is clean, so the checks are not stuck.
    frontend.page.evaluate(fs.CLOSE_DIALOGS_JS)
    frontend.page.wait_for_function(fs.NO_NOTICE_JS, timeout=10_000)
    result, errors = load(frontend, original)
    assert result["reported_missing"] == [] and result["unregistered"] == [] and errors == []
    assert not result["missing_dialog"]


def _screenshot(frontend, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}-{frontend.which}.png"
    frontend.page.screenshot(path=str(path))
    target = os.environ.get("FRAMELEVEL_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


# Frontend releases seen re-fitting a DynamicCombo node's height on load (1.48.7, ComfyUI 0.33.0's pin);
# 1.58.1 (the newest in December 2026) keeps the file's height, as for every other node.
REFITS_DYNAMIC_COMBO_ON_LOAD = ("1.48.",)


def kept_size(node: dict, graph: dict, object_info: dict, frontend_version: str) -> list[float]:
    """The size the frontend gives a node of the file after loading it: the file's size, grown to the
    node's minimum (its computeSize, measured in the page) where the file's is smaller, as every
    frontend does on load. That minimum counts the widgets the running ComfyUI declares, which may be
    more than the files are laid out for (ComfyUI 0.33.0 added CreateVideo's bit_depth widget; the
    files are built for 0.3.64). A node with a DynamicCombo input (ComfyUI 0.33.0: SaveVideo's codec)
    is the exception on frontends that re-fit its height to exactly that minimum whenever the combo's
    value is set, loading included (1.48: dynamicComboWidget's updateWidgets), so a taller height in
    the file (SaveVideo's room for the video preview) is not kept there (REFITS_DYNAMIC_COMBO_ON_LOAD)."""
    loaded = next(n for n in graph["nodes"] if str(n["id"]) == str(node["id"]))
    minimum = loaded["min_size"]
    specs = node_specs.input_specs(object_info[node["type"]])
    refits_height = frontend_version.startswith(REFITS_DYNAMIC_COMBO_ON_LOAD) and any(
        spec[0] == node_specs.DYNAMIC_COMBO for _, spec in specs)
    return [max(node["size"][0], minimum[0]),
            minimum[1] if refits_height else max(node["size"][1], minimum[1])]


@pytest.mark.parametrize("name", MAIN)
def test_main_workflow_opens_laid_out_for_people(frontend, name, tmp_path):
    """Geometry as the frontend has it after loading: the view the file asks for is restored and draws
    text, every node sits inside its group and in the visible canvas, no link passes through a node."""
    workflow = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    _, errors = load(frontend, workflow)
    assert errors == []
    frontend.page.wait_for_timeout(500)
    graph = frontend.page.evaluate(fs.GEOMETRY_JS)
    shot = _screenshot(frontend, name, tmp_path)
    assert shot.stat().st_size > 10_000
    ds = workflow["extra"]["ds"]
    assert graph["ds"]["scale"] == pytest.approx(ds["scale"]) and graph["ds"]["offset"] == pytest.approx(ds["offset"])
    assert not graph["lowQuality"], "at the fitted view the frontend draws nodes without text"
    assert graph["renderMode"] == graph["spline"], "the link check below assumes the default spline links"
    boxes = {str(n["id"]): Box(n["bounding"][0], n["bounding"][1] + 30, n["bounding"][2], n["bounding"][3] - 30)
             for n in graph["nodes"]}    # ids as strings: newer frontends keep them so
    assert {str(n["id"]): n["size"] for n in graph["nodes"]} == {
        str(n["id"]): kept_size(n, graph, frontend.object_info, frontend.version) for n in workflow["nodes"]}
    assert [g["title"] for g in graph["groups"]] == list(ui_layout.GROUPS)
    for group in graph["groups"]:
        x, y, w, h = group["bounding"]
        inside = [i for i, b in boxes.items() if x <= b.x and y <= b.top and b.right <= x + w and b.bottom <= y + h]
        assert inside, f"group {group['title']} holds no node"
        for other in graph["groups"]:
            ox, oy, ow, oh = other["bounding"]
            assert other is group or not (x < ox + ow and ox < x + w and y < oy + oh and oy < y + h)
    in_groups = [i for i, b in boxes.items() for g in graph["groups"]
                 if g["bounding"][0] <= b.x and g["bounding"][1] <= b.top
                 and b.right <= g["bounding"][0] + g["bounding"][2] and b.bottom <= g["bounding"][1] + g["bounding"][3]]
    assert sorted(in_groups) == sorted(boxes), "every node lies in exactly one group"
    for link in graph["links"]:
        points = link_curve(tuple(link["start"]), tuple(link["end"]))
        ends = (str(link["origin"]), str(link["target"]))
        crossed = [i for i, b in boxes.items() if i not in ends and curve_hits_box(points, b, 2)]
        assert crossed == [], f"link {link['origin']} -> {link['target']} passes through nodes {crossed}"
    story = next(n for n in graph["nodes"] if n["type"] == ui_layout.STORY_CLASS)
    assert story["size"][0] >= ui_layout.STORY_WIDTH
    assert story["size"][0] * graph["ds"]["scale"] >= 280, "the story node is too narrow on screen to read"
    hidden = frontend.page.evaluate(fs.HIDDEN_NODES_JS)
    assert hidden == [], f"nodes outside the visible canvas or under the frontend's panels: {hidden}"
