"""Long-video SAMPLER nodes (PMWD, sliding window, FIFO) and the schedule picture.

Each node only chooses a planner of the pure core; the same executor and the same ComfyUI glue run
them all (see docs/long_video_api.md). Every length is in LATENT frames (81 pixel frames = 21).
"""

from __future__ import annotations

from .core.executor import SOLVERS, ExecutorOptions
from .core.windows import FIFOOptions, PMWDOptions, SlidingOptions, fifo_plan, pmwd_plan, sliding_plan
from .prompt_nodes import FRAME_PROMPTS
from .schema import Boolean, Combo, Float, Int, Node, Output, Schema, Socket
from .validation import require

CATEGORY = "FrameLevel/Long video"


def _adapter():
    from . import comfy_adapter  # only this module imports comfy; loaded when a node runs
    return comfy_adapter


SOLVER = Combo("solver", SOLVERS, "euler",
               tooltip="Per-frame solver: euler or dpmpp_2m (second order, no extra model calls).")
WINDOWS_PER_CALL = Int("max_windows_per_batch", 0, min=0, max=256, tooltip=(
    "Windows stacked into one model call. 0 = automatic: on a GPU as many as fit in free memory (ComfyUI's "
    "estimate), on the CPU one (stacking only slows a CPU). 1 = one window at a time (least memory)."))
COMMON = (SOLVER, WINDOWS_PER_CALL)
WINDOW = Int("window", 21, min=1, max=1000,
             tooltip="Window length in LATENT frames (21 = 81 pixel frames, Wan's training length).")
SAMPLER_OUTPUT = (Output("SAMPLER", "SAMPLER", "Connect to SamplerCustomAdvanced's sampler input."),)


def _sampler(planner, solver, max_windows_per_batch):
    options = ExecutorOptions(solver=solver, max_windows_per_batch=max_windows_per_batch)
    return (_adapter().plan_sampler(planner, options),)


PMWD_INPUTS = (
    WINDOW,
    Int("num_windows", 0, min=0, max=1000, tooltip="K, the number of windows; 0 = derive it from overlap."),
    Int("overlap", 5, min=0, max=999, tooltip=(
        "Minimum overlap of neighbouring windows in LATENT frames (used when num_windows is 0).")),
    Combo("fusion", ("flat", "pyramid", "linear"), "flat", tooltip=(
        "Weights for averaging overlapping predictions: flat (the paper), pyramid, or linear ramps over the "
        "overlap.")),
)


def _pmwd_options(window, num_windows, overlap, fusion) -> dict:
    require(overlap < window, "overlap", overlap, f"must be smaller than the window ({window} latent frames)",
            "lower overlap or raise window")
    options = dict(window=window, fusion=fusion)
    options.update(num_windows=num_windows) if num_windows else options.update(overlap=overlap)
    return options


class FrameLevelPMWDSampler(Node):
    SCHEMA = Schema(
        node_id="FrameLevelPMWDSampler", display_name="Frame-Level PMWD Sampler (parallel windows)",
        category=CATEGORY,
        description=(
            "Parallel multi-window denoising (the paper's PMWD) as a SAMPLER for SamplerCustomAdvanced: K windows "
            "cover the whole video, all are denoised at every step (batched) and overlapping predictions are "
            "averaged, so no error accumulates. Window k starts at floor(k*(F-W)/(K-1)) latent frames. Frame "
            "prompts and anchors are honoured per window."),
        inputs=(*PMWD_INPUTS, *COMMON), outputs=SAMPLER_OUTPUT)

    @classmethod
    def check_widgets(cls, window=None, overlap=None, **_):
        if window is not None and overlap is not None:
            _pmwd_options(window, 0, overlap, "flat")

    @classmethod
    def execute(cls, window, num_windows, overlap, fusion, solver, max_windows_per_batch):
        options = _pmwd_options(window, num_windows, overlap, fusion)

        def planner(sigmas, frames, anchors):
            return pmwd_plan(sigmas, frames, PMWDOptions(anchors=tuple(anchors), **options))
        return _sampler(planner, solver, max_windows_per_batch)


class FrameLevelPMWDModel(Node):
    SCHEMA = Schema(
        node_id="FrameLevelPMWDModel", display_name="Frame-Level PMWD Model Patch (any sampler)",
        category=CATEGORY,
        description=(
            "PMWD for any sampler: patches a Wan MODEL so that every model evaluation denoises the K windows "
            "(batched) and returns their fused prediction. Stock KSampler / SamplerCustomAdvanced samplers "
            "(euler, uni_pc, dpmpp_2m, ...) then run the paper's parallel multi-window denoising. Apply after "
            "FrameLevelCrossAttention so each window gets the prompts of its own latent frames. The window "
            "layout is printed, and checked against the latent, before sampling."),
        inputs=(Socket("MODEL", "model", tooltip="A Wan 2.1/2.2 model, ideally after FrameLevelCrossAttention."),
                *PMWD_INPUTS, WINDOWS_PER_CALL),
        outputs=(Output("MODEL", "MODEL", "The model with PMWD windows; connect it to any sampler. The input "
                        "model is not changed."),))

    check_widgets = FrameLevelPMWDSampler.check_widgets

    @classmethod
    def execute(cls, model, window, num_windows, overlap, fusion, max_windows_per_batch):
        options = PMWDOptions(**_pmwd_options(window, num_windows, overlap, fusion))
        return (_adapter().apply_pmwd_model_patch(model, options, max_windows_per_batch),)


