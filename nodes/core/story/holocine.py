"""HoloCine's multi-shot text: `[global caption] scene ... [per shot caption] shot 1 [shot cut] shot 2 ...`.

The global caption is joined before every shot; shots share the video equally (HoloCine's own script
takes cut frames as a separate argument; write FramePack timestamps or keyframes for uneven shots).
A `|` ending a shot, as some guides write them, is dropped.
"""

from __future__ import annotations

from collections import Counter

from .errors import PromptScheduleError
from .layout import Layout, Piece
from .markers import HOLOCINE_TAG
from .reading import Reading
from .text import clean_prompt, join_prompt, line_finder, shown, without_comments

ORDER = {"global caption": 0, "per shot caption": 1, "shot cut": 2}


def _tag_place(tag, line_of) -> str:
    return f"line {line_of(tag.start())} ({' '.join(tag.group(0).split())})"


def _check_tags(tags, line_of) -> None:
    names = [t.group("tag").lower() for t in tags]
    counts = Counter(names)
    for i, (tag, name) in enumerate(zip(tags, names)):
        where = _tag_place(tag, line_of)
        if name != "shot cut" and counts[name] > 1:
            raise PromptScheduleError(f"{where}: [{name}] appears {counts[name]} times. Fix: write it once")
        if i and ORDER[name] < ORDER[names[i - 1]]:
            raise PromptScheduleError(f"{where}: [{name}] comes after [{names[i - 1]}]. Fix: write [global caption] "
                                      "first, then [per shot caption], then the [shot cut]s")


def _shot_text(body: str) -> str:
    body = body.strip()
    return body[:-1] if body.endswith("|") else body


def read_holocine(text: str, reading: Reading) -> Layout:
    text = without_comments(text)
    tags = list(HOLOCINE_TAG.finditer(text))
    if not tags:
        raise PromptScheduleError("no HoloCine tag ([global caption], [per shot caption], [shot cut]). Fix: add "
                                  "them, or choose another format")
    if text[:tags[0].start()].strip():
        raise PromptScheduleError(f"line 1: {shown(text[:tags[0].start()])} stands before the first HoloCine tag. "
                                  "Fix: start with [global caption] or [per shot caption]")
    line_of = line_finder(text)
    _check_tags(tags, line_of)
    shared, pieces = "", []
    for tag, nxt in zip(tags, tags[1:] + [None]):
        body = text[tag.end(): nxt.start() if nxt else len(text)]
        where = _tag_place(tag, line_of)
        if tag.group("tag").lower() == "global caption":
            shared = clean_prompt(body, where)
        else:
            pieces.append(Piece(clean_prompt(_shot_text(body), f"the shot of {where}"), f"the shot of {where}"))
    if not pieces:
        raise PromptScheduleError("the text has a [global caption] but no shot. Fix: add [per shot caption] "
                                  "with the first shot, and [shot cut] before each further shot")
    return Layout(tuple(pieces), timed=False, shared=join_prompt(shared))
