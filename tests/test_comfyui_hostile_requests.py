"""A real ComfyUI with the pack keeps serving while hostile requests hit the timeline route: stories
compile off the event loop, bodies are capped, every answer is valid JSON and never a 500."""

import concurrent.futures
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402
from pack_server import pack_server  # noqa: E402

pytestmark = pytest.mark.comfyui
ROUTE = "/framelevel/story/timeline"
# What backtracking readers took seconds to minutes on (a keyframe-style line, a Prompt Relay segment
# with an unclosed bracket), non-finite and huge numbers, deep nesting, a body over the cap, not JSON.
HOSTILE = [
    json.dumps({"text": "0:" + " " * 2000 + "\n"}).encode(),
    json.dumps({"text": "a [" + " " * 65_000 + "| b"}).encode(),
    json.dumps({"text": "a | b", "length": 1e308, "fps": 16}).encode(),
    json.dumps({"text": "a | b", "length": "1" * 400}).encode(),
    json.dumps({"text": "[" * 20_000 + "]" * 20_000}).encode(),
    b'{"text": "a | b", "fps": NaN}',
    b"[" * 200_000,
    b"x" * (2 << 20),
    b"\xff\xfe not utf-8",
    json.dumps({"text": "a | b", "length": 10 ** 9, "length_unit": "pixel"}).encode(),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pack_server(tmp_path_factory.mktemp("hostile")) as instance:
        yield instance


def post(url: str, raw: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read().decode())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode())   # the answer is JSON whatever the status


def system_stats_seconds(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url + "/system_stats", timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def test_twenty_hostile_requests_at_once_never_freeze_the_server(server):
    system_stats_seconds(server.url)   # warm
    requests = [HOSTILE[i % len(HOSTILE)] for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        answers = [pool.submit(post, server.url + ROUTE, raw) for raw in requests]
        latencies = []
        while not all(answer.done() for answer in answers) or len(latencies) < 5:
            latencies.append(system_stats_seconds(server.url))
            time.sleep(0.02)
        results = [answer.result() for answer in answers]
    assert max(latencies) < 0.1, f"/system_stats took up to {max(latencies) * 1000:.0f} ms: {latencies}"
    for raw, (status, answer) in zip(requests, results):
        assert status in (200, 400, 503), (raw[:60], status, answer)
        assert answer["ok"] or answer["error"], (raw[:60], answer)   # a schedule, or the pack's message
        assert answer["ok"] is False or status == 200, (raw[:60], status, answer)
    malformed = {5, 6, 7, 8}   # NaN, unclosed nesting, over the cap, not UTF-8
    assert [status for i, (status, _) in enumerate(results) if i % len(HOSTILE) in malformed] == [400] * 8
    assert all(status == 200 for i, (status, _) in enumerate(results) if i % len(HOSTILE) not in malformed)
    story = {"text": "a fox | the fox drinks", "length": 21, "length_unit": "pixel"}
    assert post(server.url + ROUTE, json.dumps(story).encode()) == (200, run_workflow.http_json(
        server.url + ROUTE, story))   # still answering normally afterwards
