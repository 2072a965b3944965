"""Plain-torch oracle for frame-level cross-attention (run it in float64 in tests).

A literal loop over batch items and frames with an explicit softmax: no fused kernels, no masks,
nothing clever, so it can be trusted as the ground truth for every fast backend.
"""

from __future__ import annotations

import math

import torch


def frame_cross_attention_reference(q, k, v, frame_prompt, seg_start, seg_len, *, heads,
                                    tokens_per_frame, key_bias=None, scale=None):
    """Per-frame loop with an explicit softmax, computed in q's dtype.

    q: [B, F*LF, H*D]; k, v: [T, H*D]; frame_prompt: [B, F]; seg_start/seg_len: [P];
    key_bias: [T] added to the scores of its keys (natural-log units). An empty segment gives zeros.
    Returns [B, F*LF, H*D].
    """
    batch, _, channels = q.shape
    head_dim = channels // heads
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    out = torch.zeros_like(q)
    for z in range(batch):
        for f in range(frame_prompt.shape[1]):
            prompt = int(frame_prompt[z, f])
            start, size = int(seg_start[prompt]), int(seg_len[prompt])
            if size == 0:
                continue
            rows = slice(f * tokens_per_frame, (f + 1) * tokens_per_frame)
            qf = q[z, rows].reshape(tokens_per_frame, heads, head_dim).transpose(0, 1)
            kf = k[start:start + size].reshape(size, heads, head_dim).transpose(0, 1)
            vf = v[start:start + size].reshape(size, heads, head_dim).transpose(0, 1)
            scores = qf @ kf.transpose(1, 2) * scale
            if key_bias is not None:
                scores = scores + key_bias[start:start + size].to(scores.dtype)
            attended = torch.softmax(scores, dim=-1) @ vf
            out[z, rows] = attended.transpose(0, 1).reshape(tokens_per_frame, channels)
    return out
