"""Expand one video-level prompt into N frame-level prompts with a chat model.

The reply must be exactly N prompts keyed "1".."N"; a reply that cannot be repaired is shown back
to the model with the reason (up to `attempts` times) and otherwise raises `ExpandError`. The
result is always complete: never a partial list.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.story.render import render_story
from ..core.story.spread import spread_evenly
from .client import ChatClient
from .json_repair import FramePromptsError, frame_prompt_schema, parse_frame_prompts
from .system_prompts import EXPAND_STORY, RETRY_AFTER_INVALID, render

MAX_FRAME_PROMPTS = 512


class ExpandError(RuntimeError):
    """The model did not produce a valid set of frame prompts."""


@dataclass
class ExpandOptions:
    count: int  # N: frame prompts to ask for (latent frames, or story beats)
    temperature: float = 0.3
    max_tokens: int = 4096
    seed: int | None = 0
    attempts: int = 2  # replies tried before giving up (each retry shows the model its mistake)
    structured: bool = True  # ask for JSON-schema output where the server supports it
    min_words: int = 20
    max_words: int = 60
    system_prompt: str = ""  # overrides EXPAND_STORY; may use {count}, {min_words}, {max_words}
    use_cache: bool = True

    def __post_init__(self):
        if not 1 <= self.count <= MAX_FRAME_PROMPTS:
            raise ValueError(f"count must be 1..{MAX_FRAME_PROMPTS} frame prompts, got {self.count}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")


def system_prompt_for(options: ExpandOptions) -> str:
    template = options.system_prompt.strip() or EXPAND_STORY
    try:
        return render(template, count=options.count, min_words=options.min_words, max_words=options.max_words)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"system_prompt has an unknown or broken placeholder ({error}); the known ones "
                         "are {count}, {min_words} and {max_words}; write literal braces as {{ }}") from None


def build_expand_messages(video_prompt: str, options: ExpandOptions) -> list[dict]:
    """The first request: our system prompt plus the user's story."""
    return [
        {"role": "system", "content": system_prompt_for(options)},
        {"role": "user", "content": f"Story:\n{video_prompt.strip()}\n\nWrite the {options.count} captions."},
    ]


def _chat_settings(options: ExpandOptions) -> dict:
    return dict(temperature=options.temperature, max_tokens=options.max_tokens, seed=options.seed,
                schema=frame_prompt_schema(options.count), structured=options.structured,
                use_cache=options.use_cache)


def expansion_key(video_prompt: str, client: ChatClient, options: ExpandOptions) -> str:
    """Cache key of the first request (no network): equal keys mean an equal cached answer."""
    settings = _chat_settings(options)
    settings.pop("use_cache")
    return client.chat_key(build_expand_messages(video_prompt, options), **settings)


def expand_prompt(video_prompt: str, client: ChatClient, options: ExpandOptions) -> dict[str, str]:
    """Ask the model for `options.count` frame prompts; return {"1": ..., "N": ...} or raise."""
    if not video_prompt or not video_prompt.strip():
        raise ValueError("video_prompt is empty: write the story to expand")
    messages = build_expand_messages(video_prompt, options)
    problems = []
    for _ in range(options.attempts):
        try:
            reply = client.chat(messages, validate=lambda text: parse_frame_prompts(text, options.count),
                                **_chat_settings(options))
            return parse_frame_prompts(reply.content, options.count)
        except FramePromptsError as error:
            problems.append(error.problem)
            messages = messages + [
                {"role": "assistant", "content": error.reply},
                {"role": "user", "content": render(RETRY_AFTER_INVALID, problem=error.problem,
                                                   count=options.count)},
            ]
    raise ExpandError(f"the model gave no valid set of {options.count} frame prompts in "
                      f"{options.attempts} attempt(s); last problem: {problems[-1]}. Try a stronger model, "
                      "a lower temperature, more max_tokens or fewer frame prompts")


def spread_beats(beats: dict[str, str], frames: int) -> dict[str, str]:
    """Give `frames` latent frames (keys "1".."frames") the beat prompts in order, spread by the pack's one
    even-spread rule (nodes/core/story/spread.py): each beat covers a contiguous run of frames."""
    ordered = [beats[str(n)] for n in range(1, len(beats) + 1)]
    return {str(f + 1): prompt for f, prompt in enumerate(spread_evenly(ordered, frames))}


def expansion_text(prompts: dict[str, str], latent_frames: int, syntax: str = "json", fps: float = 16.0) -> str:
    """The expanded prompts (N beats or one per latent frame) as story text in `syntax`, spread over
    `latent_frames` latent frames; `render_story` reads it back and refuses text that would not give
    the same prompts."""
    per_latent = list(prompts.values()) if len(prompts) == latent_frames else \
        list(spread_beats(prompts, latent_frames).values())
    return render_story(per_latent, syntax, fps=fps)
