"""FramePack timestamps: `[2s: text]` starts a prompt at 2 s (held until the next one starts),
`[3s-5s: text]` holds it from 3 s to 5 s, `[4s] text` is the open form (text up to the next stamp).
Text before the first stamp is the prompt from 0 s, and it also fills any time a `[a-b]` section
leaves uncovered. A time maps to the latent frame that holds the pixel frame shown then
(pixel frame round(t * fps)); an end at or after the last pixel frame's time runs to the end."""

from __future__ import annotations

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .markers import TIMESTAMP
from .reading import Reading
from .text import clean_prompt, line_at, shown, without_comments


def _closing_bracket(text: str, start: int) -> int:
    """Index of the `]` closing the bracket opened before `start` (nested brackets allowed)."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise PromptScheduleError(f"line {line_at(text, start)}: the section {shown(text[start - 8:start + 40])} has no "
                              "closing ]. Fix: close it with ]")


def _sections(text: str):
    """(match, section text, index after the section) of each stamp, in order."""
    position, out = 0, []
    while (match := TIMESTAMP.search(text, position)) is not None:
        if match.group("close") == ":":
            stop = _closing_bracket(text, match.end())
            out.append((match, text[match.end():stop], stop + 1))
            position = stop + 1
        else:
            following = TIMESTAMP.search(text, match.end())
            stop = following.start() if following else len(text)
            out.append((match, text[match.end():stop], stop))
            position = stop
    return out


def _piece(match, body: str, text: str, reading: Reading) -> Piece:
    where = f"line {line_at(text, match.start())} ({match.group(0).rstrip(':]')}])"
    start = reading.latent_of_time(float(match.group("start")), where)
    end = None
    if match.group("end") is not None:
        if float(match.group("end")) <= float(match.group("start")):
            raise PromptScheduleError(f"{where}: the section ends at {match.group('end')} s, not after its start "
                                      f"{match.group('start')} s. Fix: write [start-end] with end > start")
        end = reading.stop_of_time(float(match.group("end")))
        if end <= start:
            raise PromptScheduleError(f"{where}: the section is shorter than one latent frame (4 pixel frames). "
                                      "Fix: make it longer")
    return Piece(clean_prompt(body, where), where, start=start, end=end)


def read_framepack(text: str, reading: Reading) -> Layout:
    text = without_comments(text)
    sections = _sections(text)
    if not sections:
        raise PromptScheduleError("no FramePack timestamp like [0s: text] or [2s-4s: text]. Fix: add one, or "
                                  "choose another format")
    pieces, previous_stop = [], sections[0][0].start()
    for match, body, stop in sections:
        between = text[previous_stop:match.start()]
        if pieces and between.strip():
            raise PromptScheduleError(f"line {line_at(text, previous_stop)}: {shown(between)} stands outside any "
                                      "[Ns: ...] section. Fix: move it into a section, or to the start (the prompt "
                                      "from 0 s)")
        pieces.append(_piece(match, body, text, reading))
        previous_stop = stop
    if text[previous_stop:].strip():
        raise PromptScheduleError(f"line {line_at(text, previous_stop)}: {shown(text[previous_stop:])} stands after "
                                  "the last section. Fix: move it into a section, or to the start (the prompt from "
                                  "0 s)")
    leading = text[:sections[0][0].start()]
    base = Piece(clean_prompt(leading, "the leading text"), "the leading text", start=0) if leading.strip() else None
    return Layout(tuple(pieces), timed=True, base=base)
