"""The one frame-level cross-attention processor of the pack.

Both the trainer's DiT (training/wan/model.py) and the ComfyUI patch of WanModel's cross-attention
(nodes/comfy_adapter.py) call :func:`routed_cross_attention` with their own attention module, so
the frame-level forward exists once. The module only needs Wan's submodules: ``q``, ``k``, ``v``,
``o``, ``norm_q``, ``norm_k`` and, for image-to-video models, ``k_img``, ``v_img``, ``norm_k_img``.
Submodules are called (``attn.k(rows)``), never their ``.weight``, so LoRA and low-VRAM weight
casting keep working.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .frame_attention import PackedPrompts, frame_cross_attention

# attend(q [B, Lq, H*D], k [B, Lk, H*D], v [B, Lk, H*D]) -> [B, Lq, H*D]: plain multi-head attention
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def common_dtype(q: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Under autocast the projections may come back in different dtypes: bring them to one."""
    dtype = torch.promote_types(q.dtype, others[0].dtype) if torch.is_autocast_enabled() else q.dtype
    return tuple(t.to(dtype) for t in (q, *others))


def routed_cross_attention(attn, x: torch.Tensor, packed: PackedPrompts, *, heads: int,
                           tokens_per_frame: int, image_tokens: torch.Tensor | None = None,
                           attend: Attend | None = None) -> torch.Tensor:
    """Wan cross-attention in which latent frame f attends only to its own prompt (paper eq. 1).

    x: [B, F*tokens_per_frame, D] video tokens; packed: the distinct prompts' rows, already through
    the model's ``text_embedding``, with the per-frame routing for these B rows and F frames.
    image_tokens: [B, L_img, D] I2V CLIP-vision tokens; they stay global (every frame attends to
    them, as in Wan), through ``attend``. Returns ``attn.o(...)`` of shape [B, F*tokens_per_frame, D].
    """
    q = attn.norm_q(attn.q(x))
    k = attn.norm_k(attn.k(packed.rows))   # once per block over the distinct prompts' rows
    v = attn.v(packed.rows)
    q, k, v = common_dtype(q, k, v)
    out = frame_cross_attention(q, k, v, packed.frame_prompt, packed.seg_start, packed.seg_len,
                                heads=heads, tokens_per_frame=tokens_per_frame, key_bias=packed.key_bias)
    if image_tokens is not None:
        out = out + image_attention(attn, q, image_tokens, attend)
    return attn.o(out)


def image_attention(attn, q: torch.Tensor, image_tokens: torch.Tensor, attend: Attend | None) -> torch.Tensor:
    """I2V: the queries attend to the CLIP-vision tokens through ``k_img``/``v_img``."""
    if attend is None:
        raise ValueError("image_tokens need `attend` (the model's own multi-head attention)")
    k_img = attn.norm_k_img(attn.k_img(image_tokens))
    return attend(q, k_img, attn.v_img(image_tokens))
