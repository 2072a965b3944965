"""Diffusion Forcing nodes: a SAMPLER, an all-in-one sampler, and clean keyframe anchors."""

from __future__ import annotations

from .core import frames as fm
from .core.df_schedule import DFSchedule, df_plan
from .core.executor import SOLVERS, ExecutorOptions
from .schema import Combo, Float, Int, Node, Output, Schema, Socket, String
from .validation import FrameLevelInputError, require

CATEGORY = "FrameLevel/Diffusion Forcing"


def _adapter():
    from . import comfy_adapter  # only this module imports comfy; loaded when a node runs
    return comfy_adapter


DF_INPUTS = (
    Float("step_size", 0.0, min=0.0, max=1000.0, step=0.1, tooltip=(
        "Allowed difference in sampling steps between neighbouring latent frames (blocks): 0 = all frames "
        "denoise together (synchronous), 1-5 = a diagonal staircase, >= steps = autoregressive-like. "
        "Fractions allowed.")),
    Int("causal_block_size", 1, min=1, max=64,
        tooltip="Latent frames that move together as one block (SkyReels-V2 async models use 5)."),
    Combo("solver", SOLVERS, "euler", tooltip=(
        "Per-frame solver: euler (flow-matching Euler) or dpmpp_2m (second order, no extra model calls).")),
)
DF_OPTIONAL = (
    Int("window", 0, min=0, max=10000, optional=True, tooltip=(
        "Latent frames per model call; 0 = the whole video every iteration. A shorter window follows the "
        "moving frames along the video (needs step_size large enough).")),
    Float("condition_noise", 0.0, min=0.0, max=0.99, step=0.01, optional=True, tooltip=(
        "Feed clean anchor latent frames to the model re-noised to this sigma (SkyReels' addnoise_condition / "
        "1000); 0 = feed them clean.")),
    Int("max_windows_per_batch", 0, min=0, max=256, optional=True,
        tooltip="Windows stacked into one model call; 0 = all (lower it if memory runs out)."),
    Int("noise_seed", 0, min=0, max=0xFFFFFFFF, optional=True,
        tooltip="Seed of the fresh noise used to re-noise anchor frames (only with condition_noise > 0)."),
)


def df_planner(step_size: float, causal_block_size: int, window: int = 0, condition_noise: float = 0.0):
    """planner(sigmas, frames, anchors) -> Plan for the given Diffusion Forcing settings."""
    def planner(sigmas, frames, anchors):
        schedule = DFSchedule(step_size=float(step_size), causal_block_size=int(causal_block_size),
                              anchors=tuple(anchors))
        return df_plan(sigmas, frames, schedule, window=window or None, condition_sigma=float(condition_noise))
    return planner


def check_df_settings(step_size, causal_block_size, window, condition_noise):
    require(step_size >= 0, "step_size", step_size, "must be >= 0", "use 0 for synchronous denoising")
    require(causal_block_size >= 1, "causal_block_size", causal_block_size, "must be >= 1 latent frame",
            "use 1 (every latent frame on its own clock)")
    require(window >= 0, "window", window, "must be >= 0 latent frames", "use 0 for the whole video")
    require(0 <= condition_noise < 1, "condition_noise", condition_noise, "must be in [0, 1)", "use 0 or e.g. 0.02")


