"""Per-frame text carried by a CONDITIONING: distinct prompt contexts + a prompt index per frame.

`FrameText` is what the encode node attaches to a conditioning; `pack_frame_text` turns the rows of
a model batch (cond and uncond may carry different prompts) into one `PackedPrompts` table for the
frame-level attention kernels. Pure torch; no ComfyUI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...kernels import PackedPrompts, pack_prompts
from .prompts import fit_index


@dataclass(frozen=True)
class FrameText:
    """contexts: distinct prompt contexts [L_i, C] in text-encoder space (trailing zero rows are
    Wan's padding and are kept: they matter for exactness); index: prompt per latent frame."""

    contexts: tuple[torch.Tensor, ...]
    index: tuple[int, ...]
    prompts: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.contexts:
            raise ValueError("FrameText needs at least one prompt context")
        if not self.index:
            raise ValueError("FrameText needs a prompt index for at least one latent frame")
        if min(self.index) < 0 or max(self.index) >= len(self.contexts):
            raise ValueError(f"prompt index {max(self.index)} out of range for {len(self.contexts)} contexts")

    @property
    def latent_frames(self) -> int:
        return len(self.index)

    def fitted(self, latent_frames: int) -> FrameText:
        """The same prompts laid over `latent_frames` frames (last prompt held; shorter refused)."""
        return FrameText(self.contexts, tuple(fit_index(self.index, latent_frames)), self.prompts)

    @classmethod
    def single(cls, context: torch.Tensor, latent_frames: int) -> FrameText:
        """One ordinary prompt on every frame (a global negative, say)."""
        return cls((context,), (0,) * latent_frames)


def frame_text_from_schedule(schedule, encode) -> FrameText:
    """FrameText of a PromptSchedule, calling `encode(prompt) -> [L, C]` once per distinct prompt."""
    contexts = tuple(encode(prompt) for prompt in schedule.unique)
    return FrameText(contexts, tuple(schedule.index), tuple(schedule.unique))


def pack_frame_text(rows: Sequence[FrameText], frame_index: Sequence[int] | torch.Tensor) -> PackedPrompts:
    """Pack the frame text of each batch row for the frames `frame_index` (global latent indices).

    frame_index: [L] (the same frames for every row) or [R, L] with R dividing the row count (one
    window per row group, tiled over cond/uncond chunks). Contexts shared by several rows (the same
    tensor object) are packed once.
    """
    frame_index = torch.as_tensor(frame_index, dtype=torch.long).cpu()
    if frame_index.ndim == 1:
        frame_index = frame_index.unsqueeze(0)
    if len(rows) % frame_index.shape[0]:
        raise ValueError(f"{frame_index.shape[0]} frame-index rows cannot be tiled over {len(rows)} batch rows")
    frame_index = frame_index.repeat(len(rows) // frame_index.shape[0], 1)
    contexts: list[torch.Tensor] = []
    slot_of: dict[int, int] = {}
    routing = []
    for row, frames in zip(rows, frame_index):
        if int(frames.max()) >= row.latent_frames:
            raise ValueError(f"frame {int(frames.max())} requested but the frame text covers "
                             f"{row.latent_frames} latent frames")
        slots = []
        for context in row.contexts:
            if id(context) not in slot_of:
                slot_of[id(context)] = len(contexts)
                contexts.append(context)
            slots.append(slot_of[id(context)])
        per_frame = torch.tensor([slots[i] for i in row.index], dtype=torch.long)
        routing.append(per_frame.index_select(0, frames))
    return pack_prompts(contexts, torch.stack(routing))
