"""Frame-level cross-attention: each latent frame's video tokens attend only to its own prompt.

Public API: `pack_prompts`, `PackedPrompts`, `frame_cross_attention` (backend="auto" or a named
backend), `BackendUnavailable`, `BACKENDS`, `available_backends`. Heavy backends (Triton,
FlexAttention) are imported lazily by the dispatcher, never at import time of this package.
"""

from .dispatch import BACKENDS, ENV_VAR, BackendUnavailable, auto_backend, unavailable_reason
from .frame_attention import (
    PackedPrompts,
    frame_cross_attention,
    frame_cross_attention_batched,
    frame_cross_attention_grouped,
    frame_cross_attention_reference,
    pack_prompts,
)


def available_backends(device="cpu") -> dict:
    """{backend name: None if it can run on `device`, else the reason and the fix}."""
    return {name: unavailable_reason(name, device) for name in BACKENDS}


__all__ = [
    "BACKENDS", "ENV_VAR", "BackendUnavailable", "PackedPrompts", "auto_backend", "available_backends",
    "frame_cross_attention", "frame_cross_attention_batched", "frame_cross_attention_grouped",
    "frame_cross_attention_reference", "pack_prompts",
]
