"""Frame-level cross-attention on top of torch's scaled_dot_product_attention (any device).

Two layouts, both differentiable:

* `frame_cross_attention_batched`: frames in the batch dimension. Every frame gathers its prompt's
  keys into a [B*F, W, H, D] block (W = longest segment), with an additive key mask that carries
  -inf for the padding columns and the pad-row bias ln(n) for Wan's pad row. One SDPA call.
* `frame_cross_attention_grouped`: one SDPA call per distinct prompt, over all frames that use it.
  K/V are never copied per frame and no mask is needed except the pad-row bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bias_mask_dtype(q: torch.Tensor) -> torch.dtype:
    """Dtype of the additive key mask. CPU SDPA accepts a float32 mask with half-precision q,
    which keeps ln(n) exact (bf16 would round ln(392) by up to 0.016); CUDA kernels want q's dtype."""
    # float64 q needs a float64 mask: CPU SDPA silently mis-computes a float64 q with a float32 mask.
    return torch.float32 if q.device.type == "cpu" and q.dtype in (torch.float16, torch.bfloat16) else q.dtype


def frames_as_batch(q: torch.Tensor, frames: int, heads: int) -> torch.Tensor:
    """[B, F*LF, H*D] -> [B*F, H, LF, D] (a view when q is contiguous)."""
    batch, length, channels = q.shape
    return q.reshape(batch * frames, length // frames, heads, channels // heads).transpose(1, 2)


def frames_from_batch(out: torch.Tensor, batch: int) -> torch.Tensor:
    """[B*F, H, LF, D] -> [B, F*LF, H*D]."""
    frames_total, heads, tokens, head_dim = out.shape
    return out.transpose(1, 2).reshape(batch, (frames_total // batch) * tokens, heads * head_dim)


def gather_frame_keys(k, v, key_bias, routing, seg_start, seg_len, heads, mask_dtype):
    """Gather every frame's segment into a padded block.

    routing: [N] segment id per frame. Returns k_f, v_f [N, H, W, D], mask [N, 1, 1, W] and
    empty [N] (frames whose segment has no keys; their mask row is left finite to avoid NaN).
    """
    lengths = seg_len.index_select(0, routing)
    width = max(int(seg_len.max()), 1)
    offsets = torch.arange(width, device=k.device)
    valid = offsets.unsqueeze(0) < lengths.unsqueeze(1)
    index = (seg_start.index_select(0, routing).unsqueeze(1) + offsets).where(valid, 0)
    head_dim = k.shape[-1] // heads
    shape = (routing.numel(), width, heads, head_dim)
    k_f = k.index_select(0, index.reshape(-1)).view(shape).transpose(1, 2)
    v_f = v.index_select(0, index.reshape(-1)).view(shape).transpose(1, 2)
    bias = key_bias.to(torch.promote_types(key_bias.dtype, mask_dtype)).index_select(0, index.reshape(-1)).view(index.shape) if key_bias is not None \
        else torch.zeros(index.shape, device=k.device)
    empty = lengths == 0
    mask = torch.where(valid | empty.unsqueeze(1), bias, float("-inf"))
    return k_f, v_f, mask.to(mask_dtype).view(routing.numel(), 1, 1, width), empty


def frame_cross_attention_batched(q, k, v, frame_prompt, seg_start, seg_len, *, heads,
                                  tokens_per_frame, key_bias=None, scale=None):
    """SDPA with frames in the batch dimension.

    q: [B, F*LF, H*D]; k, v: [T, H*D]; frame_prompt: [B, F]; seg_start/seg_len: [P];
    key_bias: [T]. Returns [B, F*LF, H*D] in q's dtype.
    """
    batch, frames = frame_prompt.shape
    routing = frame_prompt.reshape(-1).long()
    k_f, v_f, mask, empty = gather_frame_keys(k, v, key_bias, routing, seg_start.long(), seg_len.long(),
                                              heads, bias_mask_dtype(q))
    out = F.scaled_dot_product_attention(frames_as_batch(q, frames, heads), k_f, v_f,
                                         attn_mask=mask, scale=scale)
    out = out.masked_fill(empty.view(-1, 1, 1, 1), 0)
    return frames_from_batch(out, batch)


def prompt_row_groups(routing: list[int]) -> dict[int, list[int]]:
    """Frame rows per prompt id, in row order."""
    groups: dict[int, list[int]] = {}
    for row, prompt in enumerate(routing):
        groups.setdefault(prompt, []).append(row)
    return groups


def consecutive_runs(rows: list[int]) -> list[slice]:
    """Sorted rows as slices of consecutive rows: [0, 1, 2, 21, 22] -> [0:3, 21:23]."""
    runs, first = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i] != rows[i - 1] + 1:
            runs.append(slice(rows[first], rows[i - 1] + 1))
            first = i
    return runs


# Up to this many runs of consecutive frames, a prompt's frames are read and written as slices
# (one SDPA per run, no copies); more scattered frames are gathered into one SDPA instead.
MAX_SLICED_RUNS = 8


def frame_cross_attention_grouped(q, k, v, frame_prompt, seg_start, seg_len, *, heads,
                                  tokens_per_frame, key_bias=None, scale=None):
    """One SDPA per distinct prompt over all frames that use it (no per-frame K/V copies).

    Shapes as in `frame_cross_attention_batched`. Frames with an empty segment give zeros. A prompt
    whose frames form a few runs of consecutive rows (the usual story: a scene spans neighbouring
    frames) reads and writes them as slices; scattered frames go through one gather and an in-place
    scatter.
    """
    batch, frames = frame_prompt.shape
    head_dim = q.shape[-1] // heads
    q_frames = frames_as_batch(q, frames, heads)
    out = torch.zeros_like(q_frames)
    starts, lengths = seg_start.tolist(), seg_len.tolist()
    for prompt, rows in prompt_row_groups(frame_prompt.reshape(-1).tolist()).items():
        size = lengths[prompt]
        if size == 0:
            continue
        keys = slice(starts[prompt], starts[prompt] + size)
        kp = k[keys].reshape(1, size, heads, head_dim).transpose(1, 2).expand(len(rows), -1, -1, -1)
        vp = v[keys].reshape(1, size, heads, head_dim).transpose(1, 2).expand(len(rows), -1, -1, -1)
        mask = None if key_bias is None else key_bias[keys].to(bias_mask_dtype(q)).view(1, 1, 1, size)
        runs = consecutive_runs(rows)
        if len(runs) <= MAX_SLICED_RUNS:
            for run in runs:
                count = run.stop - run.start
                out[run] = F.scaled_dot_product_attention(q_frames[run], kp[:count], vp[:count],
                                                          attn_mask=mask, scale=scale)
            continue
        index = torch.tensor(rows, device=q.device)
        attended = F.scaled_dot_product_attention(q_frames.index_select(0, index), kp, vp,
                                                  attn_mask=mask, scale=scale)
        out.index_copy_(0, index, attended)
    return frames_from_batch(out, batch)
