"""Long sampling of the exported weights inside real ComfyUI (imported in-process, on the CPU).

Route: `comfy.sd.load_diffusion_model(path)` (what the UNETLoader node calls; comfy_headless.load_wan) on the trainer's full
export; ComfyUI's `ModelSamplingSD3` shift patch; the pack's frame-level cross-attention patch
(`comfy_adapter.apply_frame_level_cross_attention`); the pack's SAMPLERs (`comfy_adapter.plan_sampler`
with the PMWD / sliding-window / FIFO planners of nodes/core/windows.py) run by ComfyUI's
`comfy.sample.sample_custom` with a CFG guider at cfg 1 (the tiny runs train no unconditional branch).

Text: the tiny UMT5's outputs are fed directly as conditioning tensors (no ComfyUI CLIP exists for
it): each distinct prompt is encoded once by the same `UMT5TextEncoder` the cache step used and
zero-padded to the training `text_len`, exactly as the trainer pads; frame-level prompts ride in a
`FrameText` under the adapter's cond key, which is what FrameLevelTextEncode produces.

ComfyUI itself is reached only through the pack's glue (nodes/comfy_headless.py to import the checkout,
load and sample; nodes/comfy_adapter.py for the patches and SAMPLERs), so training/ imports no comfy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...nodes import comfy_headless  # noqa: TID252 - package-relative
from ...nodes.core.executor import ExecutorOptions  # noqa: TID252
from ...nodes.core.frame_text import FrameText  # noqa: TID252
from ...nodes.core.windows import FIFOOptions, PMWDOptions, SlidingOptions, fifo_plan, pmwd_plan, sliding_plan  # noqa: TID252
from ..data.dataset import pad_rows

METHODS = ("fifo", "sliding", "pmwd")


@dataclass(frozen=True)
class LoopSettings:
    """Latent-frame counts of the three loops (window = the training length)."""

    window: int = 8
    pmwd_overlap: int = 4  # PMWD: fewest windows whose neighbours share >= this many latents
    slide: int = 4  # sliding window: new latents per chunk (history = window - slide)
    history_sigma: float = 0.0
    fifo_partitions: int = 2  # FIFO: queue = window x partitions latents = sampling steps
    shift: float = 3.0  # ModelSamplingSD3 shift of the sampling schedule
    # Windows stacked per model call. The pack's automatic choice on a CPU is 1 (right for real Wan
    # sizes); this tiny model's calls are all overhead, and stacking gives the same numbers.
    max_windows_per_batch: int = 8

    @property
    def steps(self) -> int:
        """One schedule for all loops; FIFO needs exactly window x partitions steps."""
        return self.window * self.fifo_partitions


def planner_for(method: str, loops: LoopSettings):
    """planner(sigmas, frames, anchors) -> Plan, as the pack's sampler nodes build them."""
    if method == "pmwd":
        return lambda sigmas, frames, anchors: pmwd_plan(
            sigmas, frames, PMWDOptions(window=loops.window, overlap=loops.pmwd_overlap, anchors=tuple(anchors)))
    if method == "sliding":
        return lambda sigmas, frames, anchors: sliding_plan(
            sigmas, frames, SlidingOptions(window=loops.window, slide=loops.slide,
                                           history_sigma=loops.history_sigma, anchors=tuple(anchors)))
    if method == "fifo":
        return lambda sigmas, frames, anchors: fifo_plan(
            sigmas, frames, FIFOOptions(window=loops.window, partitions=loops.fifo_partitions, anchors=tuple(anchors)))
    raise ValueError(f"method {method!r} is unknown; use one of {METHODS}")


class PromptEncoder:
    """Tiny UMT5 -> [text_len, 4096] contexts (real rows + exact-zero pad rows), each prompt once."""

    def __init__(self, folder: Path, text_len: int):
        from ..data.encoders import UMT5TextEncoder

        self.encoder = UMT5TextEncoder.from_pretrained(str(folder))
        self.text_len = text_len
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, prompt: str) -> torch.Tensor:
        if prompt not in self._cache:
            self._cache[prompt] = pad_rows(self.encoder.encode([prompt])[0].float(), self.text_len)
        return self._cache[prompt]


def frame_conditioning(adapter, encode: PromptEncoder, frame_prompts: list[str]) -> list:
    """CONDITIONING with per-latent-frame text (one context per distinct prompt)."""
    unique = list(dict.fromkeys(frame_prompts))
    contexts = tuple(encode(p) for p in unique)
    frame_text = FrameText(contexts, tuple(unique.index(p) for p in frame_prompts), tuple(unique))
    return [[contexts[0].unsqueeze(0), {"pooled_output": None, adapter.FRAME_TEXT_KEY: frame_text}]]


def video_conditioning(encode: PromptEncoder, prompt: str) -> list:
    """Plain CONDITIONING: one prompt for the whole video, as a stock text encode gives it."""
    return [[encode(prompt).unsqueeze(0), {"pooled_output": None}]]


class ComfyLongSampler:
    """An exported checkpoint loaded in ComfyUI, patched for frame-level prompts, sampled long."""

    def __init__(self, comfyui_path: str, weights: Path, loops: LoopSettings):
        comfy_headless.import_comfyui(comfyui_path)
        from ...nodes import comfy_adapter  # noqa: TID252 - imports comfy, so only after the path is set

        self.adapter, self.loops = comfy_adapter, loops
        model = comfy_headless.load_wan(weights, loops.shift)
        self.model = comfy_adapter.apply_frame_level_cross_attention(model)
        self.sigmas = comfy_adapter.calculate_sigmas(self.model, "simple", loops.steps)

    def sample(self, method: str, positive: list, frames: int, size: int, seed: int) -> torch.Tensor:
        """Normalised latent [16, frames, size, size] (ComfyUI returns Wan's raw latent; we undo it)."""
        options = ExecutorOptions(solver="euler", max_windows_per_batch=self.loops.max_windows_per_batch)
        sampler = self.adapter.plan_sampler(planner_for(method, self.loops), options)
        latent = torch.zeros(1, 16, frames, size, size)
        out = comfy_headless.sample_latent(self.model, sampler, self.sigmas, positive, positive, 1.0, latent, seed)
        return out[0].float()
