"""Every difference between the ComfyUI versions the pack runs on, in one place.

The pack supports ComfyUI 0.3.64 (October 2025) to the newest release; its tests run on 0.3.64 and
0.33.0 (August 2026) and the newest files are read (docs/comfyui_versions.md lists every touchpoint
and its status on each). Where ComfyUI changed something the pack touches, the difference is
handled here, named with the version that introduced it, and read from the running ComfyUI's own
objects (an attribute, a keyword it passes) rather than from a version number, so a release in
between behaves as its code does. The glue modules (comfy_adapter, comfy_experts, comfy_headless,
comfy_nodes, server_routes) call these; nothing else in the pack branches on a ComfyUI version.

This module itself imports no ComfyUI: it works on the objects the glue hands it, so it is tested
without a checkout as well as under both trees.
"""

from __future__ import annotations

from collections.abc import Callable

# ------------------------------------------------------------------------------------------------
# Context windows (comfy/context_windows.py)


def context_window_frames(window) -> list[int]:
    """Global latent indices of the frames a ComfyUI context window hands the model, in order.

    0.33 (the causal window fix of IndexListContextHandler, on by default): every window after the
    first gets the latent just before it prepended (`causal_anchor_index`) and stripped again after
    the call, so the model sees one frame more than `index_list` names. 0.3.64 has neither."""
    anchor = getattr(window, "causal_anchor_index", None)
    frames = list(window.index_list)
    return [anchor, *frames] if anchor is not None and anchor >= 0 else frames


# ------------------------------------------------------------------------------------------------
# Sampling (comfy/samplers.py)

# CFGGuider.outer_sample / inner_sample and comfy.samplers.process_conds take `latent_shapes` since
# late 2025 (0.33 has it; several latents sampled as one packed tensor, LTX-2's audio + video). A
# guider subclass accepts whatever newer keywords its base passes (**newer) and forwards them
# unchanged, to its base and to process_conds: on 0.3.64 there are none.
NEWER_SAMPLING_KEYWORDS = ("latent_shapes",)


def free_memory(base_model, device, model_management_free: Callable) -> int:
    """Free memory on `device` for batching a model call, read the way the running ComfyUI reads it.

    0.33 (DynamicVRAM, comfy-aimdo): ModelPatcher.get_free_memory adds what the dynamic offloader
    can give back, and calc_cond_batch asks the model's current patcher for it. 0.3.64:
    comfy.model_management.get_free_memory (`model_management_free`)."""
    patcher = getattr(base_model, "current_patcher", None)
    reader = getattr(patcher, "get_free_memory", None)
    return int(reader(device) if reader is not None else model_management_free(device))


# ------------------------------------------------------------------------------------------------
# Attention (comfy/ldm/modules/attention.py, comfy/ldm/wan/model.py)

# Keywords the running ComfyUI's own WanI2VCrossAttention passes to optimized_attention for the
# image (CLIP-vision) tokens, which our routed forward keeps global. 0.33: low_precision_attention
# False (sage attention gives NaNs there and is no faster on so few tokens). 0.3.64's attention
# functions take **kwargs and ignore it, so passing it there changes nothing.
IMAGE_TOKEN_ATTENTION_OPTIONS = {"low_precision_attention": False}


def image_token_attention_options(attention_module, cross_attention) -> dict:
    """Keywords for optimized_attention on a Wan cross-attention's image tokens, as the running
    ComfyUI's own forward passes them: IMAGE_TOKEN_ATTENTION_OPTIONS, and since 0.38 the module's
    own `comfy_attention` as `preferred_attention` (a ComfyAttention a checkpoint can configure, e.g.
    int8 attention; the attention wrapper pops it before any backend sees it). Read from
    `attention_module` (comfy.ldm.modules.attention): older versions have no ComfyAttention, and
    their attention overrides would receive an unknown keyword."""
    options = dict(IMAGE_TOKEN_ATTENTION_OPTIONS)
    preferred = getattr(cross_attention, "comfy_attention", None)
    if preferred is not None and hasattr(attention_module, "ComfyAttention"):
        options["preferred_attention"] = preferred
    return options


# ------------------------------------------------------------------------------------------------
# Extra video tokens appended or prepended to a Wan call (comfy/ldm/wan/model.py)

# Conditioning keys (as set on CONDITIONING by nodes) whose latents Wan turns into extra video
# tokens beside the video's own: `reference_latents` (ReferenceLatent; Wan models with ref_conv,
# 0.3.64 and later, tokens prepended) and `context_latents` (in-context reference, 0.33 and later,
# tokens appended). Frame-level cross-attention routes tokens by latent frame and cannot place them.
EXTRA_VIDEO_TOKEN_KEYS = {
    "reference_latents": "ReferenceLatent (reference tokens prepended to the video)",
    "context_latents": "in-context reference latents (tokens appended to the video, ComfyUI 0.33+)",
}


def extra_video_token_inputs(conds: dict, model_has_ref_conv: bool) -> list[str]:
    """Which extra-token inputs the guider's conditioning carries ({"positive": [cond dicts], ...}):
    each as 'positive: what'; reference latents count only for a model that embeds them."""
    found = []
    for name, items in (conds or {}).items():
        for item in items or []:
            for key, what in EXTRA_VIDEO_TOKEN_KEYS.items():
                if item.get(key) is None or (key == "reference_latents" and not model_has_ref_conv):
                    continue
                entry = f"{name}: {what}"
                if entry not in found:
                    found.append(entry)
    return found


def share_sampling_state(model, newer: dict) -> None:
    """Give a second model sampled in the same run (Wan 2.2's low-noise expert) what the running
    CFGGuider.inner_sample stored on its own model. 0.33: `latent_shapes` (how several latents are
    packed into one tensor; None for a single video latent). 0.3.64: nothing."""
    if "latent_shapes" in newer:
        model.latent_shapes = newer["latent_shapes"]
