"""The live timeline's answer: story text and the schedule node's settings in, the compiled segments
(seconds, pixel frames, latent frames, prompt) or the parse error out. The server route only wraps
this function, so the numbers shown while typing are the numbers sampled."""

from __future__ import annotations

from .. import frames as fm
from .compile import StoryOptions, compile_story
from .errors import PromptScheduleError
from .text import shown_value

# request field -> StoryOptions field (the request uses the node's input names)
INPUTS = {"length": "length", "length_unit": "length_unit", "format": "fmt", "key_unit": "key_unit", "fps": "fps",
          "prefix": "prefix", "suffix": "suffix", "global_prompt": "global_prompt"}
_NUMBERS = {"length": int, "fps": float}


def _options(request: dict) -> StoryOptions:
    values = {}
    for name, field_name in INPUTS.items():
        if request.get(name) is not None:
            value = request[name]
            try:
                values[field_name] = _NUMBERS[name](value) if name in _NUMBERS else str(value)
            except (TypeError, ValueError, OverflowError):
                raise PromptScheduleError(f"{name} = {shown_value(value)} is not a number (or not a finite one). "
                                          "Fix: give a number") from None
    return StoryOptions(**values)


def timeline(request: dict) -> dict:
    """{"ok": True, format, detected, latent_frames, pixel_frames, fps, seconds, distinct, segments} or
    {"ok": False, "error": message}; `request` holds `text` and any of the schedule node's inputs."""
    try:
        options = _options(request)
        schedule = compile_story(str(request.get("text") or ""), options)
    except PromptScheduleError as error:
        return {"ok": False, "error": str(error)}
    fps = schedule.fps
    segments = []
    for first, last, prompt in schedule.runs():
        p0, p1 = fm.pixel_range_of_latent(first)[0], fm.pixel_range_of_latent(last)[-1]
        segments.append({"prompt": prompt, "number": schedule.number_of(prompt),
                         "latent": [first, last], "pixel": [p0, p1],
                         "seconds": [round(p0 / fps, 4), round((p1 + 1) / fps, 4)]})
    return {"ok": True, "format": schedule.source_format, "detected": schedule.detected,
            "latent_frames": schedule.latent_frames, "pixel_frames": schedule.pixel_frames, "fps": fps,
            "seconds": round(fm.seconds_of_pixels(schedule.pixel_frames, fps), 4),
            "distinct": len(schedule.unique), "segments": segments}
