"""Small text helpers shared by the syntax readers: content lines, prompt cleaning, places."""

from __future__ import annotations

import re
from bisect import bisect_right

from .errors import PromptScheduleError

_SPACES = re.compile(r"\s+")
_LINE_BREAK = re.compile("\n")


def shown(value: str, width: int = 60) -> str:
    """A value quoted for an error message, shortened to `width` characters."""
    value = " ".join(str(value).split())
    return repr(value if len(value) <= width else value[: width - 3] + "...")


def shown_value(value, width: int = 60) -> str:
    """repr of any value for an error message, shortened to `width` characters (a huge list or number
    is never printed whole)."""
    text = repr(value) if not isinstance(value, str) else repr(value[: width + 1])
    return text if len(text) <= width else text[: width - 3] + "..."


def content_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of non-blank lines that are not `#` comments."""
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.strip().startswith("#")]


def without_comments(text: str) -> str:
    """The text with `#` comment lines blanked (line numbers and offsets of other lines kept)."""
    return "\n".join("" if line.strip().startswith("#") else line for line in text.split("\n"))


def line_at(text: str, offset: int) -> int:
    """1-based line number of character `offset` (one lookup; use line_finder for many)."""
    return text.count("\n", 0, offset) + 1


def line_finder(text: str):
    """offset -> 1-based line number of `text`, for many lookups: the line breaks are found once, so
    a text with thousands of sections is not rescanned from the start for each one."""
    breaks = [match.start() for match in _LINE_BREAK.finditer(text)]
    return lambda offset: bisect_right(breaks, offset - 1) + 1


def clean_prompt(prompt, where: str) -> str:
    """The prompt with runs of white space made one space; refuses non-text and empty prompts."""
    if not isinstance(prompt, str):
        raise PromptScheduleError(f"{where}: prompt {shown_value(prompt)} is not text. Fix: write the prompt as a "
                                  "string")
    cleaned = _SPACES.sub(" ", prompt).strip()
    if not cleaned:
        raise PromptScheduleError(f"{where}: the prompt is empty. Fix: write a prompt or remove the entry")
    return cleaned


# A part ending in one of these is followed by a space only; any other part by ", ".
PROMPT_PUNCTUATION = tuple(",.;:!?…")


def separator_after(text: str) -> str:
    """What goes between `text` and the next prompt part: " " after punctuation, else ", "."""
    return " " if text.endswith(PROMPT_PUNCTUATION) else ", "


def join_clean_parts(*parts: str) -> str:
    """Already-cleaned parts joined the way prompts are written: "dawn over a lake" + "cinematic" ->
    "dawn over a lake, cinematic", "a lake." + "cinematic" -> "a lake. cinematic"; empty parts skipped."""
    joined = ""
    for part in parts:
        if part:
            joined = f"{joined}{separator_after(joined)}{part}" if joined else part
    return joined


def join_prompt(*parts: str) -> str:
    """Non-empty parts (global prompt, prefix, prompt, suffix), each with its runs of white space made
    one space, joined by join_clean_parts."""
    return join_clean_parts(*(_SPACES.sub(" ", p or "").strip() for p in parts))
