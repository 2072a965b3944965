"""ComfyUI glue for the live story timeline: one aiohttp route on ComfyUI's PromptServer.

POST /framelevel/story/timeline (also under /api) with {"text": ..., and any of the schedule node's
inputs} answers `nodes/core/story/timeline.timeline`'s JSON: the compiled segments or the parse
error. Imported only when the pack runs inside ComfyUI; `server` (ComfyUI's module) and aiohttp are
imported here lazily, never at pack import time.
"""

from __future__ import annotations

import json
import sys

ROUTE = "/framelevel/story/timeline"


def register_routes() -> bool:
    """Add the timeline route to ComfyUI's server; False when there is no running ComfyUI server."""
    server = sys.modules.get("server")
    if getattr(getattr(server, "PromptServer", None), "instance", None) is None:
        return False
    from aiohttp import web
    from server import PromptServer

    from .core.story.timeline import timeline

    async def story_timeline(request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "the request is not a JSON object"}, status=400)
        return web.json_response(timeline(body))

    PromptServer.instance.routes.post(ROUTE)(story_timeline)
    return True
