"""`|`-separated prompts (WanVideoWrapper: equal split) and Prompt Relay's two forms.

Prompt Relay inline: `text [a-b] | text [c-d]` (only the span b - a matters) or `text [w]` (a weight);
untagged segments share equally. Without `|`, each line is a segment. Prompt Relay blocks: a header
line `Word N:` (equal shares) or `Word a-b:` (share = b - a) above each prompt; text may follow the
colon. Headers and tags never reach the text encoder.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .limits import checked_number
from .markers import HEADER, NUMBER
from .reading import Reading
from .text import clean_prompt, content_lines, line_finder, shown, without_comments

# The inside of a trailing `[a-b]` / `[w]` tag. The tag is cut by hand (trailing_tag): the former
# pattern `^(?P<text>.*?)\s*\[...` retried every start of a run of spaces before an unclosed `[`
# (quadratic time, 18 s at 64 KB).
TAG_INSIDE = re.compile(rf"\s*(?P<a>{NUMBER})\s*(?:-\s*(?P<b>{NUMBER})\s*)?")


def trailing_tag(segment: str) -> tuple[str, str, str | None] | None:
    """(text before the tag, a, b or None) when the segment ends with a span `[a-b]` or weight `[w]`."""
    segment = segment.strip()
    opening = segment.rfind("[") if segment.endswith("]") else -1
    inside = TAG_INSIDE.fullmatch(segment, opening + 1, len(segment) - 1) if opening >= 0 else None
    return (segment[:opening], inside.group("a"), inside.group("b")) if inside else None


def pipe_segments(text: str) -> list[tuple[str, str]]:
    """(segment text, place) of each `|`-separated segment; comment lines are dropped."""
    text = without_comments(text)
    line_of = line_finder(text)
    out, offset = [], 0
    for number, segment in enumerate(text.split("|"), start=1):
        out.append((segment, f"segment {number} (line {line_of(offset + len(segment) - len(segment.lstrip()))})"))
        offset += len(segment) + 1
    return out


def read_pipes(text: str, reading: Reading) -> Layout:
    pieces = []
    for segment, where in pipe_segments(text):
        if not segment.strip():
            raise PromptScheduleError(f"{where} is empty. Fix: remove the extra | or write a prompt there")
        pieces.append(Piece(clean_prompt(segment, where), where))
    return Layout(tuple(pieces), timed=False)


def _span_weight(a: str, b: str | None, where: str) -> Fraction:
    for number in (a, b or ""):
        checked_number(number, where, "weight" if b is None else "span bound")
    weight = Fraction(a) if b is None else Fraction(b) - Fraction(a)
    if weight <= 0:
        tag = f"[{a}]" if b is None else f"[{a}-{b}]"
        raise PromptScheduleError(f"{where}: {tag} gives a share of {weight}; it must be > 0. Fix: write "
                                  "[start-end] with end > start, or a positive weight [w]")
    return weight


def _same_tagging(tagged: list[bool], wheres: list[str], what: str) -> None:
    if any(tagged) and not all(tagged):
        with_tag, without = wheres[tagged.index(True)], wheres[tagged.index(False)]
        raise PromptScheduleError(f"{without} has no {what} while {with_tag} has one, so their shares cannot be "
                                  f"compared. Fix: give every segment a {what} or none")


def _inline_segments(text: str) -> list[tuple[str, str]]:
    if "|" in text:
        return pipe_segments(text)
    return [(line, f"line {number}") for number, line in content_lines(text)]


def _read_inline(text: str) -> Layout:
    parts = []
    for segment, where in _inline_segments(text):
        if not segment.strip():
            raise PromptScheduleError(f"{where} is empty. Fix: remove the extra | or write a prompt there")
        parts.append((trailing_tag(segment), segment, where))
    _same_tagging([m is not None for m, _, _ in parts], [w for _, _, w in parts], "[a-b] span or [w] weight")
    pieces = []
    for tag, segment, where in parts:
        weight = _span_weight(tag[1], tag[2], where) if tag else 1
        pieces.append(Piece(clean_prompt(tag[0] if tag else segment, where), where, weight=weight))
    return Layout(tuple(pieces), timed=False)


def _read_blocks(text: str) -> Layout:
    blocks: list[tuple[re.Match, int, list[str]]] = []
    for number, line in content_lines(text):
        header = HEADER.match(line)
        if header:
            blocks.append((header, number, [header.group("rest")]))
        elif not blocks:
            raise PromptScheduleError(f"line {number}: {shown(line)} comes before the first block header. Fix: put "
                                      "it under a header like `Scene 1:`, or into the global prompt")
        else:
            blocks[-1][2].append(line)
    _same_tagging([h.group("b") is not None for h, _, _ in blocks], [f"line {n}" for _, n, _ in blocks],
                  "range in its header (Word a-b:)")
    pieces = []
    for header, number, lines in blocks:
        where = f"the block of line {number}"
        weight = 1 if header.group("b") is None else _span_weight(header.group("a"), header.group("b"), where)
        pieces.append(Piece(clean_prompt(" ".join(lines), where), where, weight=weight))
    return Layout(tuple(pieces), timed=False)


def read_prompt_relay(text: str, reading: Reading) -> Layout:
    if any(HEADER.match(line) for _, line in content_lines(text)):
        return _read_blocks(text)
    return _read_inline(text)
