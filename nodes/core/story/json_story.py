"""The paper's JSON: an object {"1": ..., "9": ...} keyed by 1-based LATENT frames (each prompt holds
until the next key), or a list ["...", "..."] spread evenly."""

from __future__ import annotations

import json
import re

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .reading import Reading
from .text import clean_prompt


def _json_error(err: json.JSONDecodeError) -> PromptScheduleError:
    return PromptScheduleError(
        f"line {err.lineno}, column {err.colno}: malformed JSON ({err.msg}). Fix: check quotes, colons "
        "and commas there (no trailing comma after the last entry), or write plain keyframe lines "
        "like `0: text` instead")


def _refuse_duplicate_keys(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise PromptScheduleError(f'key "{key}" appears twice. Fix: give each latent frame one '
                                      "prompt; merge or renumber the entries")
        seen.add(key)
    return pairs


def _latent_of_key(key: str, reading: Reading) -> int:
    where = f'key "{key}"'
    if not re.fullmatch(r"\s*\d+\s*", str(key)):
        raise PromptScheduleError(f"{where}: keys of the JSON format are 1-based latent frame numbers. "
                                  'Fix: use "1", "2", ... (or keyframe lines for other units)')
    latent = int(key) - 1
    if latent < 0:
        raise PromptScheduleError(
            f'{where}: the JSON format is 1-based (the paper\'s "1" is the first latent frame). '
            "Fix: renumber from 1, or write 0-based keyframe lines like `0: text` without braces")
    if latent >= reading.frames:
        raise PromptScheduleError(f"{where}: past the end of the video ({reading.frames} latent frames, keys 1.."
                                  f"{reading.frames}). Fix: lower the key or make the video longer")
    return latent


def read_json_object(text: str, reading: Reading) -> Layout:
    try:
        pairs = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as err:
        raise _json_error(err) from None
    if not isinstance(pairs, list):
        raise PromptScheduleError("the JSON is not an object of frame prompts. Fix: write "
                                  '{"1": "first prompt", "2": "second prompt"}')
    if not pairs:
        raise PromptScheduleError('the JSON object has no entries. Fix: write {"1": "a prompt"}')
    pieces = tuple(Piece(clean_prompt(prompt, f'key "{key}"'), f'key "{key}"', start=_latent_of_key(key, reading))
                   for key, prompt in pairs)
    return Layout(pieces, timed=True)


def read_json_list(text: str, reading: Reading) -> Layout:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise _json_error(err) from None
    if not isinstance(items, list) or not items:
        raise PromptScheduleError('the JSON list is empty. Fix: write ["first prompt", "second prompt"]')
    return Layout(tuple(Piece(clean_prompt(item, f"list item {i + 1}"), f"list item {i + 1}")
                        for i, item in enumerate(items)), timed=False)
