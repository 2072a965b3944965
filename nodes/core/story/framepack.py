"""FramePack timestamps: `[2s: text]` starts a prompt at 2 s (held until the next one starts),
`[3s-5s: text]` holds it from 3 s to 5 s, `[4s] text` is the open form (text up to the next stamp).
Text before the first stamp is the prompt from 0 s, and it also fills any time a `[a-b]` section
leaves uncovered. A time maps to the latent frame that holds the pixel frame shown then
(pixel frame round(t * fps)); an end at or after the last pixel frame's time runs to the end."""

from __future__ import annotations

import re

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .limits import checked_number
from .markers import TIMESTAMP
from .reading import Reading
from .text import clean_prompt, line_finder, shown, without_comments

_BRACKETS = re.compile(r"[\[\]]")


def _closing_bracket(text: str, start: int, line_of) -> int:
    """Index of the `]` closing the bracket opened before `start` (nested brackets allowed)."""
    depth = 1
    for bracket in _BRACKETS.finditer(text, start):
        depth += 1 if bracket.group() == "[" else -1
        if depth == 0:
            return bracket.start()
    raise PromptScheduleError(f"line {line_of(start)}: the section {shown(text[max(start - 8, 0):start + 40])} has no "
                              "closing ]. Fix: close it with ]")


def _sections(text: str, line_of):
    """(match, section text, index after the section) of each stamp, in order."""
    position, out = 0, []
    while (match := TIMESTAMP.search(text, position)) is not None:
        if match.group("close") == ":":
            stop = _closing_bracket(text, match.end(), line_of)
            out.append((match, text[match.end():stop], stop + 1))
            position = stop + 1
        else:
            following = TIMESTAMP.search(text, match.end())
            stop = following.start() if following else len(text)
            out.append((match, text[match.end():stop], stop))
            position = stop
    return out


def _stamp_text(match) -> str:
    """The stamp as written, for messages: `[2s]`, `[3s-5s]` (spaces collapsed)."""
    stamp = " ".join(match.group(0).rstrip(":]").split())
    return (stamp if len(stamp) <= 30 else stamp[:24] + "...") + "]"


def _seconds(match, name: str, where: str) -> float:
    return float(checked_number(match.group(name), where, "time"))


def _piece(match, body: str, line_of, reading: Reading) -> Piece:
    where = f"line {line_of(match.start())} ({_stamp_text(match)})"
    start = reading.latent_of_time(_seconds(match, "start", where), where)
    end = None
    if match.group("end") is not None:
        if _seconds(match, "end", where) <= _seconds(match, "start", where):
            raise PromptScheduleError(f"{where}: the section ends at {match.group('end')} s, not after its start "
                                      f"{match.group('start')} s. Fix: write [start-end] with end > start")
        end = reading.stop_of_time(_seconds(match, "end", where))
        if end <= start:
            raise PromptScheduleError(f"{where}: the section is shorter than one latent frame (4 pixel frames). "
                                      "Fix: make it longer")
    return Piece(clean_prompt(body, where), where, start=start, end=end)


def read_framepack(text: str, reading: Reading) -> Layout:
    text = without_comments(text)
    line_of = line_finder(text)
    sections = _sections(text, line_of)
    if not sections:
        raise PromptScheduleError("no FramePack timestamp like [0s: text] or [2s-4s: text]. Fix: add one, or "
                                  "choose another format")
    pieces, previous_stop = [], sections[0][0].start()
    for match, body, stop in sections:
        between = text[previous_stop:match.start()]
        if pieces and between.strip():
            raise PromptScheduleError(f"line {line_of(previous_stop)}: {shown(between)} stands outside any "
                                      "[Ns: ...] section. Fix: move it into a section, or to the start (the prompt "
                                      "from 0 s)")
        pieces.append(_piece(match, body, line_of, reading))
        previous_stop = stop
    if text[previous_stop:].strip():
        raise PromptScheduleError(f"line {line_of(previous_stop)}: {shown(text[previous_stop:])} stands after "
                                  "the last section. Fix: move it into a section, or to the start (the prompt from "
                                  "0 s)")
    leading = text[:sections[0][0].start()]
    base = Piece(clean_prompt(leading, "the leading text"), "the leading text", start=0) if leading.strip() else None
    return Layout(tuple(pieces), timed=True, base=base)
