"""Prompt compiler: story text -> one prompt per latent frame. The pack's single reader of story text
(schedule node, metrics, trainer captions, annotator output, the timeline route); the parts live in
`nodes/core/story/`, one module per syntax.

Formats (`fmt`; "auto" detects them and refuses text that mixes them):

* ``json``: the paper's object ``{"1": "...", "9": "..."}``, keys are 1-based LATENT frames, each
  prompt holds until the next key; ``list``: a JSON list ``["...", "..."]``, spread evenly.
* ``keyframes``: lines ``0: text`` or FizzNodes ``"16": "text",``, 0-based keys in latent frames,
  pixel frames or seconds (``key_unit``); each prompt holds until the next key.
* ``lines``: plain lines, spread evenly; ``pipes``: ``a | b | c`` (WanVideoWrapper), spread evenly.
* ``prompt_relay``: ``a [0-50] | b [50-200]`` spans, ``a [2]`` weights, ``Scene 1:`` block headers.
* ``framepack``: ``base [2s: text] [3s-5s: text]`` timestamps.
* ``holocine``: ``[global caption] ... [per shot caption] ... [shot cut] ...``.

Every problem raises `PromptScheduleError` naming the place, the value and the fix; nothing is guessed.
Bounds (story/limits.py), far beyond any real video and checked before any work grows with them:
length 1..100,000 pixel frames (25,000 latent frames), 0 < fps <= 1000, at most 15 digits in a key,
time, span or weight, JSON nested at most 20 deep. Syntax marks are refused in each part and in the
joined prompt (a prefix `[2` and a prompt `] a cat` would make `[2 ] a cat`). Every reader runs in
time linear in the text: no pattern backtracks over runs of spaces.
"""

from __future__ import annotations

from .story.compile import FORMATS, LENGTH_UNITS, StoryOptions, compile_story
from .story.detect import detect_format
from .story.errors import PromptScheduleError
from .story.reading import KEY_UNITS
from .story.schedule import PromptSchedule, fit_index, paper_json

__all__ = ["FORMATS", "KEY_UNITS", "LENGTH_UNITS", "PromptSchedule", "PromptScheduleError", "StoryOptions",
           "compile_prompt_schedule", "compile_story", "detect_format", "fit_index", "paper_json"]


def compile_prompt_schedule(text: str, length: int = 81, unit: str = "pixel", **settings) -> PromptSchedule:
    """compile_story with keyword settings: length/unit (pixel or latent frames), fps, fmt, key_unit,
    prefix, suffix, global_prompt (see StoryOptions)."""
    return compile_story(text, StoryOptions(length=length, length_unit=unit, **settings))
