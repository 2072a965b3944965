"""Caption files are story text, compiled to the clip's latent length by the pack's one compiler.

A caption file holds story text exactly as FrameLevelPromptSchedule reads it, normally the paper's
JSON object with 1-based LATENT frame keys, each caption holding until the next key:

    {"1": "A woman opens the door of a dark kitchen.", "9": "She switches on the light and smiles."}

It is compiled by `nodes/core/prompts.py` with the schedule node's defaults (format auto, keyframe
keys in pixel frames, 16 fps) over the clip's latent frames, so a caption file means the same in
the trainer, in the metrics and in ComfyUI. The wrapper {"unit": "latent", "captions": {...}} that
earlier annotator versions wrote is read as its inner object. Files keyed by PIXEL frames (the
trainer's earlier reading) are refused with the command that converts them: `convert_pixel_keys`
reproduces that earlier reading exactly (a latent frame took the caption covering most of its pixel
frames, ties to the later caption) and writes it as latent keys.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ...nodes.core import frames as fm  # noqa: TID252 - package-relative
from ...nodes.core.prompts import PromptScheduleError, compile_prompt_schedule  # noqa: TID252 - package-relative

CONVERT_COMMAND = "python training/cli.py convert-captions --pixel-keys FILE..."


def _legacy_pixel_error(source: str, unit) -> ValueError:
    return ValueError(
        f"{source}: caption keys given in {unit!r} frames; caption files are keyed by 1-based LATENT frames "
        f"now. Fix: convert the file with `{CONVERT_COMMAND}` (it keeps the meaning the trainer gave pixel "
        "keys before)")


def story_text(content: str, source: str = "captions") -> str:
    """The story text of a caption file's content (unwraps {"unit": "latent", "captions": {...}})."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        return content  # not JSON: story text in another syntax, read by the compiler
    if isinstance(data, dict) and "captions" in data:
        unit = data.get("unit")
        if unit != "latent":
            raise _legacy_pixel_error(source, unit if unit is not None else "pixel (no unit given)")
        return json.dumps(data["captions"], ensure_ascii=False)
    return content


def load_captions(path: Path) -> str:
    """Story text of a caption file."""
    return story_text(Path(path).read_text(encoding="utf-8"), source=str(path))


def distinct_frame_prompts(story: str, latent_frames: int, source: str = "captions") -> tuple[list[str], list[int]]:
    """(distinct captions in first-use order, per-latent index into that list) of a clip."""
    try:
        schedule = compile_prompt_schedule(story, length=latent_frames, unit="latent")
    except PromptScheduleError as error:
        hint = (f" (caption keys are LATENT frames; a file keyed by pixel frames converts with "
                f"`{CONVERT_COMMAND}`)") if "past the end" in str(error) else ""
        raise ValueError(f"{source}: {error}{hint}") from None
    return list(schedule.unique), list(schedule.index)


def _pixel_caption_starts(captions: dict, source: str) -> list[tuple[int, str]]:
    if not isinstance(captions, dict) or not captions:
        raise ValueError(f"{source}: expected a JSON object of pixel-frame keys like {{\"1\": \"...\"}}")
    starts = []
    for key, text in captions.items():
        if not str(key).strip().isdigit() or int(key) < 1:
            raise ValueError(f"{source}: key {key!r} is not a 1-based pixel frame number")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{source}: the caption at pixel frame {key} is empty or not text")
        starts.append((int(key), text.strip()))
    starts.sort()
    if starts[0][0] != 1:
        raise ValueError(f"{source}: the first caption starts at pixel frame {starts[0][0]}; add one at \"1\"")
    return starts


def convert_pixel_keys(captions: dict, source: str = "captions",
                       pixel_frames: int | None = None) -> tuple[dict[str, str], list[str]]:
    """(latent-keyed story object, captions no latent frame shows) of a pixel-keyed caption object.

    Each latent frame takes the caption covering most of its pixel frames, a tie going to the later
    caption (the trainer's earlier reading of pixel keys); after the last caption every frame holds it.
    pixel_frames: the clip's length, when known; without it the clip is taken to run past the last key.
    """
    starts = _pixel_caption_starts(captions, source)

    def caption_at(pixel: int) -> int:
        return max(i for i, (start, _) in enumerate(starts) if start - 1 <= pixel)

    latents = fm.latent_of_pixel(starts[-1][0] - 1) + 2  # the latent after the last start holds it whole
    end = latents * fm.TEMPORAL_STRIDE if pixel_frames is None else pixel_frames
    if pixel_frames is not None:
        latents = min(latents, fm.latent_count(pixel_frames))
    story: dict[str, str] = {}
    shown: list[int] = []
    for latent in range(latents):
        votes = Counter(caption_at(p) for p in fm.pixel_range_of_latent(latent) if p < end)
        best = max(i for i, count in votes.items() if count == max(votes.values()))
        if not shown or shown[-1] != best:
            story[str(latent + 1)] = starts[best][1]
            shown.append(best)
    dropped = [f"pixel frame {start}: {text!r}" for i, (start, text) in enumerate(starts) if i not in shown]
    return story, dropped


def convert_caption_file(path: Path, pixel_keys: bool = False, pixel_frames: int | None = None) -> list[str]:
    """Rewrite a pixel-keyed caption file as latent keys; returns the captions no latent frame shows.

    Converts {"unit": "pixel", "captions": {...}} and wrappers without a unit; a bare object only with
    `pixel_keys` (a bare object is read as latent keys otherwise). A latent wrapper is unwrapped.
    pixel_frames: the clip's length (see convert_pixel_keys).
    """
    from ...nodes.core.files import write_text_atomic  # noqa: TID252 - package-relative

    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "captions" in data:
        latent = data.get("unit") == "latent"
        data = data["captions"]
    else:
        latent = not pixel_keys
    story, dropped = (data, []) if latent else convert_pixel_keys(data, str(path), pixel_frames)
    write_text_atomic(path, json.dumps(story, ensure_ascii=False, indent=1) + "\n")
    return dropped
