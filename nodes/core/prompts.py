"""Prompt compiler: story text -> one prompt per latent frame.

Accepted formats (chosen by `fmt`, or detected with "auto"):

* ``json``: the paper's object ``{"1": "...", "2": "..."}``, keys are 1-based latent frames; one
  entry per latent frame or fewer (each prompt holds until the next key).
* ``list``: a JSON list ``["...", "..."]``, spread evenly over the video.
* ``keyframes``: lines ``0: text`` or ``"16": "text",`` (FizzNodes / AnimateDiff style), 0-based,
  in latent frames, pixel frames or seconds (``key_unit``); each prompt holds until the next key.
* ``lines``: plain lines, spread evenly over the video.

Blank lines and lines starting with ``#`` are ignored in the line formats. Every problem raises
`PromptScheduleError` naming the line, the value and the fix; nothing is guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from . import frames as fm
from .story.errors import PromptScheduleError
from .story.spread import spread_evenly

FORMATS = ("auto", "json", "list", "keyframes", "lines")
KEY_UNITS = ("latent", "pixel", "seconds")
LENGTH_UNITS = ("pixel", "latent")

_KEYFRAME_LINE = re.compile(r'^\s*"?(?P<key>[+-]?\d+(?:\.\d+)?)"?\s*:\s*(?P<text>.*?)\s*,?\s*$')


@dataclass(frozen=True)
class PromptSchedule:
    """Prompts of every latent frame, deduplicated.

    prompts: one prompt per latent frame; unique: distinct prompts in order of first use;
    index: for each latent frame, its prompt's position in `unique`.
    """

    prompts: tuple[str, ...]
    source_format: str
    fps: float = 16.0
    unique: tuple[str, ...] = field(init=False)
    index: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        unique: dict[str, int] = {}
        for prompt in self.prompts:
            unique.setdefault(prompt, len(unique))
        object.__setattr__(self, "unique", tuple(unique))
        object.__setattr__(self, "index", tuple(unique[p] for p in self.prompts))

    @property
    def latent_frames(self) -> int:
        return len(self.prompts)

    def index_for(self, latent_frames: int) -> list[int]:
        """Prompt index per latent frame of a latent with `latent_frames` frames.

        A longer latent holds the last prompt to the end (a prompt holds until the next
        keyframe); a shorter latent would drop prompts silently, so it is refused.
        """
        return fit_index(self.index, latent_frames)

    def runs(self) -> list[tuple[int, int, str]]:
        """(first latent, last latent, prompt) for each run of equal prompts."""
        out: list[tuple[int, int, str]] = []
        for f, prompt in enumerate(self.prompts):
            if out and out[-1][2] == prompt:
                out[-1] = (out[-1][0], f, prompt)
            else:
                out.append((f, f, prompt))
        return out

    def pixel_runs(self, pixel_frames: int) -> list[tuple[int, int, str]]:
        """(first pixel frame, end pixel frame exclusive, prompt) of each run, for a decoded video of
        `pixel_frames` frames; the last run also takes the trailing frames a non-4k+1 video has."""
        spans = [(fm.pixel_range_of_latent(first)[0], fm.pixel_range_of_latent(last)[-1] + 1, prompt)
                 for first, last, prompt in self.runs()]
        first, _, prompt = spans[-1]
        return spans[:-1] + [(first, pixel_frames, prompt)]

    def preview(self, width: int = 100) -> str:
        """Readable table of the schedule: latent range, pixel range, time, prompt."""
        lines = [f"{self.latent_frames} latent frames = {fm.pixel_count(self.latent_frames)} pixel frames "
                 f"({fm.seconds_of_pixels(fm.pixel_count(self.latent_frames), self.fps):.2f} s at "
                 f"{self.fps:g} fps), {len(self.unique)} distinct prompts ({self.source_format} format)"]
        for first, last, prompt in self.runs():
            p0, p1 = fm.pixel_range_of_latent(first)[0], fm.pixel_range_of_latent(last)[-1]
            shown = prompt if len(prompt) <= width else prompt[: width - 3] + "..."
            lines.append(f"latent {first:>3}-{last:<3} pixel {p0:>4}-{p1:<4} "
                         f"{p0 / self.fps:6.2f}s  [{self.unique.index(prompt) + 1}] {shown}")
        return "\n".join(lines)


def paper_json(per_latent) -> str:
    """The paper's JSON object of one prompt per latent frame: a 1-based LATENT key where the prompt
    changes (each prompt holds until the next key), one entry per line. Compiling it over
    len(per_latent) latent frames gives `per_latent` back."""
    story: dict[str, str] = {}
    for latent, prompt in enumerate(per_latent):
        if latent == 0 or prompt != per_latent[latent - 1]:
            story[str(latent + 1)] = prompt
    return json.dumps(story, ensure_ascii=False, indent=1)


def fit_index(index, latent_frames: int) -> list[int]:
    """Per-frame prompt index laid over a latent of `latent_frames` frames.

    A longer latent holds the last prompt to the end (a prompt holds until the next keyframe); a
    shorter latent would silently drop prompts, so it is refused.
    """
    index = list(index)
    if latent_frames < len(index):
        raise PromptScheduleError(
            f"the latent has {latent_frames} latent frames but the prompt schedule was made for "
            f"{len(index)}; prompts after latent frame {latent_frames - 1} would be lost. "
            f"Fix: set the schedule length to {fm.pixel_count(latent_frames)} pixel frames "
            f"({latent_frames} latent frames) or make the video longer")
    return index + [index[-1]] * (latent_frames - len(index))


def compile_prompt_schedule(text: str, length: int = 81, unit: str = "pixel", fps: float = 16.0,
                            fmt: str = "auto", key_unit: str = "pixel", prefix: str = "",
                            suffix: str = "") -> PromptSchedule:
    """Compile story text into a `PromptSchedule` over the latent frames of a clip.

    length/unit: clip length in pixel frames (default 81) or latent frames.
    key_unit: unit of keyframe-line keys (latent, pixel or seconds); JSON object keys are always
    1-based latent frames.
    """
    frames = _latent_length(length, unit)
    _check_choice("format", fmt, FORMATS)
    _check_choice("key unit", key_unit, KEY_UNITS)
    if fps <= 0:
        raise PromptScheduleError(f"fps = {fps}: must be > 0. Fix: give the frame rate of the video, e.g. 16")
    if not text or not text.strip():
        raise PromptScheduleError("prompt text is empty. Fix: write at least one prompt")
    fmt = detect_format(text) if fmt == "auto" else fmt
    if fmt == "json":
        keyed = _parse_json_object(text, frames)
        prompts = _hold_until_next_key(keyed, frames)
    elif fmt == "list":
        prompts = spread_evenly(_parse_json_list(text), frames)
    elif fmt == "keyframes":
        keyed = _parse_keyframe_lines(text, frames, key_unit, fps)
        prompts = _hold_until_next_key(keyed, frames)
    else:
        prompts = spread_evenly(_plain_lines(text), frames)
    return PromptSchedule(tuple(_decorate(p, prefix, suffix) for p in prompts), fmt, fps)


def detect_format(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("{"):
        return "json"
    if stripped.startswith("["):
        return "list"
    if any(_KEYFRAME_LINE.match(line) for _, line in _content_lines(text)):
        return "keyframes"
    return "lines"


def _latent_length(length: int, unit: str) -> int:
    _check_choice("length unit", unit, LENGTH_UNITS)
    if int(length) != length or length < 1:
        raise PromptScheduleError(f"length = {length} {unit} frames: a clip needs at least 1 frame. "
                                  "Fix: give a positive frame count (81 pixel frames = 21 latent frames)")
    return fm.latent_count(int(length)) if unit == "pixel" else int(length)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PromptScheduleError(f"{name} = {value!r} is not known. Fix: use one of {', '.join(choices)}")


def _decorate(prompt: str, prefix: str, suffix: str) -> str:
    return " ".join(part.strip() for part in (prefix, prompt, suffix) if part and part.strip())


def _check_prompt(prompt, where: str) -> str:
    if not isinstance(prompt, str):
        raise PromptScheduleError(f"{where}: prompt {prompt!r} is not text. Fix: write the prompt as a string")
    if not prompt.strip():
        raise PromptScheduleError(f"{where}: the prompt is empty. Fix: write a prompt or remove the entry")
    return prompt.strip()


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of non-blank, non-comment lines."""
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")]


