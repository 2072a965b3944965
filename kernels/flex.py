"""Frame-level cross-attention through PyTorch FlexAttention (imported lazily; torch >= 2.5).

The routing becomes a document-style mask over the packed keys: query row i of batch item b lies in
frame i // LF, whose prompt p owns keys [seg_start[p], seg_start[p] + seg_len[p]). The pad-row
bias is a `score_mod`. Fully masked blocks are skipped by the block mask, so each query block only
visits the blocks of its own prompt.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

_BLOCK_MASKS: OrderedDict = OrderedDict()
_BLOCK_MASK_CACHE_SIZE = 16
_COMPILED = {}


def flex_module():
    """The FlexAttention module, or ImportError with the reason."""
    from torch.nn.attention import flex_attention as module
    return module


def _flex_function(compiled: bool):
    module = flex_module()
    if not compiled:
        return module.flex_attention
    if "fn" not in _COMPILED:
        _COMPILED["fn"] = torch.compile(module.flex_attention, dynamic=False)
    return _COMPILED["fn"]


def _routing_key(q, k, frame_prompt, seg_start, seg_len, tokens_per_frame):
    """Cache key of one routing layout (one host sync for the small tables)."""
    return (str(q.device), q.shape[0], q.shape[1], k.shape[0], tokens_per_frame,
            tuple(frame_prompt.reshape(-1).tolist()), tuple(seg_start.tolist()), tuple(seg_len.tolist()))


def frame_block_mask(q, k, frame_prompt, seg_start, seg_len, tokens_per_frame):
    """Block mask for [B, F*LF] queries over [T] packed keys, cached per routing layout."""
    key = _routing_key(q, k, frame_prompt, seg_start, seg_len, tokens_per_frame)
    if key in _BLOCK_MASKS:
        _BLOCK_MASKS.move_to_end(key)
        return _BLOCK_MASKS[key]
    batch, length = q.shape[0], q.shape[1]
    frames = frame_prompt.shape[1]
    routing = frame_prompt.to(q.device, torch.long)
    starts = seg_start.to(q.device, torch.long)
    ends = starts + seg_len.to(q.device, torch.long)

    def same_prompt(b, h, q_idx, kv_idx):
        prompt = routing[b, torch.clamp(q_idx // tokens_per_frame, max=frames - 1)]
        return (kv_idx >= starts[prompt]) & (kv_idx < ends[prompt])

    mask = flex_module().create_block_mask(same_prompt, batch, None, length, k.shape[0], device=q.device)
    _BLOCK_MASKS[key] = mask
    if len(_BLOCK_MASKS) > _BLOCK_MASK_CACHE_SIZE:
        _BLOCK_MASKS.popitem(last=False)
    return mask


def frame_cross_attention_flex(q, k, v, frame_prompt, seg_start, seg_len, *, heads, tokens_per_frame,
                               key_bias=None, scale=None, compiled=True):
    """FlexAttention backend (compiled by default; `compiled=False` runs the slow eager path).

    q: [B, F*LF, H*D]; k, v: [T, H*D]; frame_prompt: [B, F]; seg_start/seg_len: [P]; key_bias: [T].
    Returns [B, F*LF, H*D] in q's dtype. Frames with an empty segment give zeros.
    """
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise RuntimeError("frame-attention backend 'flex' has no backward on CPU (torch FlexAttention "
                           "limitation); fix: use backend='grouped' or 'batched' for training on CPU")
    batch, length, channels = q.shape
    head_dim = channels // heads
    rows = k.shape[0]
    q_heads = q.reshape(batch, length, heads, head_dim).transpose(1, 2)
    k_heads = k.reshape(1, rows, heads, head_dim).transpose(1, 2).expand(batch, -1, -1, -1)
    v_heads = v.reshape(1, rows, heads, head_dim).transpose(1, 2).expand(batch, -1, -1, -1)
    score_mod = None
    if key_bias is not None:
        bias = key_bias.to(q.device, torch.float32)

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + bias[kv_idx]

    block_mask = frame_block_mask(q, k, frame_prompt, seg_start, seg_len, tokens_per_frame)
    out = _flex_function(compiled)(q_heads, k_heads, v_heads, score_mod=score_mod, block_mask=block_mask,
                                   scale=scale)
    return out.transpose(1, 2).reshape(batch, length, channels)
