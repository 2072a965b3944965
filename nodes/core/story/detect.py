"""Which syntax a text is written in (format auto); text that mixes syntaxes or is ambiguous is
refused with the line, the value and the fix."""

from __future__ import annotations

import re

from .errors import PromptScheduleError
from .markers import HOLOCINE_TAG, Mark, find_marks
from .text import content_lines, shown

_LIST_START = re.compile(r'^\[\s*("|\])')
_SHOT_END_PIPE = re.compile(r"\|(?=\s*(?:\[\s*shot cut\s*\]|$))", re.IGNORECASE)


def _mixed(first: Mark, second: Mark) -> PromptScheduleError:
    return PromptScheduleError(
        f"line {second.line}: {shown(second.value)} is {second.name} ({second.syntax}), but line {first.line}: "
        f"{shown(first.value)} is {first.name} ({first.syntax}); the text mixes two syntaxes. Fix: write the "
        "whole story in one syntax, or choose the format explicitly")


def _check_pipe_lines(text: str) -> None:
    """A line break in `|`-separated text must sit next to a `|`; else the reader would have to guess."""
    lines = content_lines(text)
    for (n1, l1), (n2, l2) in zip(lines, lines[1:]):
        if not l1.rstrip().endswith("|") and not l2.lstrip().startswith("|"):
            raise PromptScheduleError(
                f"line {n2}: {shown(l2)} starts a new line without a | while the text separates prompts with |, so "
                f"it is unclear whether it is a new prompt or continues line {n1}. Fix: end line {n1} with | (a new "
                "prompt) or join the two lines (one prompt), or choose the format pipes (line breaks only join)")


def _syntaxes(text: str) -> list[Mark]:
    """The first mark of each syntax in the text, in order of appearance."""
    marks = find_marks(text)
    if HOLOCINE_TAG.search(text) and "|" not in _SHOT_END_PIPE.sub("", text):
        marks = [m for m in marks if m.syntax != "pipes"]  # `|` ending a shot belongs to HoloCine
    if any(m.syntax == "prompt_relay" for m in marks):
        header = next((m for m in marks if m.name.endswith("header")), None)
        inline = next((m for m in marks if m.syntax == "pipes" or m.name.startswith("a Prompt Relay span")), None)
        if header and inline:
            raise _mixed(*sorted((header, inline), key=lambda m: m.line))
        marks = [m for m in marks if m.syntax != "pipes"]  # inline Prompt Relay separates with `|`
    seen: dict[str, Mark] = {}
    for mark in marks:
        seen.setdefault(mark.syntax, mark)
    return list(seen.values())


def detect_format(text: str) -> str:
    """The syntax of `text`: json, list, holocine, framepack, prompt_relay, pipes, keyframes or lines."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return "json"
    if _LIST_START.match(stripped):
        return "list"
    found = _syntaxes(text)
    if len(found) > 1:
        raise _mixed(found[0], found[1])
    syntax = found[0].syntax if found else "lines"
    if syntax in ("pipes", "prompt_relay") and "|" in text:
        _check_pipe_lines(text)
    return syntax
