"""ComfyUI glue for the live story timeline: one aiohttp route on ComfyUI's PromptServer.

POST /framelevel/story/timeline (also under /api) with {"text": ..., and any of the schedule node's
inputs} answers `nodes/core/story/timeline.timeline`'s JSON: the compiled segments or the parse
error. Imported only when the pack runs inside ComfyUI; `server` (ComfyUI's module) and aiohttp are
imported here lazily, never at pack import time. Only the active copy of the pack calls this
(pack_copies.py): a second POST on the same path stops aiohttp when the server starts.
"""

from __future__ import annotations

import json

from .pack_copies import ROUTE, route_owner, running_server


def register_routes() -> bool:
    """Add the timeline route to ComfyUI's server (once); False when there is no running ComfyUI server."""
    instance = running_server()
    if instance is None:
        return False
    if route_owner(instance) is not None:
        return True
    from aiohttp import web

    from .core.story.timeline import timeline

    async def story_timeline(request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "the request is not a JSON object"}, status=400)
        return web.json_response(timeline(body))

    instance.routes.post(ROUTE)(story_timeline)
    return True
