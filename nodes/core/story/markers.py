"""The marks each syntax uses, found once for detection and checked again so none reaches the
text encoder."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import PromptScheduleError
from .text import content_lines, join_clean_parts, shown, shown_value

NUMBER = r"\d+(?:\.\d+)?"
HOLOCINE_TAG = re.compile(r"\[\s*(?P<tag>global caption|per shot caption|shot cut)\s*\]", re.IGNORECASE)
TIMESTAMP = re.compile(rf"\[\s*(?P<start>{NUMBER})\s*s\s*(?:-\s*(?P<end>{NUMBER})\s*s\s*)?(?P<close>[:\]])")
RELAY_TAG = re.compile(rf"\[\s*(?P<a>{NUMBER})\s*(?:-\s*(?P<b>{NUMBER})\s*)?\]")
HEADER = re.compile(r"^\s*(?P<label>[^\W\d_]+)[ \t]+(?P<a>\d+)(?:[ \t]*-[ \t]*(?P<b>\d+))?[ \t]*:(?P<rest>.*)$")
# `0:` / `"16":` at a line's start. The text after it is cut by hand (keyframe_line): the former
# pattern's `(?P<text>.*?)\s*,?\s*$` tried every split of a run of spaces (cubic time, 6 s at 1 KB).
KEYFRAME_HEAD = re.compile(r'\s*"?(?P<key>[+-]?\d+(?:\.\d+)?)"?\s*:')

# syntax name, what users call its mark, the pattern finding it inside one line
LINE_MARKS = (
    ("holocine", "a HoloCine tag", HOLOCINE_TAG),
    ("framepack", "a FramePack timestamp", TIMESTAMP),
    ("prompt_relay", "a Prompt Relay span [a-b] or weight [w]", RELAY_TAG),
    ("pipes", "a | separator", re.compile(r"\|")),
)


@dataclass(frozen=True)
class KeyframeLine:
    key: str  # the number as written: "16", "-1", "2.5"
    text: str  # the prompt after the colon, without surrounding spaces and one trailing comma


def keyframe_line(line: str) -> KeyframeLine | None:
    """`0: text` or FizzNodes `"16": "text",` split into key and text; None when the line does not
    start with a keyframe number (or its text spans a line break)."""
    head = KEYFRAME_HEAD.match(line)
    if head is None:
        return None
    text = line[head.end():].strip()
    if text.endswith(","):
        text = text[:-1].rstrip()
    return None if "\n" in text else KeyframeLine(head.group("key"), text)


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
        if "header" not in found and HEADER.match(line):
            found["header"] = Mark("prompt_relay", "a Prompt Relay block header", number, line.strip())
        if "keyframe" not in found and keyframe_line(line):
            found["keyframe"] = Mark("keyframes", "a keyframe line", number, line.strip())
    return sorted(found.values(), key=lambda mark: mark.line)


def foreign_mark(prompt: str) -> tuple[str, str] | None:
    """(syntax, description) of a syntax mark left inside a prompt, or None."""
    for syntax, name, pattern in LINE_MARKS:
        match = pattern.search(prompt)
        if match:
            return syntax, f"{name} ({shown_value(match.group(0))})"
    return None


# A bracketed mark (HoloCine tag, FramePack timestamp, Prompt Relay tag) is `[`, then only spaces,
# digits, `.`, `-`, `s` or tag words, then `]` or `:`. So a mark made by joining parts starts at the
# last `[` of one part and runs to the first `]` or `:` after it; with each digit run written as one
# digit (the marks match `\d+`, so nothing changes) it is at most 20 characters (`[ per shot caption ]`).
_SPECIAL = re.compile(r"[\[\]:]")
_DIGIT_RUN = re.compile(r"\d+")
_LONGEST_MARK_SHAPE = 40


def _mark_shape(text: str) -> str | None:
    """`text` with each digit run cut to one digit, or None when it is too long to lie inside a mark."""
    shape = _DIGIT_RUN.sub("0", text)
    return shape if len(shape) <= _LONGEST_MARK_SHAPE else None


def _open_tail(text: str) -> str | None:
    """Shape of the end of `text` from its last `[` when no `]` or `:` follows (a mark could go on in
    the next part), else None."""
    start = text.rfind("[")
    if start < 0 or _SPECIAL.search(text, start + 1):
        return None
    return _mark_shape(text[start:])


def _head(text: str) -> tuple[str | None, bool]:
    """(shape of `text` up to and including its first `]` or `:`, whether a mark could run on past
    `text`); the shape is None when no mark from the part before can pass (a `[` comes first, or too
    long)."""
    special = _SPECIAL.search(text)
    if special is not None and special.group() == "[":
        return None, False
    return _mark_shape(text if special is None else text[:special.end()]), special is None


def joined_mark_finder(before: str, after: str):
    """prompt -> (syntax, description) of a mark that only `join_clean_parts(before, prompt, after)` holds,
    made of two or three parts (prefix `[2` + prompt `] a cat`), or None. The parts are cleaned text
    (single spaces) and each was checked alone. The fixed parts are read once here, so each call
    costs time in proportion to its prompt only, however long the prefix."""
    before_tail = _open_tail(before) if before else None
    after_head = _head(after)[0] if after else ""

    def find(prompt: str) -> tuple[str, str] | None:
        candidates = []
        if before_tail is not None:
            head, runs_on = _head(prompt)
            rest = after_head if runs_on else ""
            if head is not None and rest is not None:
                candidates.append(join_clean_parts(before_tail, head, rest))
        prompt_tail = _open_tail(prompt) if after and after_head is not None else None
        if prompt_tail is not None:
            candidates.append(join_clean_parts(prompt_tail, after_head))
        for candidate in candidates:
            mark = foreign_mark(candidate)
            if mark is not None:
                return mark
        return None

    return find


def refuse_marks(prompt: str, where: str, line_starts: bool = True) -> None:
    """No syntax mark may reach the text encoder. line_starts: also refuse a prompt that begins like a
    block header (`Scene 2:`) or a keyframe line (`16:`), as in line-based text."""
    mark = foreign_mark(prompt)
    if mark is None and line_starts and HEADER.match(prompt):
        mark = "prompt_relay", f"a block header ({HEADER.match(prompt).group(0).split(':')[0] + ':'!r})"
    if mark is None and line_starts and keyframe_line(prompt):
        mark = "keyframes", f"a keyframe number ({keyframe_line(prompt).key + ':'!r})"
    if mark:
        syntax, name = mark
        raise PromptScheduleError(
            f"{where}: the prompt {shown(prompt)} holds {name}, which would reach the text encoder as words. "
            f"Fix: remove it, or choose the format {syntax} (or auto) if the text is written in it")
