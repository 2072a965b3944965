"""The one module of the pack that imports ComfyUI.

It turns the pure core into ComfyUI objects: it checks that a MODEL is a native Wan, patches model
clones (object patches and wrappers only, never classes or modules), carries per-frame text through
a custom cond key, and encodes prompts with a CLIP. Node classes import it lazily when they run.
"""

from __future__ import annotations

import dataclasses
import logging
import types

import comfy.ldm.modules.attention
import comfy.ldm.wan.model as wan_model
import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from ..kernels.processor import routed_cross_attention
from .comfy_versions import extra_video_token_inputs, free_memory, image_token_attention_options
from .core.executor import ExecutorOptions, execute_plan, windows_per_batch
from .core.frame_text import frame_text_from_schedule, pack_frame_text
from .core.fusion import evaluate_windows, gather_windows
from .core.per_frame_sigma import anchors_from_mask, per_frame_x0, reference_sigmas
from .core.plan import initial_latents, summarize_plan
from .core.windows import PMWDOptions, pmwd_windows
from .model_calls import (
    FRAME_COUNT_OPTION,
    FRAME_INDEX_OPTION,
    FRAME_SIGMAS_OPTION,
    FRAME_TEXT_KEY,
    FRAME_TIMESTEPS_OPTION,
    PACKED_TEXT_OPTION,
    CONDFrameText,
    call_conditioning,
    call_frames,
    call_timesteps,
    check_pmwd_call,
    check_pmwd_layout,
    describe_patch,
    foreign_patch,
    frame_text_rows,
    mark_ours,
    options_for_call,
    patch_owner,
    progress_reporter,
    reaches_ours,
    repeat_rows,
    tokens_per_frame,
    window_transformer_options,
    window_value,
)
from .validation import FrameLevelInputError

PATCH_KEY = "framelevel"                   # key of our wrappers on a ModelPatcher
TIMESTEP_WRAPPER_KEY = "framelevel_timesteps"   # per-call wrappers of our samplers
CONDITIONING_WRAPPER_KEY = "framelevel_conditioning"
PMWD_PATCH_KEY = "framelevel_pmwd"         # key of the PMWD model patch's wrappers
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


def _make_extra_conds(previous):
    def extra_conds(**kwargs):
        out = previous(**kwargs)
        rows = frame_text_rows(kwargs)
        if rows is not None:
            out[FRAME_TEXT_KEY] = CONDFrameText(rows)
        return out
    return extra_conds


def _frame_timestep_wrapper(executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                            transformer_options=None, **kwargs):
    """DIFFUSION_MODEL wrapper of our samplers: the model sees each frame's own timestep [B, F]."""
    transformer_options = transformer_options if transformer_options is not None else {}
    timestep = call_timesteps(transformer_options, x, timestep)
    return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)


def _frame_conditioning_wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None,
                                transformer_options=None, **kwargs):
    """APPLY_MODEL wrapper of our samplers: per-latent conditioning cut to the call's latent frames."""
    transformer_options = transformer_options if transformer_options is not None else {}
    kwargs = {key: call_conditioning(value, transformer_options, x) for key, value in kwargs.items()}
    return executor(x, t, call_conditioning(c_concat, transformer_options, x), c_crossattn, control,
                    transformer_options, **kwargs)


def _frame_text_wrapper(executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                        transformer_options=None, **kwargs):
    """DIFFUSION_MODEL wrapper: embed the packed per-frame text once and hand it to the blocks."""
    transformer_options = transformer_options if transformer_options is not None else {}
    rows = kwargs.pop(FRAME_TEXT_KEY, None)
    if rows is None:
        return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)
    if time_dim_concat is not None:
        raise FrameLevelInputError("positive", "time_dim_concat", "frame-level prompts cannot route "
                                   "frames appended along time", "remove the node that adds time_dim_concat")
    _refuse_extra_video_tokens(executor.class_obj, {"positive/negative": [kwargs]})
    if len(rows) != x.shape[0]:
        raise RuntimeError(f"frame text has {len(rows)} rows for a batch of {x.shape[0]}")
    diffusion_model = executor.class_obj
    packed = pack_frame_text(rows, call_frames(transformer_options, x.shape[2]))
    dtype = context.dtype if context is not None else x.dtype
    embedded = diffusion_model.text_embedding(packed.rows.to(device=x.device, dtype=dtype))
    packed = type(packed)(embedded, packed.seg_start.to(x.device), packed.seg_len.to(x.device),
                          packed.key_bias.to(x.device), packed.frame_prompt.to(x.device))
    options = dict(transformer_options)
    options[PACKED_TEXT_OPTION] = (packed, tokens_per_frame(x, diffusion_model.patch_size))
    return executor(x, timestep, context, clip_fea, time_dim_concat, options, **kwargs)


