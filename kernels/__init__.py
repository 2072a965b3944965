"""Frame-level cross-attention: each latent frame's video tokens attend only to its own prompt.

Public API: `pack_prompts`, `PackedPrompts`, `frame_cross_attention`. Heavy backends (Triton,
FlexAttention) are imported lazily by the dispatcher.
"""

from .frame_attention import PackedPrompts, frame_cross_attention, pack_prompts

__all__ = ["PackedPrompts", "frame_cross_attention", "pack_prompts"]
