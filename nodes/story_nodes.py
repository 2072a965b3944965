"""Story nodes: LLM prompt expansion into frame-level prompts, and the paper's metrics.

Thin node classes (V3 schema, see nodes/schema.py) over `nodes/story/`; nothing here imports comfy. Inputs are validated before
any network or model call and errors name the input, the value and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from .core import frames as fm
from .core.prompts import PromptScheduleError
from .core.story.render import STYLES
from .prompt_nodes import story_reading_inputs
from .schema import Boolean, Combo, Float, Int, Node, Output, Schema, Socket, String
from .story.client import (
    ALLOW_HTTP_ENV,
    KEY_ENV_ALLOW_LIST,
    KEY_ENV_PREFIX,
    ChatClient,
    ClientOptions,
    base_url_problem,
    key_env_problem,
)
from .story.expand import ExpandOptions, expand_prompt, expansion_key, expansion_text, system_prompt_for
from .validation import FrameLevelInputError, require

CATEGORY = "FrameLevel/Story"
DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"


EXPAND_INPUTS = (
    String("video_prompt", "", multiline=True,
           tooltip="The whole story (video-level prompt) to split into frame-level prompts."),
    String("base_url", DEFAULT_BASE_URL, tooltip=(
        "OpenAI-compatible endpoint ending in /v1 (Ollama :11434, llama.cpp :8080, vLLM :8000, LM Studio :1234, "
        f"or a hosted API over https://). Plain http:// only to this machine (loopback) unless {ALLOW_HTTP_ENV} "
        "names the host when ComfyUI starts.")),
    String("model", "", tooltip="Model name the server knows (e.g. qwen2.5:14b)."),
    Int("length", 81, min=1, max=100001, step=4, tooltip=(
        "Video length in PIXEL frames (4k+1: 81 pixel frames = 21 latent frames). The output has one prompt per "
        "latent frame.")),
    Int("beats", 0, min=0, max=512, tooltip=(
        "Story beats to ask the model for; 0 = one prompt per LATENT frame. Beats are spread evenly over the "
        "latent frames (neighbours share).")),
    Int("seed", 0, min=0, max=2**31 - 1, tooltip="Sampling seed sent to the server (part of the cache key)."),
    Float("temperature", 0.3, min=0.0, max=2.0, step=0.05,
          tooltip="Sampling temperature; low values follow the format best."),
    String("api_key_env", "", optional=True, tooltip=(
        f"NAME of the environment variable holding the API key, e.g. {KEY_ENV_PREFIX}API_KEY; the key itself is "
        f"never stored. Only names starting with {KEY_ENV_PREFIX} or listed in {KEY_ENV_ALLOW_LIST} (set by "
        "whoever starts ComfyUI) are accepted, so a shared workflow cannot send another secret such as HF_TOKEN. "
        "The key goes only to base_url's own host. Empty = no key (local servers).")),
    Int("max_tokens", 4096, min=64, max=65536, optional=True,
        tooltip="Reply length limit in tokens; raise it for many frames."),
    Float("timeout_s", 120.0, min=1.0, max=3600.0, optional=True,
          tooltip="Seconds to wait for one reply before retrying."),
    Int("max_retries", 3, min=0, max=10, optional=True,
        tooltip="Retries on 429/5xx/connection errors, with exponential backoff."),
    Boolean("structured_output", True, optional=True,
            tooltip="Ask for JSON-schema output; servers that refuse it are asked again without it."),
    Boolean("use_cache", True, optional=True, tooltip=(
        "Reuse the stored reply for an identical request (no network call on re-runs). Off = ask the model "
        "every run.")),
    String("system_prompt", "", multiline=True, optional=True, tooltip=(
        "Replace the built-in system prompt; may use {count}, {min_words}, {max_words}. Empty = built-in.")),
    Combo("syntax", STYLES, "json", optional=True, tooltip=(
        "Syntax of the output text: the paper's json (1-based LATENT frame keys), list, lines, pipes (a | b), "
        "keyframes / fizznodes (PIXEL frame keys), prompt_relay spans or blocks, framepack timestamps (seconds at "
        "fps), holocine shots. It is read back by the schedule compiler before it is output.")),
    Float("fps", 16.0, min=0.1, max=240.0, step=0.1, optional=True, tooltip=(
        "Frames per second for framepack timestamps; give the schedule node the same fps.")),
)


class FrameLevelPromptExpand(Node):
    """Story -> frame-level prompts with a chat model, in the paper's JSON format."""

    SCHEMA = Schema(
        node_id="FrameLevelPromptExpand", display_name="Frame-Level Prompt Expand (LLM)", category=CATEGORY,
        description=(
            "Asks an OpenAI-compatible chat model to turn a story into one self-contained prompt per latent frame "
            "or story beat (shot size and camera angle included, recurring subjects described the same way), "
            "validates and repairs the reply, and writes it for FrameLevelPromptSchedule in the syntax you choose "
            "(the paper's JSON by default), checked by reading it back. Edit the text freely afterwards."),
        inputs=EXPAND_INPUTS,
        outputs=(Output("STRING", "frame_prompts", "Story text in the chosen syntax (json: keyed by 1-based LATENT "
                        "frame); connect to FrameLevelPromptSchedule's text."),
                 Output("INT", "latent_frames", "Number of LATENT frames the prompts cover.")))

    @classmethod
    def fingerprint_inputs(cls, **inputs):
        """Same request with the cache on -> same key -> ComfyUI keeps the old output."""
        if not inputs.get("use_cache", True):
            return float("nan")
        try:
            client, options, _ = _expand_setup(**inputs)
            return expansion_key(inputs.get("video_prompt", ""), client, options)
        except (FrameLevelInputError, ValueError):
            return float("nan")  # let the run itself report the problem

    @classmethod
    def execute(cls, video_prompt, base_url, model, length, beats, seed, temperature, **optional):
        client, options, latent_frames = _expand_setup(video_prompt=video_prompt, base_url=base_url, model=model,
                                                       length=length, beats=beats, seed=seed,
                                                       temperature=temperature, **optional)
        prompts = expand_prompt(video_prompt, client, options)
        return (expansion_text(prompts, latent_frames, optional.get("syntax", "json"),
                               float(optional.get("fps", 16.0))), latent_frames)