class FrameLevelSlidingWindowSampler(Node):
    SCHEMA = Schema(
        node_id="FrameLevelSlidingWindowSampler", display_name="Frame-Level Sliding Window Sampler",
        category=CATEGORY,
        description=(
            "Sequential sliding window (paper algorithm 1) as a SAMPLER: each window denoises `slide` new latent "
            "frames conditioned on the last window-slide latents of history, re-noised to history_sigma, until "
            "the video is complete."),
        inputs=(WINDOW,
                Int("slide", 16, min=1, max=1000, tooltip=(
                    "New LATENT frames per window; window - slide latent frames of history condition them.")),
                Float("history_sigma", 0.0, min=0.0, max=0.99, step=0.01, tooltip=(
                    "Noise level (sigma) the history latents are re-noised to each step; 0 = clean.")),
                *COMMON),
        outputs=SAMPLER_OUTPUT)

    @classmethod
    def check_widgets(cls, window=None, slide=None, **_):
        if window is not None and slide is not None:
            require(1 <= slide <= window, "slide", slide, f"must be in 1..window ({window} latent frames)",
                    "use a slide between 1 and the window length")

    @classmethod
    def execute(cls, window, slide, history_sigma, solver, max_windows_per_batch):
        cls.check_widgets(window=window, slide=slide)

        def planner(sigmas, frames, anchors):
            return sliding_plan(sigmas, frames, SlidingOptions(window=window, slide=slide,
                                                               history_sigma=history_sigma, anchors=tuple(anchors)))
        return _sampler(planner, solver, max_windows_per_batch)


class FrameLevelFIFOSampler(Node):
    SCHEMA = Schema(
        node_id="FrameLevelFIFOSampler", display_name="Frame-Level FIFO Sampler", category=CATEGORY,
        description=(
            "FIFO diffusion (paper algorithm 2) as a SAMPLER: a queue of latents with diagonally increasing noise; "
            "each step every latent moves one level down, the clean head leaves and fresh noise enters the tail "
            "with its own frame prompt. Starts from a Diffusion Forcing staircase. The SIGMAS must have window x "
            "partitions steps."),
        inputs=(WINDOW,
                Int("partitions", 1, min=1, max=16, tooltip=(
                    "Latent partitioning: noise levels per queue slot (steps = window x partitions).")),
                Boolean("lookahead", False, tooltip=(
                    "Lookahead denoising: also evaluate half-shifted windows (about 2x the model calls).")),
                *COMMON),
        outputs=SAMPLER_OUTPUT)

    @classmethod
    def check_widgets(cls, window=None, lookahead=None, **_):
        if window is not None and lookahead:
            require(window % 2 == 0, "window", window, "lookahead needs an even window (half-shifted windows)",
                    f"use window {window + 1}, or turn lookahead off")

    @classmethod
    def execute(cls, window, partitions, lookahead, solver, max_windows_per_batch):
        cls.check_widgets(window=window, lookahead=lookahead)
        def planner(sigmas, frames, anchors):
            return fifo_plan(sigmas, frames, FIFOOptions(window=window, partitions=partitions, lookahead=lookahead,
                                                         anchors=tuple(anchors)))
        return _sampler(planner, solver, max_windows_per_batch)


class FrameLevelScheduleView(Node):
    SCHEMA = Schema(
        node_id="FrameLevelScheduleView", display_name="Frame-Level Schedule View", category="FrameLevel/Debug",
        description=(
            "Draws the plan of one of this pack's samplers before sampling: the noise level of every latent frame "
            "at every iteration (heat map), the anchors, and the prompt index per latent frame."),
        inputs=(
            Socket("SAMPLER", "sampler", tooltip="A sampler from this pack (Diffusion Forcing, PMWD, sliding, FIFO)."),
            Socket("SIGMAS", "sigmas", tooltip="The base sigma schedule (e.g. BasicScheduler)."),
            Socket("LATENT", "latent", tooltip="The video latent (its LATENT frame count and anchors are used)."),
            Socket(FRAME_PROMPTS, "frame_prompts", optional=True,
                   tooltip="Per-latent-frame prompts to show as a strip."),
        ),
        outputs=(Output("IMAGE", "picture", "The schedule picture (iteration x latent frame)."),
                 Output("STRING", "summary", "Window layout and number of model evaluations, as text.")))

    @classmethod
    def execute(cls, sampler, sigmas, latent, frame_prompts=None):
        from .core.per_frame_sigma import anchors_from_mask
        from .core.plan import summarize_plan
        from .core.schedule_picture import render_schedule
        planner = getattr(sampler, "extra_options", {}).get("planner")
        require(planner is not None, "sampler", type(sampler).__name__, "is not a sampler of this pack",
                "connect FrameLevelDiffusionForcingSampler, FrameLevelPMWDSampler, FrameLevelSlidingWindowSampler "
                "or FrameLevelFIFOSampler")
        frames = latent["samples"].shape[2]
        mask = latent.get("noise_mask")
        anchors = anchors_from_mask(mask.reshape(-1, 1, *mask.shape[-3:]) if mask is not None else None)
        plan = planner(sigmas.detach().cpu(), frames, anchors)
        index = frame_prompts.index_for(frames) if frame_prompts is not None else None
        return (render_schedule(plan, prompt_index=index), summarize_plan(plan))


NODES = (FrameLevelPMWDSampler, FrameLevelPMWDModel, FrameLevelSlidingWindowSampler, FrameLevelFIFOSampler,
         FrameLevelScheduleView)