# ------------------------------------------------------------------------------------------------
# The frame-level cross-attention forward (bound to each block's cross_attn module of a clone)


def _make_cross_attention_forward(previous_forward):
    def forward(self, x, context, context_img_len=None, transformer_options=None, **kwargs):
        transformer_options = transformer_options if transformer_options is not None else {}
        routed = transformer_options.get(PACKED_TEXT_OPTION)
        if routed is None:
            if context_img_len is not None:
                kwargs["context_img_len"] = context_img_len
            return previous_forward(x, context, transformer_options=transformer_options, **kwargs)
        packed, per_frame = routed
        image_tokens = context[:, :context_img_len] if context_img_len else None  # I2V: stay global

        def attend(q, k, v):
            return wan_model.optimized_attention(
                q, k, v, heads=self.num_heads, transformer_options=transformer_options,
                **image_token_attention_options(comfy.ldm.modules.attention, self))
        return routed_cross_attention(self, x, packed, heads=self.num_heads, tokens_per_frame=per_frame,
                                      image_tokens=image_tokens, attend=attend)
    return mark_ours(forward)


def _cross_attention_names(diffusion_model) -> list[str]:
    return [f"diffusion_model.blocks.{i}.cross_attn.forward" for i in range(len(diffusion_model.blocks))]


def _refuse_foreign_cross_attention(model_patcher, names) -> None:
    """Another pack's cross-attention patch under ours would be bypassed for routed frames."""
    for name in names:
        existing = model_patcher.object_patches.get(name)
        if existing is not None and not reaches_ours(existing):
            owner, way_out = patch_owner(existing)
            raise FrameLevelInputError(
                "model", describe_patch(existing),
                f"{name} is already patched by {owner}; FrameLevelCrossAttention replaces "
                "cross-attention for frame-level prompts and would bypass that patch",
                way_out or "apply FrameLevelCrossAttention first and the other patch after it (if it wraps the "
                "forward it finds, both work), or remove one of the two")


_EXTRA_TOKEN_CALL_KEYS = {"reference_latent": "reference_latents", "context_latents": "context_latents"}


def _refuse_extra_video_tokens(diffusion_model, conds: dict) -> None:
    """Extra video tokens (a reference or in-context latent) belong to no latent frame, so the
    frame-level cross-attention cannot route them: refused with one line naming the input.
    `conds` holds cond dicts by name, with ComfyUI's conditioning keys or the model call's own."""
    named = {name: [{_EXTRA_TOKEN_CALL_KEYS.get(key, key): value for key, value in item.items()} for item in items]
             for name, items in conds.items()}
    found = extra_video_token_inputs(named, getattr(diffusion_model, "ref_conv", None) is not None)
    if found:
        raise FrameLevelInputError(
            "positive/negative", "; ".join(found),
            "adds video tokens that belong to no latent frame, which frame-level cross-attention cannot route",
            "remove that node from the conditioning, or sample without FrameLevelCrossAttention")


def _check_patches_before_sampling(names):
    """OUTER_SAMPLE wrapper: every object patch we installed is still ours or wraps ours, and the
    conditioning adds no video tokens the routing cannot place."""
    def outer_sample(executor, *args, **kwargs):
        guider = executor.class_obj
        _refuse_extra_video_tokens(guider.model_patcher.model.diffusion_model, getattr(guider, "original_conds", None)
                                   or getattr(guider, "conds", None) or {})
        found = foreign_patch(guider.model_patcher.object_patches, names)
        if found is not None:
            name, patch = found
            owner, way_out = patch_owner(patch)
            raise FrameLevelInputError(
                "model", describe_patch(patch),
                f"{name} of the frame-level patched model was replaced by {owner}, which does not "
                "call FrameLevelCrossAttention's patch, so frame-level prompts would be silently lost",
                way_out or "apply the other patch before FrameLevelCrossAttention, or use a version of it that "
                "wraps the forward it finds (model.get_model_object)")
        return executor(*args, **kwargs)
    return outer_sample