def _expand_setup(video_prompt="", base_url=DEFAULT_BASE_URL, model="", length=81, beats=0, seed=0,
                  temperature=0.3, api_key_env="", max_tokens=4096, timeout_s=120.0, max_retries=3,
                  structured_output=True, use_cache=True, system_prompt="", syntax="json", fps=16.0, **_ignored):
    """Validate every input (no network) and build the client and options."""
    require(isinstance(video_prompt, str) and bool(video_prompt.strip()), "video_prompt", video_prompt,
            "the story is empty", "write the story to split into frame prompts")
    require(isinstance(base_url, str) and base_url.strip().startswith(("http://", "https://")), "base_url",
            base_url, "is not an http(s) URL", f"use the server's OpenAI endpoint, e.g. {DEFAULT_BASE_URL}")
    url_problem = base_url_problem(base_url)
    require(url_problem is None, "base_url", base_url, *(url_problem or ("", "")))
    require(isinstance(model, str) and bool(model.strip()), "model", model, "no model name given",
            "type the model name the server serves (GET <base_url>/models lists them)")
    require(int(length) >= 1, "length", length, "a video needs at least 1 pixel frame",
            "give the video length in pixel frames, e.g. 81")
    latent_frames = fm.latent_count(int(length))
    require(0 <= int(beats) <= latent_frames, "beats", beats,
            f"more beats than the {latent_frames} latent frames of {length} pixel frames",
            f"use 0 (one prompt per latent frame) or at most {latent_frames}")
    key_name = (api_key_env or "").strip()
    key_problem = key_env_problem(key_name)
    require(key_problem is None, "api_key_env", key_name, *(key_problem or ("", "")))
    require(not key_name or bool(os.environ.get(key_name)), "api_key_env", key_name,
            "names an environment variable that is not set",
            f"export {key_name}=<key> before starting ComfyUI, or leave api_key_env empty")
    require(0.0 <= float(temperature) <= 2.0, "temperature", temperature, "outside 0..2", "use e.g. 0.3")
    require(syntax in STYLES, "syntax", syntax, "is not a syntax the schedule reads", f"use one of {', '.join(STYLES)}")
    require(float(fps) > 0, "fps", fps, "must be > 0", "give the video's frame rate, e.g. 16")
    client = ChatClient(ClientOptions(base_url=base_url, model=model.strip(), api_key_env=key_name,
                                      timeout_s=float(timeout_s), max_retries=int(max_retries)))
    try:
        options = ExpandOptions(count=int(beats) or latent_frames, temperature=float(temperature),
                                max_tokens=int(max_tokens), seed=int(seed), structured=bool(structured_output),
                                system_prompt=system_prompt or "", use_cache=bool(use_cache))
        system_prompt_for(options)
    except ValueError as error:
        raise FrameLevelInputError("system_prompt" if system_prompt else "beats", system_prompt or beats,
                                   str(error), "fix the value named above") from None
    return client, options, latent_frames