def _json_error(err: json.JSONDecodeError) -> PromptScheduleError:
    return PromptScheduleError(
        f"line {err.lineno}, column {err.colno}: malformed JSON ({err.msg}). Fix: check quotes, colons "
        "and commas there (no trailing comma after the last entry), or write plain keyframe lines "
        "like `0: text` instead")


def _parse_json_object(text: str, frames: int) -> list[tuple[int, str, str]]:
    def no_duplicates(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise PromptScheduleError(f'key "{key}" appears twice. Fix: give each latent frame one '
                                          "prompt; merge or renumber the entries")
            seen.add(key)
        return pairs

    try:
        pairs = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as err:
        raise _json_error(err) from None
    if not isinstance(pairs, list):
        raise PromptScheduleError("the JSON is not an object of frame prompts. Fix: write "
                                  '{"1": "first prompt", "2": "second prompt"}')
    if not pairs:
        raise PromptScheduleError('the JSON object has no entries. Fix: write {"1": "a prompt"}')
    keyed = []
    for key, prompt in pairs:
        where = f'key "{key}"'
        if not re.fullmatch(r"\s*\d+\s*", str(key)):
            raise PromptScheduleError(f"{where}: keys of the JSON format are 1-based latent frame numbers. "
                                      'Fix: use "1", "2", ... (or keyframe lines for other units)')
        latent = int(key) - 1
        if latent < 0:
            raise PromptScheduleError(
                f'{where}: the JSON format is 1-based (the paper\'s "1" is the first latent frame). '
                "Fix: renumber from 1, or write 0-based keyframe lines like `0: text` without braces")
        if latent >= frames:
            raise PromptScheduleError(f"{where}: past the end of the video ({frames} latent frames, keys 1.."
                                      f"{frames}). Fix: lower the key or make the video longer")
        keyed.append((latent, _check_prompt(prompt, where), where))
    return keyed


def _parse_json_list(text: str) -> list[str]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(err) from None
    if not isinstance(items, list) or not items:
        raise PromptScheduleError('the JSON list is empty. Fix: write ["first prompt", "second prompt"]')
    return [_check_prompt(item, f"list item {i + 1}") for i, item in enumerate(items)]


def _key_to_latent(key: str, key_unit: str, fps: float, where: str) -> int:
    value = float(key)
    if value < 0:
        raise PromptScheduleError(f"{where}: key {key} is negative. Fix: keys count from 0")
    if key_unit == "seconds":
        return fm.latent_of_seconds(value, fps)
    if not value.is_integer():
        raise PromptScheduleError(f"{where}: key {key} is not a whole {key_unit} frame. Fix: use a whole "
                                  "number, or set the key unit to seconds")
    return int(value) if key_unit == "latent" else fm.latent_of_pixel(int(value))


def _parse_keyframe_lines(text: str, frames: int, key_unit: str, fps: float) -> list[tuple[int, str, str]]:
    keyed = []
    for number, line in _content_lines(text):
        match = _KEYFRAME_LINE.match(line)
        where = f"line {number}"
        if not match:
            raise PromptScheduleError(f"{where} ({line.strip()!r}) has no keyframe number while other lines "
                                      "do. Fix: start it with `<frame>: ` or use plain lines only")
        prompt = match.group("text")
        if len(prompt) >= 2 and prompt[0] == prompt[-1] == '"':
            prompt = prompt[1:-1]
        latent = _key_to_latent(match.group("key"), key_unit, fps, where)
        if latent >= frames:
            raise PromptScheduleError(
                f"{where}: key {match.group('key')} ({key_unit}) is latent frame {latent}, past the end of "
                f"the video ({frames} latent frames = {fm.pixel_count(frames)} pixel frames). Fix: lower "
                "the key, check the key unit, or make the video longer")
        keyed.append((latent, _check_prompt(prompt, where), where))
    return keyed


def _hold_until_next_key(keyed: list[tuple[int, str, str]], frames: int) -> list[str]:
    """Each prompt holds from its latent frame until the next key; keys must rise strictly."""
    first_latent, _, first_where = keyed[0]
    if first_latent != 0:
        raise PromptScheduleError(f"{first_where}: the first keyframe is at latent frame {first_latent}, so "
                                  "the frames before it have no prompt. Fix: start at the first frame")
    for (prev, _, prev_where), (cur, _, where) in zip(keyed, keyed[1:]):
        if cur == prev:
            raise PromptScheduleError(f"{where}: falls on latent frame {cur}, the same as {prev_where}. Fix: "
                                      "keep one of them, or space keyframes at least 4 pixel frames apart")
        if cur < prev:
            raise PromptScheduleError(f"{where}: latent frame {cur} comes after {prev_where} (latent frame "
                                      f"{prev}); keys must increase. Fix: sort the keyframes")
    prompts: list[str] = []
    for (start, prompt, _), nxt in zip(keyed, [k[0] for k in keyed[1:]] + [frames]):
        prompts.extend([prompt] * (nxt - start))
    return prompts


def _plain_lines(text: str) -> list[str]:
    return [_check_prompt(line, f"line {n}") for n, line in _content_lines(text)]