def apply_frame_level_cross_attention(model_patcher):
    """A clone of `model_patcher` whose Wan cross-attention routes each latent frame to its prompt.

    Another pack's object patch of the same cross-attention is refused here (ours would bypass
    it); one applied after ours must wrap ours, or sampling stops before the first step."""
    diffusion_model = wan_diffusion_model(model_patcher)
    patched = model_patcher.clone()
    if is_frame_level_patched(patched):
        return patched
    names = _cross_attention_names(diffusion_model)
    _refuse_foreign_cross_attention(patched, names)
    patched.add_object_patch("extra_conds", mark_ours(_make_extra_conds(patched.get_model_object("extra_conds"))))
    for name, block in zip(names, diffusion_model.blocks):
        forward = _make_cross_attention_forward(patched.get_model_object(name))
        patched.add_object_patch(name, types.MethodType(forward, block.cross_attn))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY,
                                 _frame_text_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, PATCH_KEY,
                                 _check_patches_before_sampling(["extra_conds", *names]))
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


# ------------------------------------------------------------------------------------------------
# Samplers: any plan of the pure core, run through ComfyUI's guider (CFG, LoRA, patches, previews)


def comfy_denoiser(model, extra_args: dict, frames: int):
    """The core's denoiser(x, sigma [N, L], frame_index [N, L]) -> x0 over a k-diffusion model,
    for a video of `frames` latent frames."""
    model_sampling = model.inner_model.inner_model.model_sampling
    wrappers = {comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL: {TIMESTEP_WRAPPER_KEY: _frame_timestep_wrapper},
                comfy.patcher_extension.WrappersMP.APPLY_MODEL: {CONDITIONING_WRAPPER_KEY: _frame_conditioning_wrapper}}

    def denoise(x, sigma, frame_index):
        sigma = sigma.to(x.device)
        sigma_ref = reference_sigmas(sigma)
        args = dict(extra_args)
        frame_data = {FRAME_TIMESTEPS_OPTION: model_sampling.timestep(sigma).float(), FRAME_SIGMAS_OPTION: sigma,
                      FRAME_INDEX_OPTION: frame_index, FRAME_COUNT_OPTION: frames}
        args["model_options"] = options_for_call(extra_args.get("model_options", {}), frame_data, wrappers)
        denoised = model(x, sigma_ref.to(x.dtype), **args)
        return per_frame_x0(x, denoised, sigma, sigma_ref)
    return denoise


def auto_windows_per_batch(base_model, window_shape, device) -> int:
    """Windows per model call when the user leaves it to us (max_windows_per_batch 0).

    On a GPU: as many windows of `window_shape` ([rows, C, W, H, W]) as fit in free memory by
    ComfyUI's own activation estimate (BaseModel.memory_required), so one call fills the device.
    On the CPU: one. A CPU has no idle parallel units for a bigger batch to fill; stacking windows
    only enlarges the working set (tests/bench_sampling.py: 3 windows per call ran 1.18-1.22x the
    time of one per call on 1 and 2 threads), and memory stays at one window's."""
    if torch.device(device).type == "cpu":
        return 1
    free = free_memory(base_model, device, comfy.model_management.get_free_memory)
    return windows_per_batch(free, max(1, int(base_model.memory_required(list(window_shape)))))


def _with_auto_batching(options: ExecutorOptions, plan, model, x) -> ExecutorOptions:
    if options.max_windows_per_batch or not plan.windows[0]:
        return options
    window = max(w.length for w in plan.windows[0])
    rows = 2 * x.shape[0]   # cond and uncond are batched together by ComfyUI when they fit
    per_call = auto_windows_per_batch(model.inner_model.inner_model, (rows, x.shape[1], window, *x.shape[3:]),
                                      x.device)
    logging.info("FrameLevel: up to %d window(s) per model call (automatic)", per_call)
    return dataclasses.replace(options, max_windows_per_batch=per_call)


@torch.no_grad()   # as every k-diffusion sampler: no autograd graph keeps window activations alive
def sample_plan(model, x, sigmas, extra_args=None, callback=None, disable=None, *, planner,
                options: ExecutorOptions = ExecutorOptions()):
    """k-diffusion-style sampler function running `planner(sigmas, frames, anchors) -> Plan`.

    Anchors come from the latent's noise_mask (latent frames masked 0 are kept clean at sigma 0).
    max_windows_per_batch 0 means automatic (see auto_windows_per_batch).
    """
    extra_args = dict(extra_args or {})
    anchors = anchors_from_mask(extra_args.get("denoise_mask"))
    extra_args["denoise_mask"] = None   # anchors are held at sigma 0 by the plan, not re-noised by ComfyUI
    plan = planner(sigmas.detach().cpu(), x.shape[2], anchors)
    logging.info("FrameLevel sampler plan:\n%s", summarize_plan(plan))
    options = _with_auto_batching(options, plan, model, x)
    start = initial_latents(plan, model.noise, model.latent_image)
    return execute_plan(plan, comfy_denoiser(model, extra_args, x.shape[2]), start, options,
                        callback=progress_reporter(callback, len(sigmas) - 1),
                        interrupt_check=comfy.model_management.throw_exception_if_processing_interrupted)


