"""The timeline route's glue: absent outside ComfyUI (the pack imports light), and inside it a POST
route that answers exactly the parser's timeline JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from comfyui_framelevel.nodes.core.story.timeline import timeline
from comfyui_framelevel.nodes.server_routes import ROUTE, register_routes

TESTS = Path(__file__).resolve().parent


def test_pack_imports_without_comfyui_and_without_the_route_glue():
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); from conftest import load_pack; pack = load_pack(); "
            "print(pack.WEB_DIRECTORY, 'aiohttp' in sys.modules, 'server' in sys.modules, "
            "any(m.endswith('server_routes') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["./web", "False", "False", "False"]
    assert (TESTS.parent / "web" / "framelevel_timeline.js").is_file()


def test_no_route_without_a_running_comfyui(monkeypatch):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert register_routes() is False
    monkeypatch.setitem(sys.modules, "server", types.ModuleType("server"))  # another module named server
    assert register_routes() is False


class FakeStream:
    def __init__(self, raw: bytes):
        self.raw = raw

    async def read(self, n: int) -> bytes:
        chunk, self.raw = self.raw[:n], self.raw[n:]
        return chunk


class FakeRequest:
    """What the route reads of aiohttp's request: the declared length and the body stream."""

    def __init__(self, body, declared: int | None = None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_length = len(raw) if declared is None else declared
        self.content = FakeStream(raw)


def _registered(monkeypatch) -> list:
    """The routes register_routes adds to a stand-in of ComfyUI's running server."""
    web = pytest.importorskip("aiohttp.web")
    routes = web.RouteTableDef()
    server = types.ModuleType("server")
    server.PromptServer = SimpleNamespace(instance=SimpleNamespace(routes=routes))
    monkeypatch.setitem(sys.modules, "server", server)
    assert register_routes() is True
    return list(routes)


def _route(monkeypatch):
    return _registered(monkeypatch)[0].handler


def test_route_answers_the_parsers_timeline(monkeypatch):
    (route,) = _registered(monkeypatch)
    assert (route.method, route.path) == ("POST", ROUTE)
    story = {"text": "Scene 1:\na fox\nScene 2:\nthe fox drinks", "length": 33, "fps": 16}
    response = asyncio.run(route.handler(FakeRequest(story)))
    assert response.status == 200 and json.loads(response.text) == timeline(story)
    assert json.loads(response.text)["segments"][1]["latent"] == [5, 8]  # 9 latent frames: 5 + 4
    for bad in (["not", "an", "object"], b"{not json"):
        response = asyncio.run(route.handler(FakeRequest(bad)))
        assert response.status == 400 and json.loads(response.text)["ok"] is False


def _ask(handler, request):
    response = asyncio.run(handler(request))
    return response.status, json.loads(response.text)   # always valid JSON (no NaN)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"text": NaN}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000,
                                 b'"a string"', b"", b'{"text": "a"' ])
def test_malformed_requests_are_400_with_a_message(monkeypatch, raw):
    status, answer = _ask(_route(monkeypatch), FakeRequest(raw))
    assert status == 400 and answer["ok"] is False and "JSON" in answer["error"]


def test_a_body_over_the_cap_is_refused_before_it_is_read_whole(monkeypatch):
    from comfyui_framelevel.nodes import server_routes
    handler = _route(monkeypatch)
    status, answer = _ask(handler, FakeRequest(b"{}", declared=server_routes.MAX_BODY_BYTES + 1))
    assert status == 400 and str(server_routes.MAX_BODY_BYTES) in answer["error"]
    big = b'{"text": "' + b"a" * server_routes.MAX_BODY_BYTES + b'"}'
    status, answer = _ask(handler, FakeRequest(big, declared=0))   # no declared length: read, and stopped
    assert status == 400 and "at most" in answer["error"]


def test_values_the_compiler_refuses_and_non_finite_answers_are_400(monkeypatch):
    from comfyui_framelevel.nodes import server_routes

    def overflowing(body):
        raise OverflowError("cannot convert float infinity to integer")
    assert server_routes.answer_for({}, overflowing)[0] == 400
    assert server_routes.answer_for({}, lambda body: {"ok": True, "fps": float("nan")})[0] == 400
    assert server_routes.answer_for({}, lambda body: {"ok": True, "fps": 16.0}) == (200, {"ok": True, "fps": 16.0})

    def broken(body):
        raise KeyError("internal")
    status, answer = server_routes.answer_for({}, broken)
    assert status == 400 and "KeyError" in answer["error"]


def test_a_slow_compile_times_out_and_a_crowd_is_turned_away(monkeypatch):
    import threading

    from comfyui_framelevel.nodes import server_routes
    release = threading.Event()

    def slow(body):
        release.wait(5)
        return {"ok": True}
    monkeypatch.setattr(server_routes, "TIME_LIMIT_S", 0.2)

    async def crowd():
        first = await server_routes.compile_off_the_loop({}, slow)
        monkeypatch.setattr(server_routes, "_pending", server_routes.MAX_PENDING)
        second = await server_routes.compile_off_the_loop({}, slow)
        monkeypatch.setattr(server_routes, "_pending", 0)
        return first, second
    try:
        (status, answer), (busy, crowded) = asyncio.run(crowd())
    finally:
        release.set()
    assert status == 503 and "longer than 0.2 s" in answer["error"]
    assert busy == 503 and "busy" in crowded["error"]
