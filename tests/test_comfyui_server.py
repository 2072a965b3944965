"""The pack inside a real ComfyUI server: loads cleanly, nodes in /object_info, workflows round-trip, the
declarations the UI files are built from hold for this ComfyUI, and the template browser's route lists
exactly the UI workflows."""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_ui  # noqa: E402
import node_specs  # noqa: E402
import run_workflow  # noqa: E402

pytestmark = pytest.mark.comfyui
OUR_NODES = {"FrameLevelPromptSchedule", "FrameLevelTextEncode", "FrameLevelCrossAttention",
             "FrameLevelDiffusionForcingSampler", "FrameLevelDiffusionForcing", "FrameLevelAnchorFrames",
             "FrameLevelPMWDSampler", "FrameLevelPMWDModel", "FrameLevelSlidingWindowSampler", "FrameLevelFIFOSampler",
             "FrameLevelScheduleView", "FrameLevelPromptExpand", "FrameLevelMetrics", "FrameLevelWanExperts",
             "FrameLevelExpertSwitchStep"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    comfy_dir = Path(os.environ["COMFYUI_PATH"])
    nodes_dir = tmp_path_factory.mktemp("custom_nodes")
    (nodes_dir / "comfyui-framelevel").symlink_to(ROOT, target_is_directory=True)
    config = nodes_dir / "extra_paths.yaml"
    config.write_text(f"framelevel_tests:\n  custom_nodes: {nodes_dir}\n")
    instance = run_workflow.ComfyServer(comfy_dir, sys.executable, cpu=True,
                                        extra_args=["--extra-model-paths-config", str(config)],
                                        log_path=nodes_dir / "server.log")
    try:
        instance.wait_ready()
        instance.object_info = run_workflow.http_json(instance.url + "/object_info")
        instance.version = run_workflow.http_json(instance.url + "/system_stats")["system"]["comfyui_version"]
        yield instance
    finally:
        instance.stop()


def test_pack_loads_and_nodes_appear(server):
    log = server.log_path.read_text()
    assert "comfyui-framelevel" in log
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and "framelevel" in line]
    assert failed == []
    for name in OUR_NODES:
        info = server.object_info[name]
        assert info["category"].startswith("FrameLevel/") and info["description"]
        assert info["python_module"].startswith("custom_nodes.")