def plan_sampler(planner, options: ExecutorOptions):
    """A ComfyUI SAMPLER (for SamplerCustomAdvanced and friends) running our plans."""
    return comfy.samplers.KSAMPLER(sample_plan, extra_options={"planner": planner, "options": options})


# ------------------------------------------------------------------------------------------------
# PMWD as a MODEL patch: every model evaluation of any sampler runs the K windows and fuses them


def _make_pmwd_apply_model(options: PMWDOptions, max_windows_per_batch: int):
    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                    **kwargs):
        transformer_options = transformer_options if transformer_options is not None else {}
        check_pmwd_call(transformer_options, control, kwargs)
        rows, frames = x.shape[0], x.shape[2]
        windows = pmwd_windows(frames, options)
        if len(windows) == 1:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        per_call = max_windows_per_batch or auto_windows_per_batch(
            executor.class_obj, (rows, x.shape[1], options.window, *x.shape[3:]), x.device)

        def evaluate(group):
            return executor(gather_windows(x, group), repeat_rows(t, len(group)),
                            window_value(c_concat, rows, frames, group),
                            window_value(c_crossattn, rows, frames, group), None,
                            window_transformer_options(transformer_options, rows, frames, group),
                            **{key: window_value(value, rows, frames, group) for key, value in kwargs.items()})
        return evaluate_windows(x, windows, per_call, evaluate,
                                comfy.model_management.throw_exception_if_processing_interrupted)[0]
    apply_model.pmwd_options = options
    return apply_model


def _make_pmwd_outer_sample(options: PMWDOptions):
    def outer_sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        logging.info("%s", check_pmwd_layout(tuple(noise.shape), options, max(len(sigmas) - 1, 0)))
        return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
    return outer_sample


def apply_pmwd_model_patch(model_patcher, options: PMWDOptions, max_windows_per_batch: int = 0):
    """A clone of `model_patcher` on which every model evaluation denoises the K PMWD windows
    (batched, `max_windows_per_batch` per call, 0 = automatic, see auto_windows_per_batch) and returns their fused
    prediction: stock samplers (euler, uni_pc, dpmpp_2m, ...) then run PMWD. Frame prompts reach
    each window by global latent index when the frame-level cross-attention patch is also applied."""
    wan_diffusion_model(model_patcher)
    patched = model_patcher.clone()
    wrappers = {comfy.patcher_extension.WrappersMP.APPLY_MODEL: _make_pmwd_apply_model(options, max_windows_per_batch),
                comfy.patcher_extension.WrappersMP.OUTER_SAMPLE: _make_pmwd_outer_sample(options)}
    for kind, wrapper in wrappers.items():
        patched.remove_wrappers_with_key(kind, PMWD_PATCH_KEY)   # a second patch replaces the first
        patched.add_wrapper_with_key(kind, PMWD_PATCH_KEY, wrapper)
    return patched


def model_sampling_of(model_patcher):
    return model_patcher.get_model_object("model_sampling")


def calculate_sigmas(model_patcher, scheduler: str, steps: int) -> torch.Tensor:
    return comfy.samplers.calculate_sigmas(model_sampling_of(model_patcher), scheduler, steps).cpu()


def scheduler_names() -> list[str]:
    return list(comfy.samplers.SCHEDULER_NAMES)


def sample_with_sampler(model_patcher, sampler, sigmas, positive, negative, cfg: float, latent: dict, seed: int):
    """What SamplerCustom does: noise from the seed, CFG guider, latent previews, progress bar."""
    import latent_preview

    latent_image = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model_patcher, sigmas.shape[-1] - 1)
    samples = comfy.sample.sample_custom(model_patcher, noise, cfg, sampler, sigmas, positive, negative,
                                         latent_image, noise_mask=latent.get("noise_mask"), callback=callback,
                                         disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    out = dict(latent)
    out.pop("noise_mask", None)
    out["samples"] = samples
    return out


def encode_image_latent(vae, image: torch.Tensor, latent_hw) -> torch.Tensor:
    """VAE-encode one IMAGE frame [1, H, W, C] to one latent frame [1, C, 1, h, w], resizing it
    (bilinear, centre crop) to the latent's pixel size first."""
    height, width = latent_hw[0] * 8, latent_hw[1] * 8
    if tuple(image.shape[1:3]) != (height, width):
        image = comfy.utils.common_upscale(image.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)
    return vae.encode(image[:, :, :, :3])
