"""Ask a vision-language model for one caption per frame; near-identical frames share a caption.

Consecutive frames whose perceptual hashes barely differ form a group; only the first frame of each
group is shown to the model, and every frame of the group gets that caption word for word. Groups
are sent in requests of at most `max_images` frames; each reply must hold exactly one caption per
frame shown (keys "1".."n"), or the request is retried and finally fails without a partial result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...nodes.story.client import ChatClient, image_part  # noqa: TID252 - package-relative
from ...nodes.story.json_repair import FramePromptsError, frame_prompt_schema, parse_frame_prompts  # noqa: TID252 - package-relative
from ...nodes.story.system_prompts import CAPTION_FRAMES, RETRY_AFTER_INVALID, render  # noqa: TID252 - package-relative
from .dedup import group_alike_frames


class CaptionError(RuntimeError):
    """The model gave no valid captions for a clip."""


@dataclass
class CaptionOptions:
    max_images: int = 24  # frames per request
    alike_bits: int = 4  # pHash distance under which consecutive frames share a caption
    temperature: float = 0.2
    max_tokens: int = 4096
    seed: int | None = 0
    attempts: int = 2
    structured: bool = True
    min_words: int = 15
    max_words: int = 50
    image_side: int = 448  # longest side of frames sent to the model (pixels)


def _shrink(frame, side: int):
    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((side, side))
    return image


def caption_messages(frames: list, options: CaptionOptions) -> list[dict]:
    count = len(frames)
    content = [{"type": "text", "text": f"{count} frames in order; caption each."}]
    for number, frame in enumerate(frames, start=1):
        content.append({"type": "text", "text": f"Frame {number}:"})
        content.append(image_part(_shrink(frame, options.image_side)))
    system = render(CAPTION_FRAMES, count=count, min_words=options.min_words, max_words=options.max_words)
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


def caption_batch(frames: list, client: ChatClient, options: CaptionOptions) -> list[str]:
    """Captions of `frames` (one request, retried with the reason on an invalid reply)."""
    count = len(frames)
    messages = caption_messages(frames, options)
    problem = ""
    for _ in range(options.attempts):
        try:
            reply = client.chat(messages, temperature=options.temperature, max_tokens=options.max_tokens,
                                seed=options.seed, schema=frame_prompt_schema(count), structured=options.structured,
                                validate=lambda text: parse_frame_prompts(text, count))
            return list(parse_frame_prompts(reply.content, count).values())
        except FramePromptsError as error:
            problem = error.problem
            messages = messages + [{"role": "assistant", "content": error.reply},
                                   {"role": "user", "content": render(RETRY_AFTER_INVALID, problem=problem,
                                                                      count=count)}]
    raise CaptionError(f"no valid captions for {count} frames after {options.attempts} attempt(s): {problem}")


def caption_frames(frames: list, client: ChatClient, options: CaptionOptions) -> list[str]:
    """One caption per frame, identical for frames that look alike."""
    groups = group_alike_frames(frames, options.alike_bits)
    leaders = [frames[groups.index(g)] for g in range(max(groups) + 1)]
    captions: list[str] = []
    for start in range(0, len(leaders), options.max_images):
        captions += caption_batch(leaders[start:start + options.max_images], client, options)
    return [captions[g] for g in groups]