def test_schedule_node_runs_in_a_queued_graph(server):
    graph = {
        "1": {"class_type": "FrameLevelPromptSchedule",
              "inputs": {"text": '{"1": "a fox", "3": "the same fox jumps"}', "length": 21, "length_unit": "pixel"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    }
    history = server.run(graph, timeout=60)
    assert history["status"]["status_str"] == "success"
    text = json.dumps(history["outputs"]["2"])
    assert "6 latent frames = 21 pixel frames" in text and "the same fox jumps" in text


def test_bad_schedule_fails_with_the_line_and_the_fix(server):
    """A typed story with a mistake is refused when the prompt is queued (node_errors), before any node
    runs; one whose text arrives through a link fails when it runs, with the same message."""
    graph = {
        "1": {"class_type": "FrameLevelPromptSchedule",
              "inputs": {"text": '{"1": "a fox", "9": "too late"}', "length": 21, "length_unit": "pixel"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    }
    with pytest.raises(RuntimeError, match="refused the workflow") as refused:
        server.run(graph, timeout=60)
    assert 'key \\"9\\": past the end' in str(refused.value) and "Fix:" in str(refused.value)
    linked = {**graph, "3": {"class_type": "PrimitiveString", "inputs": {"value": '{"1": "a fox", "9": "too late"}'}}}
    linked["1"] = {"class_type": "FrameLevelPromptSchedule",
                   "inputs": {"text": ["3", 0], "length": 21, "length_unit": "pixel"}}
    history = server.run(linked, timeout=60)
    assert history["status"]["status_str"] == "error"
    message = json.dumps(history["status"]["messages"])
    assert 'key \\"9\\": past the end' in message and "Fix:" in message


@pytest.mark.parametrize("api_path", sorted((ROOT / "workflows" / "api").glob("*.api.json")), ids=lambda p: p.name)
def test_workflow_ui_and_api_formats_agree(server, api_path):
    api = json.loads(api_path.read_text())
    ui = json.loads((build_ui.UI_DIR / api_path.name.replace(".api.json", ".json")).read_text())
    for node in api.values():
        assert node["class_type"] in server.object_info, f"unknown node type {node['class_type']}"
    back = build_ui.ui_to_api(ui, server.object_info)
    assert {k: v["inputs"] for k, v in back.items()} == {k: v["inputs"] for k, v in api.items()}


def test_server_validates_every_workflow_except_missing_models(server):
    """ComfyUI's own validation accepts each graph; the only complaints are absent model files."""
    for api_path in sorted((ROOT / "workflows" / "api").glob("*.api.json")):
        api = json.loads(api_path.read_text())
        try:
            run_workflow.http_json(server.url + "/prompt", {"prompt": api})
            pytest.fail(f"{api_path.name} was queued although no model files exist here")
        except run_workflow.urllib.error.HTTPError as err:
            body = json.loads(err.read().decode())
        for node_id, errors in body.get("node_errors", {}).items():
            assert api[node_id]["class_type"] in run_workflow.MODEL_INPUTS, (api_path.name, node_id, errors)
            for error in errors["errors"]:
                assert error["type"] in ("value_not_in_list", "custom_validation_failed"), (api_path.name, error)


def test_story_timeline_route_and_extension_are_served(server):
    """The timeline route answers the pack's parser (also under /api, where the frontend calls it),
    and the frontend extension is listed and served."""
    story = {"text": "a fox | the fox drinks", "length": 21, "length_unit": "pixel", "format": "auto"}
    for prefix in ("", "/api"):
        answer = run_workflow.http_json(server.url + prefix + "/framelevel/story/timeline", story)
        assert answer["ok"] and answer["format"] == "pipes" and answer["latent_frames"] == 6
        assert [s["latent"] for s in answer["segments"]] == [[0, 2], [3, 5]]
    broken = run_workflow.http_json(server.url + "/api/framelevel/story/timeline", {"text": "0: a\n[2s: b]"})
    assert broken["ok"] is False and "mixes two syntaxes" in broken["error"]
    extensions = run_workflow.http_json(server.url + "/extensions")
    script = "/extensions/comfyui-framelevel/framelevel_timeline.js"
    assert script in extensions
    with run_workflow.urllib.request.urlopen(server.url + script, timeout=10) as response:
        assert b"framelevel.storyTimeline" in response.read()


def _slots(info: dict) -> list[tuple[str, bool, bool]]:
    """(name, is a widget, optional) of each input, in the order the frontend saves widget values."""
    return [(name, node_specs.is_widget(spec), optional) for name, spec, optional in node_specs.walk(info, {}.get)]


def test_ui_files_are_built_from_declarations_this_comfyui_keeps(server):
    """build_ui.py builds the UI files from ComfyUI 0.3.64's declarations (tools/ui_object_info.json;
    tests/test_workflow_files.py checks the files are exactly what it writes from them). On 0.3.64 they
    are exactly what the server declares (else: python tools/build_ui.py --comfyui <ComfyUI 0.3.64>).
    On a newer ComfyUI a file saved for 0.3.64 stays valid: each node's inputs start with the same
    inputs, of the same kind, in the same order (widget values are saved by position), anything added
    is optional, every output the files link is still there, and the pack's own nodes are declared
    the same. test_workflow_ui_and_api_formats_agree converts the files with this server's declarations."""
    saved, version = build_ui.load_declarations()
    assert version == build_ui.BUILT_FOR and sorted(saved) == build_ui.used_classes()
    live = build_ui.declarations_of(server.object_info)
    if server.version == build_ui.BUILT_FOR:
        assert live == saved, "run: python tools/build_ui.py --comfyui $COMFYUI_PATH"
        return
    for name, old in saved.items():
        new = live[name]
        if old["python_module"].startswith("custom_nodes."):
            fields = ("input", "input_order", "output", "output_name", "output_is_list")
            assert {f: new[f] for f in fields} == {f: old[f] for f in fields}, name
        old_slots, new_slots = _slots(old), _slots(new)
        assert new_slots[:len(old_slots)] == old_slots, name
        assert all(optional for _, _, optional in new_slots[len(old_slots):]), (name, new_slots[len(old_slots):])
        assert new["output"][:len(old["output"])] == old["output"], name


def test_template_route_lists_exactly_the_ui_workflows(server):
    """GET /workflow_templates (what the template browser reads) names our UI workflows and nothing
    else of the pack, and each one's JSON and thumbnail are served where the browser fetches them."""
    listed = run_workflow.http_json(server.url + "/workflow_templates")
    ui_names = sorted(p.stem for p in build_ui.UI_DIR.glob("*.json"))
    api_names = sorted(p.name.removesuffix(".api.json") for p in build_ui.API_DIR.glob("*.api.json"))
    assert ui_names == api_names and len(ui_names) >= 7
    assert sorted(listed[run_workflow.PACK_NAME]) == ui_names
    base = f"{server.url}/api/workflow_templates/{run_workflow.PACK_NAME}"
    for name in ui_names:
        with run_workflow.urllib.request.urlopen(f"{base}/{name}.json", timeout=10) as response:
            assert json.loads(response.read()) == json.loads((build_ui.UI_DIR / f"{name}.json").read_text())
        with run_workflow.urllib.request.urlopen(f"{base}/{name}.jpg", timeout=10) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            assert response.read() == (build_ui.UI_DIR / f"{name}.jpg").read_bytes()
