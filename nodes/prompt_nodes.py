"""Nodes for frame-level prompts: schedule text -> per-latent prompts -> CONDITIONING; MODEL patch."""

from __future__ import annotations

from .core.prompts import FORMATS, KEY_UNITS, LENGTH_UNITS, compile_prompt_schedule
from .schema import Combo, Float, Input, Int, Node, Output, Schema, Socket, String
from .validation import require

FRAME_PROMPTS = "FL_FRAME_PROMPTS"
CATEGORY = "FrameLevel/Prompts"

EXAMPLE_STORY = """{
  "1": "A red fox walks through a snowy pine forest at dawn, wide shot, eye level.",
  "8": "The same red fox stops at a frozen stream and sniffs the ice, medium shot.",
  "15": "The same red fox leaps across the stream, low angle, snow spraying."
}"""


def story_reading_inputs() -> tuple[Input, ...]:
    """Inputs that decide how story text is read; the same in every node that reads a story."""
    return (
        Combo("format", FORMATS, "auto", optional=True, tooltip=(
            "Syntax of the text. auto detects it (the preview says which) and refuses text that mixes "
            "syntaxes: json {\"1\": ...} (1-based LATENT frame keys), list [...], keyframes `0: text` / "
            "\"16\": \"text\", (FizzNodes), lines, pipes a | b (WanVideoWrapper), prompt_relay "
            "(text [0-50] | ..., text [2], `Scene 1:` blocks), framepack (base [2s: text] [3s-5s: text]), "
            "holocine ([global caption] ... [per shot caption] ... [shot cut] ...).")),
        Combo("key_unit", KEY_UNITS, "pixel", optional=True, tooltip=(
            "Unit of keyframe-line keys: latent frames, pixel frames or seconds (0-based). "
            "Not used by the JSON object format, whose keys are 1-based latent frames.")),
        Float("fps", 16.0, min=0.1, max=240.0, step=0.1, optional=True, tooltip=(
            "Frames per second of the video (Wan 2.1: 16); used for keys in seconds and the preview.")),
    )


def _adapter():
    from . import comfy_adapter  # imported when a node runs: only this module imports comfy
    return comfy_adapter


class FrameLevelPromptSchedule(Node):
    SCHEMA = Schema(
        node_id="FrameLevelPromptSchedule", display_name="Frame-Level Prompt Schedule", category=CATEGORY,
        description=(
            "Turns story text into one prompt per latent frame (Wan: 81 pixel frames = 21 latent frames). "
            "Reads the paper's JSON {\"1\": ...} (1-based latent frames, a prompt holds until the next key), "
            "JSON lists and plain lines, keyframe lines (FizzNodes), `a | b` (WanVideoWrapper), Prompt Relay "
            "spans, weights and `Scene 1:` blocks, FramePack timestamps [2s: ...] and HoloCine shots; the "
            "syntax is detected (or chosen), no syntax mark reaches the text encoder, and the timeline under "
            "the text shows every prompt's span while you type."),
        inputs=(
            String("text", EXAMPLE_STORY, multiline=True, tooltip=(
                "Story text in any syntax of the format input. JSON object keys are 1-based LATENT frames; "
                "keyframe-line keys are 0-based in the unit chosen by key_unit; timestamps are seconds; lists, "
                "lines, | prompts and HoloCine shots are spread evenly.")),
            Int("length", 81, min=1, max=100000, tooltip=(
                "Length of the video, in the unit chosen by length_unit (81 pixel frames = 21 latent frames; "
                "Wan clips have 4k+1 pixel frames). At most 100,000 pixel frames (25,000 latent frames).")),
            Combo("length_unit", LENGTH_UNITS, "pixel",
                  tooltip="Whether length counts pixel frames or latent frames."),
            *story_reading_inputs(),
            String("prefix", "", optional=True,
                   tooltip="Text put before every frame prompt (style, subject description)."),
            String("suffix", "", optional=True, tooltip="Text put after every frame prompt."),
            String("global_prompt", "", multiline=True, optional=True, tooltip=(
                "Scene-wide text (characters, place, style) joined before every frame prompt, ahead of a "
                "HoloCine [global caption] and the prefix.")),
        ),
        outputs=(Output(FRAME_PROMPTS, "frame_prompts", "One prompt per latent frame; connect to "
                        "FrameLevelTextEncode."),
                 Output("STRING", "preview", "Readable table: latent range, pixel range, time and prompt of "
                        "each run.")))

    @classmethod
    def check_widgets(cls, **widgets):
        """The whole story is read at validation when every text input is typed (not linked): a story
        error stops the queue before any model loads."""
        if {"text", "length", "length_unit"} <= set(widgets):
            cls.execute(**widgets)

    @classmethod
    def execute(cls, text, length, length_unit, format="auto", key_unit="pixel", fps=16.0,
                prefix="", suffix="", global_prompt=""):
        # PromptScheduleError names the line, the value and the fix; it fails before any model work.
        schedule = compile_prompt_schedule(text, length=length, unit=length_unit, fps=fps, fmt=format,
                                           key_unit=key_unit, prefix=prefix, suffix=suffix,
                                           global_prompt=global_prompt)
        return (schedule, schedule.preview())


