"""Line syntaxes: plain lines (spread evenly) and keyframe lines `0: text` / FizzNodes `"16": "text",`
(0-based keys in latent frames, pixel frames or seconds; each prompt holds until the next key)."""

from __future__ import annotations

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .markers import keyframe_line
from .reading import Reading
from .text import clean_prompt, content_lines, shown


def read_plain_lines(text: str, reading: Reading) -> Layout:
    """One prompt per line (a header or keyframe number left at a line's start is refused later)."""
    pieces = [Piece(clean_prompt(line, f"line {number}"), f"line {number}") for number, line in content_lines(text)]
    return Layout(tuple(pieces), timed=False)


def _unquote(prompt: str) -> str:
    return prompt[1:-1] if len(prompt) >= 2 and prompt[0] == prompt[-1] == '"' else prompt


def read_keyframe_lines(text: str, reading: Reading) -> Layout:
    pieces = []
    for number, line in content_lines(text):
        match = keyframe_line(line)
        where = f"line {number}"
        if match is None:
            raise PromptScheduleError(f"{where} ({shown(line)}) has no keyframe number while other lines "
                                      "do. Fix: start it with `<frame>: ` or use plain lines only")
        latent = reading.latent_of_key(match.key, where)
        pieces.append(Piece(clean_prompt(_unquote(match.text), where), where, start=latent))
    return Layout(tuple(pieces), timed=True)