class FrameLevelDiffusionForcingSampler(Node):
    SCHEMA = Schema(
        node_id="FrameLevelDiffusionForcingSampler", display_name="Frame-Level Diffusion Forcing Sampler",
        category=CATEGORY,
        description=(
            "A SAMPLER for SamplerCustomAdvanced (any GUIDER, any SIGMAS) giving every latent frame its own noise "
            "level (Diffusion Forcing): from synchronous (step_size 0, equal to Euler) to autoregressive-like. "
            "Latent frames masked by FrameLevelAnchorFrames stay clean at sigma 0."),
        inputs=(*DF_INPUTS, *DF_OPTIONAL),
        outputs=(Output("SAMPLER", "SAMPLER", "Connect to SamplerCustomAdvanced's sampler input."),))

    @classmethod
    def check_widgets(cls, step_size=0.0, causal_block_size=1, window=0, condition_noise=0.0, **_):
        check_df_settings(step_size, causal_block_size, window, condition_noise)

    @classmethod
    def execute(cls, step_size, causal_block_size, solver, window=0, condition_noise=0.0,
                max_windows_per_batch=0, noise_seed=0):
        check_df_settings(step_size, causal_block_size, window, condition_noise)
        options = ExecutorOptions(solver=solver, max_windows_per_batch=max_windows_per_batch, noise_seed=noise_seed)
        planner = df_planner(step_size, causal_block_size, window, condition_noise)
        return (_adapter().plan_sampler(planner, options),)


