"""Two copies of the pack under one ComfyUI server: the first claims the server, every later one steps
aside with one line naming both folders (a fake PromptServer here; tests/test_comfyui_two_copies.py
runs a real one)."""

from __future__ import annotations

import logging
import sys
import types
from types import SimpleNamespace

import pytest
from comfyui_framelevel.nodes.pack_copies import CLAIM, ROUTE, claim, route_owner
from comfyui_framelevel.nodes.server_routes import register_routes


@pytest.fixture
def server(monkeypatch):
    """A running ComfyUI as the pack sees it: sys.modules["server"].PromptServer.instance."""
    web = pytest.importorskip("aiohttp.web")
    instance = SimpleNamespace(routes=web.RouteTableDef())
    module = types.ModuleType("server")
    module.PromptServer = SimpleNamespace(instance=instance)
    monkeypatch.setitem(sys.modules, "server", module)
    return instance


def step_aside_lines(caplog):
    return [r.getMessage() for r in caplog.records if "copies of comfyui-framelevel" in r.getMessage()]


def test_every_copy_is_active_without_a_running_server(monkeypatch, caplog):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert claim("a", "/x/custom_nodes/a") and claim("b", "/x/custom_nodes/b")
    assert step_aside_lines(caplog) == []


def test_the_first_copy_claims_and_a_second_steps_aside_naming_both(server, caplog, tmp_path):
    first, second = tmp_path / "ComfyUI-Manager-install", tmp_path / "comfyui-framelevel-old"
    caplog.set_level(logging.INFO)
    assert claim("pkg_first", str(first)) is True
    assert getattr(server, CLAIM) == {"package": "pkg_first", "folder": str(first)}
    assert claim("pkg_first", str(first)) is True  # the same package imported again stays active
    assert step_aside_lines(caplog) == []
    assert claim("pkg_second", str(second)) is False
    (line,) = step_aside_lines(caplog)
    assert f"using {first}, ignoring {second}" in line and "remove one of the two folders" in line
    assert "\n" not in line and "both are" not in line
    assert claim("pkg_third", str(tmp_path / "third")) is False  # a third copy: the first stays active
    assert getattr(server, CLAIM)["folder"] == str(first)


def test_two_links_to_one_checkout_are_named_as_such(server, caplog, tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("a", "b"):
        (tmp_path / name).symlink_to(checkout, target_is_directory=True)
    assert claim("pkg_a", str(tmp_path / "a")) and not claim("pkg_b", str(tmp_path / "b"))
    (line,) = step_aside_lines(caplog)
    assert f"(both are {checkout.resolve()})" in line


def test_a_copy_from_before_the_claim_is_known_by_its_route(server, caplog, tmp_path, monkeypatch):
    """An older copy registered the timeline route and made no claim: the newer copy steps aside and
    names the older one's folder (read from the module of the route's handler)."""
    old = tmp_path / "comfyui-framelevel.bak"
    routes_module = types.ModuleType("old_copy.nodes.server_routes")
    routes_module.__file__ = str(old / "nodes" / "server_routes.py")
    monkeypatch.setitem(sys.modules, routes_module.__name__, routes_module)

    async def handler(request):
        return None

    handler.__module__ = routes_module.__name__
    server.routes.post(ROUTE)(handler)
    assert route_owner(server) == str(old)
    assert claim("pkg_new", str(tmp_path / "comfyui-framelevel")) is False
    (line,) = step_aside_lines(caplog)
    assert f"using {old}, ignoring {tmp_path / 'comfyui-framelevel'}" in line
    assert register_routes() is True and len(list(server.routes)) == 1  # never a second POST route


def test_register_routes_adds_the_route_once(server):
    assert register_routes() is True and register_routes() is True
    assert [(r.method, r.path) for r in server.routes] == [("POST", ROUTE)]
