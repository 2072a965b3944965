"""The one module of the pack that imports ComfyUI.

It turns the pure core into ComfyUI objects: it checks that a MODEL is a native Wan, patches model
clones (object patches and wrappers only, never classes or modules), carries per-frame text through
a custom cond key, and encodes prompts with a CLIP. Node classes import it lazily when they run.
"""

from __future__ import annotations

import types

import comfy.conds
import comfy.ldm.wan.model as wan_model
import comfy.model_management
import comfy.patcher_extension
import torch

from ..kernels import frame_cross_attention
from .core.frame_text import FrameText, frame_text_from_schedule, pack_frame_text
from .validation import FrameLevelInputError

FRAME_TEXT_KEY = "fl_frame_text"          # cond-dict key set by FrameLevelTextEncode
PACKED_TEXT_OPTION = "fl_packed_text"      # per-call transformer_options key read by the attention
PATCH_KEY = "framelevel"                   # key of our wrappers on a ModelPatcher
SUPPORTED_WAN_CLASSES = (wan_model.WanModel, wan_model.VaceWanModel)
SUPPORTED_CROSS_ATTENTION = (wan_model.WanT2VCrossAttention, wan_model.WanI2VCrossAttention)


# ------------------------------------------------------------------------------------------------
# Model checks


def wan_diffusion_model(model_patcher, input_name: str = "model"):
    """The WanModel inside a MODEL, or a clear error naming what was connected instead."""
    diffusion_model = getattr(getattr(model_patcher, "model", None), "diffusion_model", None)
    if type(diffusion_model) not in SUPPORTED_WAN_CLASSES:
        raise FrameLevelInputError(
            input_name, type(diffusion_model).__name__,
            "frame-level nodes patch Wan 2.1/2.2 video models (WanModel, VACE) only",
            "load a Wan model with UNETLoader / Load Diffusion Model and connect that MODEL")
    for i, block in enumerate(diffusion_model.blocks):
        if not isinstance(block.cross_attn, SUPPORTED_CROSS_ATTENTION):
            raise FrameLevelInputError(
                input_name, type(block.cross_attn).__name__,
                f"block {i} uses a cross-attention this pack cannot route per frame",
                "use a Wan 2.1/2.2 T2V or I2V checkpoint")
    return diffusion_model


def is_frame_level_patched(model_patcher) -> bool:
    wrappers = model_patcher.wrappers.get(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, {})
    return PATCH_KEY in wrappers


# ------------------------------------------------------------------------------------------------
# Per-frame text through the cond machinery


