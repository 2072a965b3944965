"""ComfyUI glue for the live story timeline: one aiohttp route on ComfyUI's PromptServer.

POST /framelevel/story/timeline (also under /api) with {"text": ..., and any of the schedule node's
inputs} answers `nodes/core/story/timeline.timeline`'s JSON: the compiled segments, or the story's
error as {"ok": false, "error": ...} (a story with a mistake is a normal answer while someone types).
Imported only when the pack runs inside ComfyUI; `server` (ComfyUI's module) and aiohttp are imported
here lazily, never at pack import time. Only the active copy of the pack calls this (pack_copies.py): a
second POST on the same path stops aiohttp when the server starts.

A request comes from any page or workflow, so the route never lets one request hold the server:
- the body is capped (MAX_BODY_BYTES) and read before any parsing;
- the JSON is parsed and the story compiled off the event loop, on one worker thread of their own, under a time limit
  (TIME_LIMIT_S); at most MAX_PENDING requests wait for it, more are turned away at once (503);
- a request that is not a JSON object, holds values the schedule node refuses, or whose answer would
  not be valid JSON (NaN) gets 400 with the pack's message; nothing it sends makes a 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math

from .pack_copies import ROUTE, route_owner, running_server

MAX_BODY_BYTES = 256 << 10  # 256 KiB: the longest story a widget holds (schema.MAX_STRING_CHARS) and its options
TIME_LIMIT_S = 10.0         # queue and compile; the readers are linear-time (64 KB in well under 0.5 s)
MAX_PENDING = 32            # requests queued or compiling at once; more are turned away (503)
_worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="framelevel-timeline")
_pending = 0


def bad_request(message: str) -> tuple[int, dict]:
    return 400, {"ok": False, "error": message}


def parse_request(raw: bytes) -> tuple[int, dict] | dict:
    """The request body as a dict, or (400, answer) naming what is wrong with it."""
    if len(raw) > MAX_BODY_BYTES:
        return bad_request(f"the request is {len(raw)} bytes; the timeline reads at most {MAX_BODY_BYTES} "
                           "(shorten the story)")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return bad_request(f"the request is not valid JSON ({type(error).__name__}): send a JSON object")
    if not isinstance(body, dict):
        return bad_request("the request is not a JSON object: send {\"text\": ...}")
    return body


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def answer_for(raw: bytes | dict, timeline) -> tuple[int, dict]:
    """The route's answer to a request body, as (status, answer): story errors are answers (200); a
    body that is not a JSON object, values the pack refuses, and anything else the request makes the
    compiler raise are 400 with the message."""
    body = parse_request(raw) if isinstance(raw, bytes) else raw
    if isinstance(body, tuple):
        return body
    try:
        answer = timeline(body)
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as error:
        return bad_request(str(error) or type(error).__name__)
    except Exception as error:   # never a 500 for what a request sends; the log keeps the details
        logging.exception("FrameLevel timeline: unexpected error for a request")
        return bad_request(f"the story could not be read ({type(error).__name__}); see the ComfyUI log")
    if not _finite(answer):
        return bad_request("the story gives a number that is not finite (check fps and length)")
    return 200, answer


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


async def _read_capped(request) -> bytes:
    """The body, read no further than one byte past MAX_BODY_BYTES."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return b"x" * (MAX_BODY_BYTES + 1)
    chunks, size = [], 0
    while size <= MAX_BODY_BYTES:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def compile_off_the_loop(raw: bytes | dict, timeline) -> tuple[int, dict]:
    """answer_for (JSON parsing included) on the route's own worker thread, under TIME_LIMIT_S;
    503 when too many wait."""
    global _pending
    if _pending >= MAX_PENDING:
        return 503, {"ok": False, "error": "the timeline is busy with other requests; try again in a moment"}
    _pending += 1
    try:
        future = asyncio.get_running_loop().run_in_executor(_worker, answer_for, raw, timeline)
        return await asyncio.wait_for(asyncio.shield(future), TIME_LIMIT_S)
    except asyncio.TimeoutError:
        return 503, {"ok": False, "error": f"the story took longer than {TIME_LIMIT_S:g} s to read; shorten it"}
    finally:
        _pending -= 1


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
        raw = await _read_capped(request)
        status, answer = parse_request(raw) if len(raw) > MAX_BODY_BYTES else await compile_off_the_loop(raw, timeline)
        return web.json_response(answer, status=status, dumps=lambda value: json.dumps(value, allow_nan=False))

    instance.routes.post(ROUTE)(story_timeline)
    return True
