"""Bad widget settings are refused when the prompt is queued (ComfyUI's /prompt answers node_errors
naming the input), before any node runs: no model is loaded for a graph that cannot sample."""

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402
from pack_server import pack_server  # noqa: E402

pytestmark = pytest.mark.comfyui
UNET = "framelevel_validation_tiny.safetensors"   # listed, never loaded: validation stops first


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validation")
    unets = tmp / "diffusion_models"
    unets.mkdir()
    (unets / UNET).write_bytes(b"not a model: loading it would fail loudly")
    with pack_server(tmp, diffusion_models=unets) as instance:
        yield instance


def queue(server, prompt: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def node_error(answer: dict, node_id: str) -> str:
    errors = answer["node_errors"][node_id]["errors"]
    return " ".join(f"{e.get('message', '')} {e.get('details', '')}" for e in errors)


def test_pmwd_model_with_overlap_over_window_is_refused_before_the_loader_runs(server):
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": "default"}},
        "2": {"class_type": "FrameLevelPMWDModel", "inputs": {"model": ["1", 0], "window": 8, "num_windows": 0,
                                                              "overlap": 12, "fusion": "flat",
                                                              "max_windows_per_batch": 0}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    status, answer = queue(server, prompt)
    assert status == 400, answer
    message = node_error(answer, "2")
    assert "overlap = 12" in message and "window" in message and "Fix" in message, message
    assert "1" not in answer["node_errors"]
    assert run_workflow.http_json(server.url + "/history") == {}   # nothing ran, no model was loaded
    assert UNET not in server.log_path.read_text()


@pytest.mark.parametrize("node, inputs, named", [
    ("FrameLevelFIFOSampler", {"window": 8, "partitions": 1, "lookahead": False, "solver": "no_such_solver",
                               "max_windows_per_batch": 0}, "solver"),
    ("FrameLevelPMWDSampler", {"window": 8, "num_windows": 0, "overlap": 4, "fusion": "bilinear",
                               "solver": "euler", "max_windows_per_batch": 0}, "fusion"),
    ("FrameLevelSlidingWindowSampler", {"window": 8, "slide": 9, "history_sigma": 0.0, "solver": "euler",
                                        "max_windows_per_batch": 0}, "slide"),
])
def test_dropdowns_and_widget_rules_are_checked_at_queue_time(server, node, inputs, named):
    status, answer = queue(server, {"1": {"class_type": node, "inputs": inputs},
                                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert status == 400, answer
    assert f"{named} = " in node_error(answer, "1"), answer


def test_a_good_setting_still_queues(server):
    inputs = {"window": 8, "num_windows": 0, "overlap": 4, "fusion": "flat", "solver": "euler",
              "max_windows_per_batch": 0}
    status, answer = queue(server, {"1": {"class_type": "FrameLevelPMWDSampler", "inputs": inputs},
                                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert status == 200 and answer.get("node_errors") == {}, answer