class FrameLevelMetrics(Node):
    """Confusion Degree and text-video consistency of decoded frames against their frame prompts."""

    SCHEMA = Schema(
        node_id="FrameLevelMetrics", display_name="Frame-Level Metrics (CD, consistency)", category=CATEGORY,
        description=(
            "Scores a video against its frame prompts with a local CLIP checkpoint (transformers folder; nothing "
            "is downloaded): Confusion Degree (lower is better), frame-level and video-level text-video "
            "consistency, as defined in the Frame-Level Captions paper."),
        inputs=(
            Socket("IMAGE", "images", tooltip="Decoded PIXEL frames of the video, in order."),
            String("frame_prompts", "", multiline=True, tooltip=(
                "The story, written as for FrameLevelPromptSchedule (e.g. the paper's JSON with 1-based LATENT "
                "frame keys) and read the same way over the video's latent frames; each run of equal prompts is "
                "scored on its own PIXEL frames.")),
            String("checkpoint_path", "", tooltip=(
                "Local folder of a transformers CLIP checkpoint (config.json, weights, tokenizer).")),
            String("video_prompt", "", multiline=True, optional=True,
                   tooltip="Video-level prompt for video-level consistency; empty = skip it."),
            Combo("normalize", ("row", "col", "sym", "none"), "row", optional=True, tooltip=(
                "How similarities are divided by their diagonal (row = by prompt i's own score, the paper's "
                "per-prompt reading).")),
            Int("frames_per_prompt", 1, min=1, max=64, optional=True, tooltip=(
                "PIXEL frames embedded (and averaged) per prompt, spread over its span; 1 = the span's centre.")),
            Combo("device", ("cpu", "cuda"), "cpu", optional=True, tooltip="Where the CLIP model runs."),
            *story_reading_inputs(),
        ),
        outputs=(Output("STRING", "report", "Readable report with per-prompt numbers (JSON at the end)."),
                 Output("FLOAT", "confusion_degree", "Confusion Degree; lower is better."),
                 Output("FLOAT", "frame_consistency", "Mean cosine of each prompt with its own frames."),
                 Output("FLOAT", "video_consistency", "Cosine of the video prompt with 8 frames across the video "
                        "(NaN without video_prompt).")))

    @classmethod
    def execute(cls, images, frame_prompts, checkpoint_path, video_prompt="", normalize="row",
                frames_per_prompt=1, device="cpu", format="auto", key_unit="pixel", fps=16.0):
        from .story.embedders import load_embedder
        from .story.evaluate import MetricsOptions, evaluate_video

        frames, spans = _check_metrics_inputs(images, frame_prompts, checkpoint_path,
                                              dict(fmt=format, key_unit=key_unit, fps=fps))
        options = MetricsOptions(normalize=normalize, frames_per_prompt=int(frames_per_prompt))
        report = evaluate_video(frames, spans, load_embedder(checkpoint_path, device), video_prompt, options)
        video = float("nan") if report.video_consistency is None else report.video_consistency
        return (report.format(), report.confusion_degree, report.frame_consistency, video)


def _check_metrics_inputs(images, frame_prompts, checkpoint_path, reading: dict):
    """(pixel frames, story spans) or an error naming the input, before any model is loaded."""
    import numpy as np

    from .story.evaluate import story_spans

    frames = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    require(frames.ndim == 4 and frames.shape[-1] >= 3, "images", tuple(frames.shape),
            "not an IMAGE batch (frames, height, width, 3)", "connect decoded video frames")
    require(len(frames) >= 1, "images", 0, "the video has no frames", "connect decoded video frames")
    try:
        spans = story_spans(frame_prompts or "", len(frames), **reading)
    except PromptScheduleError as error:
        problem, _, fix = str(error).partition(" Fix: ")
        raise FrameLevelInputError("frame_prompts", frame_prompts, problem.rstrip("."), fix.rstrip(".") or
                                   "write the story as for FrameLevelPromptSchedule over this video's length"
                                   ) from None
    folder = Path(str(checkpoint_path or "")).expanduser()
    require(bool(str(checkpoint_path).strip()) and (folder / "config.json").is_file(), "checkpoint_path",
            checkpoint_path, "is not a local CLIP folder with config.json",
            "point it at a folder saved by CLIPModel.save_pretrained (nothing is downloaded)")
    return frames, spans


NODES = (FrameLevelPromptExpand, FrameLevelMetrics)
