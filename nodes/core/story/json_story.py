"""The paper's JSON: an object {"1": ..., "9": ...} keyed by 1-based LATENT frames (each prompt holds
until the next key), or a list ["...", "..."] spread evenly."""

from __future__ import annotations

import json
import re

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .limits import MAX_JSON_DEPTH, checked_number
from .reading import Reading
from .text import clean_prompt


def _json_error(err: json.JSONDecodeError) -> PromptScheduleError:
    return PromptScheduleError(
        f"line {err.lineno}, column {err.colno}: malformed JSON ({err.msg}). Fix: check quotes, colons "
        "and commas there (no trailing comma after the last entry), or write plain keyframe lines "
        "like `0: text` instead")


# Outside strings only brackets count; `\\.` keeps an escaped quote inside a string from ending it.
_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


class JsonNumber:
    """A number in the story's JSON, kept as written: never converted (a 5,000-digit number would
    fail int()) and never taken for a prompt (clean_prompt refuses it as not text)."""

    def __init__(self, written: str):
        self.written = written

    def __repr__(self) -> str:
        text = self.written
        return text if len(text) <= 40 else f"{text[:20]}... ({len(text):,} characters)"


class _Pairs(list):
    """The (key, value) pairs of one JSON object, in order."""


def _refuse_deep_nesting(text: str) -> None:
    """Refuse brackets nested deeper than MAX_JSON_DEPTH before json.loads, whose recursion would
    otherwise end in RecursionError; one pass over the brackets and quotes."""
    depth, in_string = 0, False
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char == '"':
            in_string = not in_string
        elif in_string or len(char) == 2:
            continue
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                line = text.count("\n", 0, token.start()) + 1
                raise PromptScheduleError(
                    f"line {line}: the JSON nests brackets more than {MAX_JSON_DEPTH} deep; a story needs one level "
                    '({"1": "text"} or ["text"]). Fix: write each prompt as a string, not a nested list or object')
        else:
            depth -= 1


def _load_json(text: str, **hooks):
    _refuse_deep_nesting(text)
    try:
        return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=JsonNumber, **hooks)
    except json.JSONDecodeError as err:
        raise _json_error(err) from None


def _key_place(key: str) -> str:
    """`key "8"` for messages; a very long key is shortened."""
    return f'key "{key if len(key) <= 40 else key[:20] + "..."}"'


def _refuse_duplicate_keys(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise PromptScheduleError(f"{_key_place(key)} appears twice. Fix: give each latent frame one "
                                      "prompt; merge or renumber the entries")
        seen.add(key)
    return _Pairs(pairs)


def _latent_of_key(key: str, reading: Reading) -> int:
    where = _key_place(key)
    if not re.fullmatch(r"\s*\d+\s*", str(key)):
        raise PromptScheduleError(f"{where}: keys of the JSON format are 1-based latent frame numbers. "
                                  'Fix: use "1", "2", ... (or keyframe lines for other units)')
    latent = int(checked_number(key, where, "key")) - 1
    if latent < 0:
        raise PromptScheduleError(
            f'{where}: the JSON format is 1-based (the paper\'s "1" is the first latent frame). '
            "Fix: renumber from 1, or write 0-based keyframe lines like `0: text` without braces")
    if latent >= reading.frames:
        raise PromptScheduleError(f"{where}: past the end of the video ({reading.frames} latent frames, keys 1.."
                                  f"{reading.frames}). Fix: lower the key or make the video longer")
    return latent


def read_json_object(text: str, reading: Reading) -> Layout:
    pairs = _load_json(text, object_pairs_hook=_refuse_duplicate_keys)
    if not isinstance(pairs, _Pairs):
        raise PromptScheduleError("the JSON is not an object of frame prompts. Fix: write "
                                  '{"1": "first prompt", "2": "second prompt"}')
    if not pairs:
        raise PromptScheduleError('the JSON object has no entries. Fix: write {"1": "a prompt"}')
    pieces = tuple(Piece(clean_prompt(prompt, _key_place(key)), _key_place(key),
                         start=_latent_of_key(key, reading)) for key, prompt in pairs)
    return Layout(pieces, timed=True)


def read_json_list(text: str, reading: Reading) -> Layout:
    items = _load_json(text)
    if not isinstance(items, list) or not items:
        raise PromptScheduleError('the JSON list is empty. Fix: write ["first prompt", "second prompt"]')
    return Layout(tuple(Piece(clean_prompt(item, f"list item {i + 1}"), f"list item {i + 1}")
                        for i, item in enumerate(items)), timed=False)
