"""Diffusion Forcing nodes: a SAMPLER, an all-in-one sampler, and clean keyframe anchors."""

from __future__ import annotations

from .core import frames as fm
from .core.df_schedule import DFSchedule, df_plan
from .core.executor import SOLVERS, ExecutorOptions
from .validation import FrameLevelInputError, require

CATEGORY = "FrameLevel/Diffusion Forcing"


def _adapter():
    from . import comfy_adapter  # only this module imports comfy; loaded when a node runs
    return comfy_adapter


DF_INPUTS = {
    "step_size": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip":
                  "Allowed difference in sampling steps between neighbouring latent frames (blocks): 0 = all "
                  "frames denoise together (synchronous), 1-5 = a diagonal staircase, >= steps = "
                  "autoregressive-like. Fractions allowed."}),
    "causal_block_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip":
                          "Latent frames that move together as one block (SkyReels-V2 async models use 5)."}),
    "solver": (list(SOLVERS), {"default": "euler", "tooltip":
               "Per-frame solver: euler (flow-matching Euler) or dpmpp_2m (second order, no extra model calls)."}),
}
DF_OPTIONAL = {
    "window": ("INT", {"default": 0, "min": 0, "max": 10000, "tooltip":
               "Latent frames per model call; 0 = the whole video every iteration. A shorter window follows "
               "the moving frames along the video (needs step_size large enough)."}),
    "condition_noise": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99, "step": 0.01, "tooltip":
                        "Feed clean anchor latent frames to the model re-noised to this sigma (SkyReels' "
                        "addnoise_condition / 1000); 0 = feed them clean."}),
    "max_windows_per_batch": ("INT", {"default": 0, "min": 0, "max": 256, "tooltip":
                              "Windows stacked into one model call; 0 = all (lower it if memory runs out)."}),
    "noise_seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip":
                   "Seed of the fresh noise used to re-noise anchor frames (only with condition_noise > 0)."}),
}


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


class FrameLevelDiffusionForcingSampler:
    DESCRIPTION = ("A SAMPLER for SamplerCustomAdvanced (any GUIDER, any SIGMAS) giving every latent frame its own "
                   "noise level (Diffusion Forcing): from synchronous (step_size 0, equal to Euler) to "
                   "autoregressive-like. Latent frames masked by FrameLevelAnchorFrames stay clean at sigma 0.")
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("SAMPLER",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustomAdvanced's sampler input.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(DF_INPUTS), "optional": dict(DF_OPTIONAL)}

    def build(self, step_size, causal_block_size, solver, window=0, condition_noise=0.0,
              max_windows_per_batch=0, noise_seed=0):
        check_df_settings(step_size, causal_block_size, window, condition_noise)
        options = ExecutorOptions(solver=solver, max_windows_per_batch=max_windows_per_batch, noise_seed=noise_seed)
        planner = df_planner(step_size, causal_block_size, window, condition_noise)
        return (_adapter().plan_sampler(planner, options),)


class FrameLevelDiffusionForcing:
    DESCRIPTION = ("All-in-one Diffusion Forcing sampler: model, prompts and latent in, latent out. Every latent "
                   "frame follows its own noise schedule (step_size 0 = synchronous); anchors from "
                   "FrameLevelAnchorFrames are held clean. Works with FrameLevelCrossAttention, LoRAs and CFG.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent; decode it with VAEDecode.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "Wan model (patch it with FrameLevelCrossAttention for frame prompts)."}),
            "positive": ("CONDITIONING", {"tooltip": "Prompt, ordinary or from FrameLevelTextEncode."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative prompt, ordinary or frame-level."}),
            "latent": ("LATENT", {"tooltip": "Empty video latent, or one from FrameLevelAnchorFrames."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Seed of the initial noise."}),
            "steps": ("INT", {"default": 30, "min": 1, "max": 1000, "tooltip":
                      "Sampling steps of the base schedule (each latent frame takes this many)."}),
            "cfg": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip":
                    "Classifier-free guidance scale."}),
            "scheduler": (_scheduler_names(), {"default": "simple", "tooltip": "Base sigma schedule."}),
            **DF_INPUTS,
        }, "optional": dict(DF_OPTIONAL)}

    def sample(self, model, positive, negative, latent, seed, steps, cfg, scheduler, step_size,
               causal_block_size, solver, window=0, condition_noise=0.0, max_windows_per_batch=0, noise_seed=0):
        check_df_settings(step_size, causal_block_size, window, condition_noise)
        require(latent["samples"].ndim == 5, "latent", tuple(latent["samples"].shape),
                "is not a video latent [B, C, F, H, W]", "use EmptyHunyuanLatentVideo or a Wan video latent")
        adapter = _adapter()
        sigmas = adapter.calculate_sigmas(model, scheduler, steps)
        sampler = FrameLevelDiffusionForcingSampler().build(step_size, causal_block_size, solver, window,
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


class FrameLevelAnchorFrames:
    DESCRIPTION = ("First/last-frame (or any-frame) to video on a plain T2V Wan, the Diffusion Forcing way: the "
                   "images are VAE-encoded into their latent frames, which every sampler of this pack then "
                   "holds clean at sigma 0 (no extra encoder or channels needed).")
    CATEGORY = CATEGORY
    FUNCTION = "anchor"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("Video latent with the anchor frames placed and marked clean (noise_mask 0).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("VAE", {"tooltip": "Wan VAE (wan_2.1_vae) used to encode the anchor images."}),
            "latent": ("LATENT", {"tooltip": "Video latent to place anchors into (e.g. EmptyHunyuanLatentVideo)."}),
        }, "optional": {
            "start_image": ("IMAGE", {"tooltip": "Image for pixel frame 0 (latent frame 0)."}),
            "end_image": ("IMAGE", {"tooltip": "Image for the last pixel frame (the last latent frame)."}),
            "images": ("IMAGE", {"tooltip": "More keyframe images, one per number in pixel_frames."}),
            "pixel_frames": ("STRING", {"default": "", "tooltip":
                             "Comma-separated PIXEL frame numbers (0-based) for `images`; each lands in latent "
                             "frame (p - 1) // 4 + 1 (0 for p = 0)."}),
        }}

    def anchor(self, vae, latent, start_image=None, end_image=None, images=None, pixel_frames=""):
        samples = latent["samples"]
        require(samples.ndim == 5, "latent", tuple(samples.shape), "is not a video latent [B, C, F, H, W]",
                "use EmptyHunyuanLatentVideo")
        latents = samples.shape[2]
        placed = self._placements(latents, start_image, end_image, images, pixel_frames)
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


NODE_CLASS_MAPPINGS = {
    "FrameLevelDiffusionForcingSampler": FrameLevelDiffusionForcingSampler,
    "FrameLevelDiffusionForcing": FrameLevelDiffusionForcing,
    "FrameLevelAnchorFrames": FrameLevelAnchorFrames,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FrameLevelDiffusionForcingSampler": "Frame-Level Diffusion Forcing Sampler",
    "FrameLevelDiffusionForcing": "Frame-Level Diffusion Forcing (all-in-one)",
    "FrameLevelAnchorFrames": "Frame-Level Anchor Frames (first/last/any frame)",
}