class FrameLevelDiffusionForcing(Node):
    @classmethod
    def schema(cls) -> Schema:
        return Schema(
            node_id="FrameLevelDiffusionForcing", display_name="Frame-Level Diffusion Forcing (all-in-one)",
            category=CATEGORY,
            description=(
                "All-in-one Diffusion Forcing sampler: model, prompts and latent in, latent out. Every latent frame "
                "follows its own noise schedule (step_size 0 = synchronous); anchors from FrameLevelAnchorFrames "
                "are held clean. Works with FrameLevelCrossAttention, LoRAs and CFG."),
            inputs=(
                Socket("MODEL", "model", tooltip="Wan model (patch it with FrameLevelCrossAttention for frame prompts)."),
                Socket("CONDITIONING", "positive", tooltip="Prompt, ordinary or from FrameLevelTextEncode."),
                Socket("CONDITIONING", "negative", tooltip="Negative prompt, ordinary or frame-level."),
                Socket("LATENT", "latent", tooltip="Empty video latent, or one from FrameLevelAnchorFrames."),
                Int("seed", 0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                    tooltip="Seed of the initial noise."),
                Int("steps", 30, min=1, max=1000,
                    tooltip="Sampling steps of the base schedule (each latent frame takes this many)."),
                Float("cfg", 6.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance scale."),
                Combo("scheduler", _scheduler_names(), "simple", tooltip="Base sigma schedule."),
                *DF_INPUTS, *DF_OPTIONAL),
            outputs=(Output("LATENT", "LATENT", "The denoised latent; decode it with VAEDecode."),))

    @classmethod
    def execute(cls, model, positive, negative, latent, seed, steps, cfg, scheduler, step_size,
                causal_block_size, solver, window=0, condition_noise=0.0, max_windows_per_batch=0, noise_seed=0):
        check_df_settings(step_size, causal_block_size, window, condition_noise)
        require(latent["samples"].ndim == 5, "latent", tuple(latent["samples"].shape),
                "is not a video latent [B, C, F, H, W]", "use EmptyHunyuanLatentVideo or a Wan video latent")
        adapter = _adapter()
        sigmas = adapter.calculate_sigmas(model, scheduler, steps)
        sampler = FrameLevelDiffusionForcingSampler.execute(step_size, causal_block_size, solver, window,
                                                            condition_noise, max_windows_per_batch, noise_seed)[0]
        return (adapter.sample_with_sampler(model, sampler, sigmas, positive, negative, cfg, latent, seed),)


def _scheduler_names():
    try:
        return _adapter().scheduler_names()
    except ImportError:  # outside ComfyUI (tests of the node tables)
        return ["simple", "normal", "karras", "exponential", "sgm_uniform", "beta", "linear_quadratic"]


def parse_pixel_frames(text: str, count: int, pixel_frames: int) -> list[int]:
    """Comma-separated pixel frame numbers (0-based), one per keyframe image."""
    try:
        frames = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise FrameLevelInputError("pixel_frames", text, "is not a comma-separated list of whole numbers",
                                   "write e.g. 0, 40, 80") from None
    require(len(frames) == count, "pixel_frames", text, f"gives {len(frames)} frame numbers for {count} images",
            "give one pixel frame number per image of `images`")
    for frame in frames:
        require(0 <= frame < pixel_frames, "pixel_frames", frame,
                f"is outside the video (pixel frames 0..{pixel_frames - 1})", "use a frame inside the video")
    return frames


class FrameLevelAnchorFrames(Node):
    SCHEMA = Schema(
        node_id="FrameLevelAnchorFrames", display_name="Frame-Level Anchor Frames (first/last/any frame)",
        category=CATEGORY,
        description=(
            "First/last-frame (or any-frame) to video on a plain T2V Wan, the Diffusion Forcing way: the images "
            "are VAE-encoded into their latent frames, which every sampler of this pack then holds clean at "
            "sigma 0 (no extra encoder or channels needed)."),
        inputs=(
            Socket("VAE", "vae", tooltip="Wan VAE (wan_2.1_vae) used to encode the anchor images."),
            Socket("LATENT", "latent", tooltip="Video latent to place anchors into (e.g. EmptyHunyuanLatentVideo)."),
            Socket("IMAGE", "start_image", optional=True, tooltip="Image for pixel frame 0 (latent frame 0)."),
            Socket("IMAGE", "end_image", optional=True,
                   tooltip="Image for the last pixel frame (the last latent frame)."),
            Socket("IMAGE", "images", optional=True, tooltip="More keyframe images, one per number in pixel_frames."),
            String("pixel_frames", "", optional=True, tooltip=(
                "Comma-separated PIXEL frame numbers (0-based) for `images`; each lands in latent frame "
                "(p - 1) // 4 + 1 (0 for p = 0).")),
        ),
        outputs=(Output("LATENT", "LATENT",
                        "Video latent with the anchor frames placed and marked clean (noise_mask 0)."),))

    @classmethod
    def execute(cls, vae, latent, start_image=None, end_image=None, images=None, pixel_frames=""):
        samples = latent["samples"]
        require(samples.ndim == 5, "latent", tuple(samples.shape), "is not a video latent [B, C, F, H, W]",
                "use EmptyHunyuanLatentVideo")
        latents = samples.shape[2]
        placed = cls._placements(latents, start_image, end_image, images, pixel_frames)
        require(bool(placed), "start_image/end_image/images", None, "no anchor image is connected",
                "connect at least one image")
        adapter = _adapter()
        out_samples = samples.clone()
        mask = latent.get("noise_mask")
        mask = mask.clone() if mask is not None else samples.new_ones(1, 1, latents, *samples.shape[-2:])
        for latent_index, image in placed.items():
            encoded = adapter.encode_image_latent(vae, image, samples.shape[-2:])
            out_samples[:, :, latent_index] = encoded[:, :, 0].to(out_samples)
            mask[:, :, latent_index] = 0
        out = dict(latent)
        out["samples"], out["noise_mask"] = out_samples, mask
        return (out,)

    @staticmethod
    def _placements(latents, start_image, end_image, images, pixel_frames):
        placed = {}
        if start_image is not None:
            placed[0] = start_image[:1]
        if end_image is not None:
            require(latents > 1 or start_image is None, "end_image", "connected",
                    "the video has one latent frame, already taken by start_image", "make the video longer")
            placed[latents - 1] = end_image[-1:]
        if images is not None:
            for i, pixel in enumerate(parse_pixel_frames(pixel_frames, images.shape[0], fm.pixel_count(latents))):
                index = fm.latent_of_pixel(pixel)
                require(index not in placed, "pixel_frames", pixel, f"falls in latent frame {index}, which "
                        "already has an anchor image", "space keyframes at least 4 pixel frames apart")
                placed[index] = images[i:i + 1]
        return placed


NODES = (FrameLevelDiffusionForcingSampler, FrameLevelDiffusionForcing, FrameLevelAnchorFrames)
