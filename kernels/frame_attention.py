"""The API of frame-level cross-attention: prompt packing, shape checks and the dispatching entry.

Semantics (paper eq. 1, with Wan's padding kept exact): for batch item z and latent frame f the
`tokens_per_frame` query rows of that frame attend over the keys of segment `frame_prompt[z, f]`
only. Wan pads every prompt to 512 tokens with exact zeros and attends over the pads; after the
row-wise projections every pad row is the same vector, so a prompt with n pads is packed as its
real rows plus ONE zero row whose score gets the bias ln(n). That is exact, not an approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import dispatch
from .reference import frame_cross_attention_reference
from .sdpa import frame_cross_attention_batched, frame_cross_attention_grouped

__all__ = [
    "PackedPrompts", "pack_prompts", "frame_cross_attention", "frame_cross_attention_reference",
    "frame_cross_attention_batched", "frame_cross_attention_grouped",
]


@dataclass(frozen=True)
class PackedPrompts:
    """Distinct prompts packed into one row table, plus the per-frame routing.

    rows:         [T, C] real rows of every distinct prompt, each followed by one pad row (zeros)
                  when the prompt had padding; in whatever space the caller packed (umt5 or model).
    seg_start:    [P] int64, first row of each prompt segment.
    seg_len:      [P] int64, rows of each segment (real rows + pad row).
    key_bias:     [T] float32, ln(pad count) on pad rows, 0 on real rows.
    frame_prompt: [B, F] int64, segment id of every latent frame of every batch item.
    """

    rows: torch.Tensor
    seg_start: torch.Tensor
    seg_len: torch.Tensor
    key_bias: torch.Tensor
    frame_prompt: torch.Tensor

    @property
    def num_segments(self) -> int:
        return int(self.seg_start.numel())

    def with_rows(self, rows: torch.Tensor) -> PackedPrompts:
        """Same routing over transformed rows (e.g. after `text_embedding` or a k projection)."""
        if rows.shape[0] != self.rows.shape[0]:
            raise ValueError(f"row count changed from {self.rows.shape[0]} to {rows.shape[0]}")
        return PackedPrompts(rows, self.seg_start, self.seg_len, self.key_bias, self.frame_prompt)

    def select_frames(self, frame_index: torch.Tensor | Sequence[int]) -> PackedPrompts:
        """Routing restricted to some latent frames (a window), by global frame index."""
        index = torch.as_tensor(frame_index, dtype=torch.long, device=self.frame_prompt.device)
        return PackedPrompts(self.rows, self.seg_start, self.seg_len, self.key_bias,
                             self.frame_prompt.index_select(1, index))

    def repeat_batch(self, batch: int) -> PackedPrompts:
        """Tile the frame routing to `batch` items (items must be a multiple of the current batch)."""
        current = self.frame_prompt.shape[0]
        if batch == current:
            return self
        if batch % current:
            raise ValueError(f"cannot tile frame routing of batch {current} to batch {batch}")
        return PackedPrompts(self.rows, self.seg_start, self.seg_len, self.key_bias,
                             self.frame_prompt.repeat(batch // current, 1))


def count_trailing_zero_rows(context: torch.Tensor) -> int:
    """Wan's padding rows are exact zeros at the end of a prompt's token sequence."""
    nonzero = context.reshape(context.shape[0], -1).ne(0).any(dim=1)
    real = torch.nonzero(nonzero)
    return context.shape[0] if real.numel() == 0 else context.shape[0] - int(real[-1]) - 1


def pack_prompts(contexts: Sequence[torch.Tensor], frame_prompt: torch.Tensor) -> PackedPrompts:
    """Pack distinct prompt contexts ([L_i, C] each, trailing zero rows = padding) for routing.

    `frame_prompt` [B, F] (or [F]) holds, for every latent frame, the index into `contexts`.
    """
    if len(contexts) == 0:
        raise ValueError("pack_prompts needs at least one prompt context")
    frame_prompt = torch.as_tensor(frame_prompt, dtype=torch.long)
    if frame_prompt.ndim == 1:
        frame_prompt = frame_prompt.unsqueeze(0)
    if frame_prompt.numel() and (frame_prompt.min() < 0 or frame_prompt.max() >= len(contexts)):
        raise ValueError(f"frame_prompt refers to prompt {int(frame_prompt.max())} but only "
                         f"{len(contexts)} prompt contexts were given")
    pieces, biases, starts, lengths = [], [], [], []
    offset = 0
    for context in contexts:
        if context.ndim != 2:
            raise ValueError(f"each prompt context must be [tokens, channels], got {tuple(context.shape)}")
        pads = count_trailing_zero_rows(context)
        real = context[: context.shape[0] - pads]
        rows = torch.cat([real, context.new_zeros(1, context.shape[1])]) if pads else real
        bias = torch.zeros(rows.shape[0], dtype=torch.float32, device=context.device)
        if pads:
            bias[-1] = math.log(pads)
        pieces.append(rows)
        biases.append(bias)
        starts.append(offset)
        lengths.append(rows.shape[0])
        offset += rows.shape[0]
    device = contexts[0].device
    return PackedPrompts(
        rows=torch.cat(pieces),
        seg_start=torch.tensor(starts, dtype=torch.long, device=device),
        seg_len=torch.tensor(lengths, dtype=torch.long, device=device),
        key_bias=torch.cat(biases),
        frame_prompt=frame_prompt.to(device),
    )


def _check_shapes(q, k, v, frame_prompt, tokens_per_frame, heads):
    if q.ndim != 3:
        raise ValueError(f"q must be [batch, frames*tokens_per_frame, heads*head_dim], got {tuple(q.shape)}")
    batch, length, channels = q.shape
    if frame_prompt.ndim != 2 or frame_prompt.shape[0] != batch:
        raise ValueError(f"frame_prompt must be [batch={batch}, frames], got {tuple(frame_prompt.shape)}")
    frames = frame_prompt.shape[1]
    if frames * tokens_per_frame != length:
        raise ValueError(f"q has {length} tokens but {frames} frames x {tokens_per_frame} tokens per frame "
                         f"= {frames * tokens_per_frame}")
    if channels % heads:
        raise ValueError(f"q channels {channels} are not divisible by heads={heads}")
    if k.ndim != 2 or k.shape[-1] != channels or v.shape != k.shape:
        raise ValueError(f"k/v must be [rows, {channels}] with equal shapes, got {tuple(k.shape)} and {tuple(v.shape)}")


def _check_tables(k, frame_prompt, seg_start, seg_len, key_bias):
    """Range checks of the routing tables; only where they live on the CPU (no device sync)."""
    if seg_start.shape != seg_len.shape or seg_start.ndim != 1:
        raise ValueError(f"seg_start/seg_len must be [P] of equal shape, got {tuple(seg_start.shape)} "
                         f"and {tuple(seg_len.shape)}")
    if key_bias is not None and tuple(key_bias.shape) != (k.shape[0],):
        raise ValueError(f"key_bias must be [{k.shape[0]}] (one per packed row), got {tuple(key_bias.shape)}")
    if any(t.device.type != "cpu" for t in (frame_prompt, seg_start, seg_len)):
        return
    if frame_prompt.numel() and (int(frame_prompt.min()) < 0 or int(frame_prompt.max()) >= seg_start.numel()):
        raise ValueError(f"frame_prompt holds prompt ids in [{int(frame_prompt.min())}, {int(frame_prompt.max())}] "
                         f"but only {seg_start.numel()} segments exist")
    if seg_len.numel() and (int(seg_len.min()) < 0 or int(seg_start.min()) < 0
                            or int((seg_start + seg_len).max()) > k.shape[0]):
        raise ValueError(f"prompt segments run past the {k.shape[0]} packed k/v rows")


def frame_cross_attention(q, k, v, frame_prompt, seg_start, seg_len, *, heads, tokens_per_frame,
                          key_bias=None, scale=None, backend="auto"):
    """Frame-level cross-attention: frame f of batch item b attends only to segment frame_prompt[b, f].

    q: [B, F*tokens_per_frame, heads*head_dim]; k, v: [T, heads*head_dim] packed prompt rows;
    frame_prompt: [B, F] segment id per frame; seg_start/seg_len: [P]; key_bias: [T] (log units,
    ln(pad count) on a pad row). Returns [B, F*tokens_per_frame, heads*head_dim] in q's dtype.
    A frame whose segment is empty gets zeros.

    backend: "auto" (or the FRAMELEVEL_ATTENTION_BACKEND environment variable) picks the fastest
    backend that passes a one-time self-check on this device and dtype; naming one of
    "triton", "flex", "batched", "grouped", "reference" forces it and raises
    `dispatch.BackendUnavailable` (a RuntimeError) if it cannot run here.
    """
    _check_shapes(q, k, v, frame_prompt, tokens_per_frame, heads)
    _check_tables(k, frame_prompt, seg_start, seg_len, key_bias)
    if k.dtype != q.dtype or v.dtype != q.dtype:  # e.g. autocast produced q and k in different dtypes
        k, v = k.to(q.dtype), v.to(q.dtype)
    args = (q, k, v, frame_prompt, seg_start, seg_len)
    options = dict(heads=heads, tokens_per_frame=tokens_per_frame, key_bias=key_bias, scale=scale)
    name, origin = dispatch.requested_backend(backend)
    if name != "auto":
        return dispatch.forced_backend(name, origin, q.device)(*args, **options)
    for _ in dispatch.BACKENDS:
        name = dispatch.auto_backend(q.device, q.dtype)
        if name == "grouped":
            return dispatch.backend_function(name)(*args, **options)
        try:
            return dispatch.backend_function(name)(*args, **options)
        except Exception as error:  # logged loudly; auto then uses the next backend in its order
            dispatch.reject_auto_choice(q.device, q.dtype, name, f"{type(error).__name__}: {error}")
    return dispatch.backend_function("grouped")(*args, **options)
