"""One copy of the pack per ComfyUI server.

Two copies of the pack in custom_nodes (a ComfyUI-Manager install beside a git clone, an old copy
renamed to comfyui-framelevel.bak, two links to one checkout) are two separate packages to ComfyUI:
each would add the timeline route, and aiohttp refuses the second POST on the same path when the
server starts ("Added route will never be executed, method POST is already registered", naming
neither copy), so ComfyUI stopped. Each copy's nodes would also replace the other's, and the
frontend would load the timeline extension twice.

So the first copy ComfyUI loads claims the running server, and every later copy steps aside
completely: no route, no nodes, no web extension, and one log line naming both folders and the fix.
The claim is an attribute on `PromptServer.instance` (one per server, seen by every copy whatever
its folder is called; nothing here compares folder names) holding a plain dict, so that any version
of the pack can read it: keep its keys. A copy from before this check makes no claim but has added
the timeline route to the server's route table, so that route counts as a claim too.

Standard library only, and `server` is read from sys.modules, never imported: the pack imports this
module when it is imported itself, because ComfyUI reads WEB_DIRECTORY right after the import.
Without a running ComfyUI server (tests, the trainer) there is nothing to claim and every copy is
active.
"""

from __future__ import annotations

import logging
import os
import sys

ROUTE = "/framelevel/story/timeline"
CLAIM = "comfyui_framelevel_active_copy"  # attribute on PromptServer.instance: {"package", "folder"}


def running_server():
    """ComfyUI's PromptServer.instance, or None outside a running ComfyUI."""
    server = sys.modules.get("server")
    return getattr(getattr(server, "PromptServer", None), "instance", None)


def route_owner(server) -> str | None:
    """Folder of the copy whose timeline route is already in the server's route table ("" when its
    folder cannot be told), None when no copy has added it."""
    for route in getattr(server, "routes", None) or ():
        if getattr(route, "path", None) != ROUTE:
            continue
        module = sys.modules.get(getattr(getattr(route, "handler", None), "__module__", ""), None)
        source = getattr(module, "__file__", None)  # <copy>/nodes/server_routes.py
        return os.path.dirname(os.path.dirname(os.path.abspath(source))) if source else ""
    return None


def claim(package: str, folder: str) -> bool:
    """Claim the running ComfyUI server for this copy of the pack (`package`: the name ComfyUI
    imported it under, unique per folder; `folder`: where it lies, as ComfyUI found it).

    True: this copy is the active one (the first to claim, the same package imported again, or no
    server runs). False: another copy serves this server; this copy must add nothing, and the one
    line naming both folders is logged here."""
    server = running_server()
    if server is None:
        return True
    record = getattr(server, CLAIM, None)
    if isinstance(record, dict):
        if record.get("package") == package:
            return True
        active = str(record.get("folder") or "another copy")
    else:
        owner = route_owner(server)
        if owner is None:
            setattr(server, CLAIM, {"package": package, "folder": folder})
            return True
        active = owner or "an older copy (its folder is unknown)"
    logging.warning(step_aside_message(active, folder))
    return False


def step_aside_message(active: str, aside: str) -> str:
    """The one log line of a copy that steps aside."""
    same = ""
    try:
        if os.path.realpath(active) == os.path.realpath(aside):
            same = f" (both are {os.path.realpath(aside)})"
    except (OSError, ValueError):
        pass
    return (f"[comfyui-framelevel] two copies of comfyui-framelevel are installed{same}: using {active}, "
            f"ignoring {aside} (none of its nodes, routes or web files are loaded); remove one of the "
            "two folders (or rename the unused one to end in .disabled) and restart ComfyUI")
