"""The marks each syntax uses, found once for detection and checked again so none reaches the
text encoder."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import PromptScheduleError
from .text import content_lines, shown

NUMBER = r"\d+(?:\.\d+)?"
HOLOCINE_TAG = re.compile(r"\[\s*(?P<tag>global caption|per shot caption|shot cut)\s*\]", re.IGNORECASE)
TIMESTAMP = re.compile(rf"\[\s*(?P<start>{NUMBER})\s*s\s*(?:-\s*(?P<end>{NUMBER})\s*s\s*)?(?P<close>[:\]])")
RELAY_TAG = re.compile(rf"\[\s*(?P<a>{NUMBER})\s*(?:-\s*(?P<b>{NUMBER})\s*)?\]")
HEADER = re.compile(r"^\s*(?P<label>[^\W\d_]+)[ \t]+(?P<a>\d+)(?:[ \t]*-[ \t]*(?P<b>\d+))?[ \t]*:(?P<rest>.*)$")
KEYFRAME_LINE = re.compile(r'^\s*"?(?P<key>[+-]?\d+(?:\.\d+)?)"?\s*:\s*(?P<text>.*?)\s*,?\s*$')

# syntax name, what users call its mark, the pattern finding it inside one line
LINE_MARKS = (
    ("holocine", "a HoloCine tag", HOLOCINE_TAG),
    ("framepack", "a FramePack timestamp", TIMESTAMP),
    ("prompt_relay", "a Prompt Relay span [a-b] or weight [w]", RELAY_TAG),
    ("pipes", "a | separator", re.compile(r"\|")),
)


@dataclass(frozen=True)
class Mark:
    syntax: str  # the syntax this mark belongs to
    name: str  # what it is, for messages
    line: int
    value: str  # the text that holds it


def find_marks(text: str) -> list[Mark]:
    """First mark of each kind, in order of appearance (relay headers and keyframe lines included)."""
    found: dict[str, Mark] = {}
    for number, line in content_lines(text):
        for syntax, name, pattern in LINE_MARKS:
            match = pattern.search(line)
            if match and name not in found:
                found[name] = Mark(syntax, name, number, match.group(0) if syntax != "pipes" else line.strip())
        if HEADER.match(line) and "header" not in found:
            found["header"] = Mark("prompt_relay", "a Prompt Relay block header", number, line.strip())
        if KEYFRAME_LINE.match(line) and "keyframe" not in found:
            found["keyframe"] = Mark("keyframes", "a keyframe line", number, line.strip())
    return sorted(found.values(), key=lambda mark: mark.line)


def foreign_mark(prompt: str) -> tuple[str, str] | None:
    """(syntax, description) of a syntax mark left inside a prompt, or None."""
    for syntax, name, pattern in LINE_MARKS:
        match = pattern.search(prompt)
        if match:
            return syntax, f"{name} ({match.group(0)!r})"
    return None


def refuse_marks(prompt: str, where: str, line_starts: bool = True) -> None:
    """No syntax mark may reach the text encoder. line_starts: also refuse a prompt that begins like a
    block header (`Scene 2:`) or a keyframe line (`16:`), as in line-based text."""
    mark = foreign_mark(prompt)
    if mark is None and line_starts and HEADER.match(prompt):
        mark = "prompt_relay", f"a block header ({HEADER.match(prompt).group(0).split(':')[0] + ':'!r})"
    if mark is None and line_starts and KEYFRAME_LINE.match(prompt):
        mark = "keyframes", f"a keyframe number ({KEYFRAME_LINE.match(prompt).group('key') + ':'!r})"
    if mark:
        syntax, name = mark
        raise PromptScheduleError(
            f"{where}: the prompt {shown(prompt)} holds {name}, which would reach the text encoder as words. "
            f"Fix: remove it, or choose the format {syntax} (or auto) if the text is written in it")
