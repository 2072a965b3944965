"""Write one prompt per latent frame as story text in any syntax the parser reads, and check that
reading it back gives the same prompts (`render_story` refuses rather than return text that would
not)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import frames as fm
from .errors import PromptScheduleError
from .schedule import PromptSchedule, paper_json
from .spread import spread_evenly

# style -> format that reads it back
STYLES = {"json": "json", "list": "list", "lines": "lines", "pipes": "pipes", "keyframes": "keyframes",
          "fizznodes": "keyframes", "prompt_relay": "prompt_relay", "prompt_relay_blocks": "prompt_relay",
          "framepack": "framepack", "holocine": "holocine"}


def _runs(prompts: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first latent, stop latent exclusive, prompt) of each run."""
    return [(first, last + 1, prompt) for first, last, prompt in PromptSchedule(tuple(prompts), "json").runs()]


def _equal_items(prompts: Sequence[str]) -> list[str]:
    """The shortest list the even-spread rule expands back to `prompts` (the runs, or every frame)."""
    items = [prompt for _, _, prompt in _runs(prompts)]
    return items if spread_evenly(items, len(prompts)) == list(prompts) else list(prompts)


def _seconds(latent: int, fps: float) -> str:
    """Shortest decimal time that maps back to `latent`'s first pixel frame."""
    pixel = fm.pixel_range_of_latent(latent)[0]
    for digits in range(7):
        text = f"{pixel / fps:.{digits}f}"
        if fm.pixel_of_seconds(float(text), fps) == pixel:
            return text.rstrip("0").rstrip(".") if "." in text else text
    return repr(pixel / fps)


def _key(latent: int, key_unit: str, fps: float) -> str:
    if key_unit == "latent":
        return str(latent)
    return _seconds(latent, fps) if key_unit == "seconds" else str(fm.pixel_range_of_latent(latent)[0])


def _keyframe_text(prompt: str) -> str:
    """The prompt as a keyframe line writes it: quoted when the reader would otherwise drop a trailing
    comma or a pair of surrounding quotes (`0: "a cat,"`)."""
    return f'"{prompt}"' if prompt.endswith(",") or (len(prompt) >= 2 and prompt[0] == prompt[-1] == '"') else prompt


def _write(prompts: Sequence[str], style: str, fps: float, key_unit: str) -> str:
    runs = _runs(prompts)
    if style == "json":
        return paper_json(prompts)
    if style == "list":
        return json.dumps(_equal_items(prompts), ensure_ascii=False, indent=1)
    if style == "lines":
        return "\n".join(_equal_items(prompts))
    if style == "pipes":
        return " |\n".join(_equal_items(prompts))
    if style == "keyframes":
        return "\n".join(f"{_key(first, key_unit, fps)}: {_keyframe_text(prompt)}" for first, _, prompt in runs)
    if style == "fizznodes":
        return ",\n".join(f'"{fm.pixel_range_of_latent(first)[0]}": "{prompt}"' for first, _, prompt in runs) + ","
    if style == "prompt_relay":
        return " |\n".join(f"{prompt} [{first}-{stop}]" for first, stop, prompt in runs)
    if style == "prompt_relay_blocks":
        return "\n".join(f"Scene {first + 1}-{stop + 1}:\n{prompt}" for first, stop, prompt in runs)
    if style == "framepack":
        return "\n".join(f"[{_seconds(first, fps)}s: {prompt}]" for first, _, prompt in runs)
    shots = _equal_items(prompts)
    return "\n".join([f"[per shot caption] {shots[0]}"] + [f"[shot cut] {shot}" for shot in shots[1:]])


def render_story(prompts: Sequence[str], style: str = "json", fps: float = 16.0, key_unit: str = "pixel") -> str:
    """Story text in `style` whose compilation over len(prompts) latent frames (with this fps and
    key unit, format auto or the style's own) gives `prompts` back; refused when it would not."""
    from .compile import StoryOptions, compile_story

    if style not in STYLES:
        raise PromptScheduleError(f"syntax {style!r} is not known. Fix: use one of {', '.join(STYLES)}")
    if not prompts:
        raise PromptScheduleError("no prompts to write. Fix: give at least one prompt")
    text = _write(list(prompts), style, fps, key_unit if style == "keyframes" else "pixel")
    for fmt in ("auto", STYLES[style]):
        options = StoryOptions(length=len(prompts), length_unit="latent", fps=fps, fmt=fmt,
                               key_unit=key_unit if style == "keyframes" else "pixel")
        try:
            back = compile_story(text, options).prompts
        except PromptScheduleError as error:
            raise PromptScheduleError(f"the prompts cannot be written as {style}: reading it back fails ({error}). "
                                      "Fix: choose another syntax, e.g. json") from None
        if list(back) != list(prompts):
            raise PromptScheduleError(f"the prompts cannot be written as {style}: it would read back differently. "
                                      "Fix: choose another syntax, e.g. json")
    return text
