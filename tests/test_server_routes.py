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


class FakeRequest:
    def __init__(self, body):
        self.body = body

    async def json(self):
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


def test_route_answers_the_parsers_timeline(monkeypatch):
    web = pytest.importorskip("aiohttp.web")
    routes = web.RouteTableDef()
    server = types.ModuleType("server")
    server.PromptServer = SimpleNamespace(instance=SimpleNamespace(routes=routes))
    monkeypatch.setitem(sys.modules, "server", server)
    assert register_routes() is True
    (route,) = list(routes)
    assert (route.method, route.path) == ("POST", ROUTE)
    story = {"text": "Scene 1:\na fox\nScene 2:\nthe fox drinks", "length": 33, "fps": 16}
    response = asyncio.run(route.handler(FakeRequest(story)))
    assert response.status == 200 and json.loads(response.text) == timeline(story)
    assert json.loads(response.text)["segments"][1]["latent"] == [5, 8]  # 9 latent frames: 5 + 4
    for bad in (["not", "an", "object"], json.JSONDecodeError("bad", "x", 0)):
        response = asyncio.run(route.handler(FakeRequest(bad)))
        assert response.status == 400 and json.loads(response.text)["ok"] is False