class FrameLevelTextEncode(Node):
    SCHEMA = Schema(
        node_id="FrameLevelTextEncode", display_name="Frame-Level Text Encode", category=CATEGORY,
        description=(
            "Encodes every distinct prompt of a frame-prompt schedule once with the text encoder and returns a "
            "CONDITIONING that carries one prompt per latent frame. Sample it with a MODEL patched by "
            "FrameLevelCrossAttention: an unpatched model sees only the first prompt."),
        inputs=(Socket("CLIP", "clip", tooltip="Wan's text encoder (umt5-xxl) from CLIPLoader with type wan."),
                Socket(FRAME_PROMPTS, "frame_prompts",
                       tooltip="Per-latent-frame prompts from FrameLevelPromptSchedule.")),
        outputs=(Output("CONDITIONING", "CONDITIONING", "Conditioning with per-latent-frame text; use as "
                        "positive (or negative) of any sampler running a FrameLevelCrossAttention model."),))

    @classmethod
    def execute(cls, clip, frame_prompts):
        require(clip is not None, "clip", None, "no text encoder is connected",
                "connect CLIPLoader (type wan) to clip; a checkpoint without a text encoder has none")
        require(hasattr(frame_prompts, "unique"), "frame_prompts", type(frame_prompts).__name__,
                "this is not a frame-prompt schedule", "connect FrameLevelPromptSchedule's frame_prompts")
        return (_adapter().encode_frame_text(clip, frame_prompts),)


class FrameLevelCrossAttention(Node):
    SCHEMA = Schema(
        node_id="FrameLevelCrossAttention", display_name="Frame-Level Cross-Attention (Wan)",
        category="FrameLevel/Model",
        description=(
            "Patches a Wan MODEL (a clone; the input MODEL is untouched) so that the video tokens of each latent "
            "frame attend only to that frame's prompt (the paper's frame-level cross-attention), with Wan's "
            "exact 512-token padding semantics. Works with LoRAs loaded before or after, CFG with a global or "
            "frame-level negative, and I2V (image tokens stay global). Conditioning without frame prompts "
            "behaves exactly as before."),
        inputs=(Socket("MODEL", "model", tooltip="A Wan 2.1/2.2 video model from UNETLoader (Load Diffusion Model)."),),
        outputs=(Output("MODEL", "MODEL", "The patched Wan model; connect to any sampler."),))

    @classmethod
    def execute(cls, model):
        return (_adapter().apply_frame_level_cross_attention(model),)


NODES = (FrameLevelPromptSchedule, FrameLevelTextEncode, FrameLevelCrossAttention)
