"""Wan 2.2 A14B's two experts: one GUIDER for every sampler, and the official route's switch step."""

from __future__ import annotations

from .core.experts import I2V_BOUNDARY, RULES, T2V_BOUNDARY, ExpertSettings, switch_step
from .schema import Combo, Float, Node, Output, Schema, Socket
from .validation import require

CATEGORY = "FrameLevel/Wan 2.2"


def _glue():
    from . import comfy_experts  # imports comfy; loaded when a node runs
    return comfy_experts


BOUNDARY = Float("boundary", T2V_BOUNDARY, min=0.01, max=0.99, step=0.005, tooltip=(
    f"Noise level (timestep / 1000) where the low-noise expert takes over: {T2V_BOUNDARY} for Wan 2.2 T2V, "
    f"{I2V_BOUNDARY} for I2V. A latent frame at or above it is predicted by the high-noise expert."))


def check_boundary(boundary: float) -> None:
    require(0.0 < boundary < 1.0, "boundary", boundary, "must lie strictly between 0 and 1 (timestep / 1000)",
            f"use {T2V_BOUNDARY} for T2V or {I2V_BOUNDARY} for I2V")


class FrameLevelWanExperts(Node):
    SCHEMA = Schema(
        node_id="FrameLevelWanExperts", display_name="Frame-Level Wan 2.2 Experts (guider)", category=CATEGORY,
        description=(
            "Wan 2.2 A14B's two experts as one GUIDER for SamplerCustomAdvanced: every latent frame is predicted by "
            "the expert of its own noise level (high-noise at or above the boundary, low-noise below), each with "
            "its own cfg. Works with every sampler of this pack (Diffusion Forcing, PMWD, sliding window, FIFO: a "
            "call whose frames sit on both sides of the boundary runs both experts) and with ComfyUI's samplers "
            "(one hand-over step, as the official two-KSamplerAdvanced template). Patch both experts alike "
            "(FrameLevelCrossAttention, LoRAs, FrameLevelPMWDModel)."),
        inputs=(
            Socket("MODEL", "model_high_noise", tooltip=(
                "The high-noise expert (wan2.2_*_high_noise_14B), with the same patches as the low-noise one.")),
            Socket("MODEL", "model_low_noise", tooltip="The low-noise expert (wan2.2_*_low_noise_14B)."),
            Socket("CONDITIONING", "positive", tooltip=(
                "Prompt, ordinary or from FrameLevelTextEncode (also after WanImageToVideo / "
                "WanFirstLastFrameToVideo).")),
            Socket("CONDITIONING", "negative", tooltip="Negative prompt."),
            BOUNDARY,
            Float("cfg_high", 4.0, min=0.0, max=100.0, step=0.1,
                  tooltip="CFG scale of the high-noise expert (Wan 2.2 T2V uses 4.0, I2V 3.5)."),
            Float("cfg_low", 3.0, min=0.0, max=100.0, step=0.1,
                  tooltip="CFG scale of the low-noise expert (Wan 2.2 T2V uses 3.0, I2V 3.5)."),
            Combo("rule", RULES, "per_frame", tooltip=(
                "per_frame (exact): each latent frame from the expert of its own noise level; a call mixing both "
                "sides runs both experts. per_call (cheaper): one expert per call, chosen by the call's noisiest "
                "latent frame.")),
        ),
        outputs=(Output("GUIDER", "GUIDER", "Connect to SamplerCustomAdvanced's guider input."),))

    @classmethod
    def execute(cls, model_high_noise, model_low_noise, positive, negative, boundary, cfg_high, cfg_low, rule):
        check_boundary(boundary)
        settings = ExpertSettings(boundary=boundary, cfg_high=cfg_high, cfg_low=cfg_low, rule=rule)
        return (_glue().experts_guider(model_high_noise, model_low_noise, positive, negative, settings),)


class FrameLevelExpertSwitchStep(Node):
    SCHEMA = Schema(
        node_id="FrameLevelExpertSwitchStep", display_name="Frame-Level Expert Switch Step (two-sampler route)",
        category=CATEGORY,
        description=(
            "The step where Wan 2.2's official two-KSamplerAdvanced route hands over from the high-noise to the "
            "low-noise expert, from the boundary on the sigma schedule: the first sampler's end_at_step and the "
            "second one's start_at_step (the same hand-over FrameLevelWanExperts makes)."),
        inputs=(
            Socket("SIGMAS", "sigmas", tooltip="The full schedule (BasicScheduler with the steps of both samplers)."),
            BOUNDARY,
        ),
        outputs=(Output("INT", "switch_step", "Steps run by the high-noise expert (KSamplerAdvanced end_at_step / "
                        "start_at_step)."),
                 Output("STRING", "summary", "The schedule and the hand-over, as text.")))

    @classmethod
    def execute(cls, sigmas, boundary):
        check_boundary(boundary)
        step = switch_step(sigmas.detach().cpu(), boundary)
        steps = int(sigmas.shape[0]) - 1
        summary = (f"{steps} steps, boundary {boundary}: the high-noise expert runs steps [0, {step}), the "
                   f"low-noise expert steps [{step}, {steps}); switch at step {step}")
        return (step, summary)


NODES = (FrameLevelWanExperts, FrameLevelExpertSwitchStep)