class CONDFrameText:
    """Cond item holding one `FrameText` per batch row; batches with any other CONDFrameText."""

    def __init__(self, rows: list[FrameText]):
        self.rows = rows

    def _copy_with(self, rows):
        return CONDFrameText(rows)

    def process_cond(self, batch_size, **kwargs):
        if batch_size % len(self.rows):
            raise ValueError(f"cannot repeat {len(self.rows)} frame-text rows to batch {batch_size}")
        return CONDFrameText(self.rows * (batch_size // len(self.rows)))

    def can_concat(self, other):
        return isinstance(other, CONDFrameText)

    def concat(self, others):
        rows = list(self.rows)
        for other in others:
            rows.extend(other.rows)
        return FrameTextBatch(rows)

    def size(self):
        return [len(self.rows)]


class FrameTextBatch(list):
    """The concatenated frame text of one model call (one FrameText per batch row).

    A list subclass so BaseModel._apply_model passes it through; its items are not tensors."""


def _frame_text_rows(kwargs) -> list[FrameText] | None:
    """Frame text of one conditioning entry: its own, or its ordinary prompt on every frame."""
    noise = kwargs.get("noise")
    frames = noise.shape[2] if noise is not None and noise.ndim == 5 else None
    frame_text = kwargs.get(FRAME_TEXT_KEY)
    if frame_text is not None:
        if frames is None:
            return [frame_text]
        try:
            return [frame_text.fitted(frames)]
        except ValueError as err:
            raise FrameLevelInputError("positive/negative (frame prompts)", frame_text.latent_frames,
                                       str(err).split(". Fix:")[0],
                                       "match FrameLevelPromptSchedule's length to the latent's length") from None
    cross_attn = kwargs.get("cross_attn")
    if cross_attn is None or frames is None:
        return None
    return [FrameText.single(cross_attn[i], frames) for i in range(cross_attn.shape[0])]


def _make_extra_conds(previous):
    def extra_conds(**kwargs):
        out = previous(**kwargs)
        rows = _frame_text_rows(kwargs)
        if rows is not None:
            out[FRAME_TEXT_KEY] = CONDFrameText(rows)
        return out
    return extra_conds


def _window_frames(transformer_options, frames: int) -> list[int]:
    """Global latent indices of the frames in this call (a ComfyUI context window or all)."""
    window = transformer_options.get("context_window")
    if window is not None and window.dim == 2:
        return list(window.index_list)
    return list(range(frames))


def _frame_text_wrapper(executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                        transformer_options={}, **kwargs):
    """DIFFUSION_MODEL wrapper: embed the packed per-frame text once and hand it to the blocks."""
    rows = kwargs.pop(FRAME_TEXT_KEY, None)
    if rows is None:
        return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)
    if time_dim_concat is not None:
        raise FrameLevelInputError("positive", "time_dim_concat", "frame-level prompts cannot route "
                                   "frames appended along time", "remove the node that adds time_dim_concat")
    if len(rows) != x.shape[0]:
        raise RuntimeError(f"frame text has {len(rows)} rows for a batch of {x.shape[0]}")
    diffusion_model = executor.class_obj
    packed = pack_frame_text(rows, _window_frames(transformer_options, x.shape[2]))
    dtype = context.dtype if context is not None else x.dtype
    embedded = diffusion_model.text_embedding(packed.rows.to(device=x.device, dtype=dtype))
    packed = type(packed)(embedded, packed.seg_start.to(x.device), packed.seg_len.to(x.device),
                          packed.key_bias.to(x.device), packed.frame_prompt.to(x.device))
    patch = diffusion_model.patch_size
    tokens_per_frame = (-(-x.shape[3] // patch[1])) * (-(-x.shape[4] // patch[2]))
    options = dict(transformer_options)
    options[PACKED_TEXT_OPTION] = (packed, tokens_per_frame)
    return executor(x, timestep, context, clip_fea, time_dim_concat, options, **kwargs)


# ------------------------------------------------------------------------------------------------
# The frame-level cross-attention forward (bound to each block's cross_attn module of a clone)


def _make_cross_attention_forward(previous_forward):
    def forward(self, x, context, context_img_len=None, transformer_options={}, **kwargs):
        routed = transformer_options.get(PACKED_TEXT_OPTION)
        if routed is None:
            if context_img_len is not None:
                kwargs["context_img_len"] = context_img_len
            return previous_forward(x, context, transformer_options=transformer_options, **kwargs)
        packed, tokens_per_frame = routed
        q = self.norm_q(self.q(x))
        k = self.norm_k(self.k(packed.rows))
        v = self.v(packed.rows)
        out = frame_cross_attention(q, k, v, packed.frame_prompt, packed.seg_start, packed.seg_len,
                                    heads=self.num_heads, tokens_per_frame=tokens_per_frame,
                                    key_bias=packed.key_bias)
        if context_img_len:  # I2V: CLIP image tokens stay global, exactly as Wan attends to them
            context_img = context[:, :context_img_len]
            k_img = self.norm_k_img(self.k_img(context_img))
            v_img = self.v_img(context_img)
            out = out + wan_model.optimized_attention(q, k_img, v_img, heads=self.num_heads,
                                                      transformer_options=transformer_options)
        return self.o(out)
    return forward


def apply_frame_level_cross_attention(model_patcher):
    """A clone of `model_patcher` whose Wan cross-attention routes each latent frame to its prompt."""
    diffusion_model = wan_diffusion_model(model_patcher)
    patched = model_patcher.clone()
    if is_frame_level_patched(patched):
        return patched
    patched.add_object_patch("extra_conds", _make_extra_conds(patched.get_model_object("extra_conds")))
    for i, block in enumerate(diffusion_model.blocks):
        name = f"diffusion_model.blocks.{i}.cross_attn.forward"
        forward = _make_cross_attention_forward(patched.get_model_object(name))
        patched.add_object_patch(name, types.MethodType(forward, block.cross_attn))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY,
                                 _frame_text_wrapper)
    return patched


# ------------------------------------------------------------------------------------------------
# Text encoding


def encode_prompt(clip, text: str) -> torch.Tensor:
    """One prompt through a ComfyUI CLIP: [L, C] context on the CPU (Wan pads with zero rows)."""
    conditioning = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    return conditioning[0][0][0].to(comfy.model_management.intermediate_device())


def encode_frame_text(clip, schedule) -> list:
    """CONDITIONING carrying the schedule's per-frame text; each distinct prompt encoded once."""
    frame_text = frame_text_from_schedule(schedule, lambda prompt: encode_prompt(clip, prompt))
    first = frame_text.contexts[0].unsqueeze(0)  # what a model without the patch would see
    return [[first, {"pooled_output": None, FRAME_TEXT_KEY: frame_text}]]


def conditioning_frame_text(conditioning) -> FrameText | None:
    for _, values in conditioning:
        if FRAME_TEXT_KEY in values:
            return values[FRAME_TEXT_KEY]
    return None
