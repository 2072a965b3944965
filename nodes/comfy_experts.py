"""Wan 2.2's two experts as one ComfyUI GUIDER (glue; the rule itself is `core/experts.py`).

Part of the pack's ComfyUI glue (with `comfy_adapter.py`, the only modules that import comfy).

`WanExpertsGuider` is a `CFGGuider` over the high-noise expert that also carries the low-noise
expert. Every SAMPLER runs through it: the pack's (Diffusion Forcing, PMWD, sliding window, FIFO,
which put per-frame timesteps in the call's options) and ComfyUI's own. For each model call it
reads the noise level of every frame, asks `choose_experts`, evaluates the expert(s) with each
one's own conditioning, cfg, patches and wrappers, and returns each frame's prediction from its
expert.

Each expert is prepared the way ComfyUI prepares a guider's model: its conditioning is encoded by
its own model (`extra_conds`, so each expert's own patches apply), its wrappers and hooks are
registered in its own model options, and it is loaded by `load_models_gpu` with ComfyUI's memory
estimate. Experts are loaded when a call first needs them (the high-noise one by ComfyUI's
`prepare_sampling`), so a synchronous schedule loads them one after the other as the official
two-sampler template does; a call that needs both loads both, and ComfyUI decides what stays on
the device. What a sampler adds to one call's options (our per-frame timesteps and wrappers,
`sample_sigmas`) reaches the low-noise expert through `rebase_options`. The low-noise expert's
OUTER_SAMPLE wrappers run around the run too (ComfyUI runs only the guider model's), each seeing
that expert as `executor.class_obj.model_patcher`.
"""

from __future__ import annotations

import collections
import dataclasses

import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.sampler_helpers
import comfy.samplers
import torch

from .comfy_adapter import PMWD_PATCH_KEY, is_frame_level_patched, wan_diffusion_model
from .comfy_versions import share_sampling_state
from .core.experts import ExpertSettings, choose_experts, combine_predictions
from .model_calls import call_levels, rebase_options
from .validation import FrameLevelInputError

HIGH, LOW = "high", "low"


@dataclasses.dataclass
class _ExpertRun:
    """One expert during one sampling run: its patcher, conditioning, options and loaded models."""

    patcher: object
    conds: dict
    options: dict
    models: list = dataclasses.field(default_factory=list)
    ready: bool = False     # conditioning encoded by this expert's model and pre_run done


def _prepared_run(patcher, original_conds) -> _ExpertRun:
    """What CFGGuider.sample does for its model, for the second expert: copied conds with hooks,
    cloned model options with the patcher's wrappers, callbacks and hooks registered."""
    conds = {key: [cond.copy() for cond in value] for key, value in original_conds.items()}
    comfy.samplers.preprocess_conds_hooks(conds)
    options = comfy.model_patcher.create_model_options_clone(patcher.model_options)
    comfy.sampler_helpers.prepare_model_patcher(patcher, conds, options)
    comfy.samplers.filter_registered_hooks_on_conds(conds, options)
    return _ExpertRun(patcher, conds, options)


class _ExpertView:
    """The guider as one expert's OUTER_SAMPLE wrappers expect to find it (`executor.class_obj`):
    that expert's patcher, options and conditioning; everything else is the guider's."""

    def __init__(self, guider, run: _ExpertRun):
        self._guider = guider
        self.model_patcher, self.model_options, self.conds = run.patcher, run.options, run.conds

    def __getattr__(self, name):
        return getattr(self._guider, name)


class WanExpertsGuider(comfy.samplers.CFGGuider):
    """CFG guider over Wan 2.2's high-noise expert (`model_patcher`) that hands every frame below
    `settings.boundary` to the low-noise expert (see the module docstring)."""

    def __init__(self, high, low, settings: ExpertSettings):
        super().__init__(high)
        self.low_patcher = low
        self.settings = settings
        self.cfg = settings.cfg_high
        self.calls = collections.Counter()   # model calls per kind: high, low, mixed (last run)
        self._low = None
        self._sample_args = None
        self._loaded: tuple[str, ...] = ()

    def set_cfg(self, cfg):
        self.settings = dataclasses.replace(self.settings, cfg_high=cfg)
        self.cfg = cfg

    # -- a run: the low-noise expert is prepared beside the high-noise one -------------------------

    def outer_sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                     disable_pbar=False, seed=None, **newer):
        """`newer`: what the running CFGGuider passes beyond 0.3.64's arguments (`latent_shapes`
        since 0.33, see comfy_versions.NEWER_SAMPLING_KEYWORDS), forwarded unchanged."""
        self.calls = collections.Counter()
        self._low = _prepared_run(self.low_patcher, self.original_conds)
        self._loaded = (HIGH,)   # prepare_sampling (in CFGGuider.outer_sample) loads the high-noise expert
        device = self.model_patcher.load_device
        comfy.samplers.cast_to_load_options(self._low.options, device=device, dtype=self.low_patcher.model_dtype())
        try:
            return self._with_low_outer_wrappers(super().outer_sample)(
                noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, **newer)
        finally:
            self._finish_low()

    def _with_low_outer_wrappers(self, outer_sample):
        """The low-noise expert's OUTER_SAMPLE wrappers (ComfyUI ran only the high-noise one's) around
        the run, as its own KSamplerAdvanced would run them: checks such as the frame-level patch's
        guard then hold for both experts before the first step."""
        wrappers = comfy.patcher_extension.get_all_wrappers(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE,
                                                            self._low.options, is_model_options=True)
        executor = comfy.patcher_extension.WrapperExecutor.new_class_executor(
            outer_sample, _ExpertView(self, self._low), wrappers)
        return executor.execute

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar,
                     seed, **newer):
        processed = latent_image
        if latent_image is not None and torch.count_nonzero(latent_image) > 0:
            processed = self.inner_model.process_latent_in(latent_image)
        self._sample_args = (noise, device, processed, denoise_mask, seed, newer)
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                    disable_pbar, seed, **newer)

    def _finish_low(self):
        run, self._low, self._sample_args = self._low, None, None
        comfy.samplers.cast_to_load_options(run.options, device=self.low_patcher.offload_device)
        if run.ready:
            self.low_patcher.cleanup()
            comfy.sampler_helpers.cleanup_models(run.conds, run.models)
        self.low_patcher.restore_hook_patches()

    # -- loading: the experts a call needs, through ComfyUI's memory management ----------------------

    def _expert_models(self, name: str) -> list:
        if name == HIGH:
            return [self.model_patcher] + list(self.loaded_models)
        run = self._low
        if not run.models:
            extra, _ = comfy.sampler_helpers.get_additional_models(run.conds, self.low_patcher.model_dtype())
            run.models = extra + self.low_patcher.get_nested_additional_models()
        return [self.low_patcher] + run.models

    def _load(self, names: tuple[str, ...]) -> None:
        if names == self._loaded:
            return
        noise = self._sample_args[0]
        models, required, minimum = [], 0, 0
        for name in names:
            patcher, conds = (self.model_patcher, self.conds) if name == HIGH else (self.low_patcher, self._low.conds)
            memory, least = comfy.sampler_helpers.estimate_memory(patcher, noise.shape, conds)
            models += self._expert_models(name)
            required, minimum = max(required, memory), max(minimum, least)
        comfy.model_management.load_models_gpu(models, memory_required=required, minimum_memory_required=minimum)
        self._loaded = names
        if LOW in names and not self._low.ready:
            self._encode_low_conds()

    def _encode_low_conds(self):
        """The low-noise expert's conditioning, encoded by its own (now loaded and patched) model."""
        noise, device, latent_image, denoise_mask, seed, newer = self._sample_args
        run = self._low
        share_sampling_state(self.low_patcher.model, newer)
        run.conds = comfy.samplers.process_conds(self.low_patcher.model, noise, run.conds, device, latent_image,
                                                 denoise_mask, seed, **newer)
        self.low_patcher.pre_run()
        run.ready = True

    # -- one model call ----------------------------------------------------------------------------

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        transformer_options = model_options.get("transformer_options", {})
        choice = choose_experts(call_levels(transformer_options, x, timestep), self.settings)
        self._load(tuple(name for name, run in ((HIGH, choice.run_high), (LOW, choice.run_low)) if run))
        high = low = None
        if choice.run_high:
            high = comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                                    self.conds.get("positive"), self.settings.cfg_high,
                                                    model_options=model_options, seed=seed)
        if choice.run_low:
            run = self._low
            options = rebase_options(model_options, self.model_options, run.options)
            low = comfy.samplers.sampling_function(self.low_patcher.model, x, timestep, run.conds.get("negative"),
                                                   run.conds.get("positive"), self.settings.cfg_low,
                                                   model_options=options, seed=seed)
        self.calls["mixed" if choice.mixed else HIGH if choice.run_high else LOW] += 1
        return combine_predictions(choice, high, low)


def pmwd_patch_options(model_patcher):
    """The window settings (PMWDOptions) of the PMWD model patch on `model_patcher`, or None."""
    wrappers = model_patcher.wrappers.get(comfy.patcher_extension.WrappersMP.APPLY_MODEL, {}).get(PMWD_PATCH_KEY)
    return getattr(wrappers[-1], "pmwd_options", None) if wrappers else None


def _check_pair(high, low) -> None:
    wan_diffusion_model(high, "model_high_noise")
    wan_diffusion_model(low, "model_low_noise")
    channels = [m.model.diffusion_model.patch_embedding.weight.shape[1] for m in (high, low)]
    formats = [type(m.model.latent_format).__name__ for m in (high, low)]
    if channels[0] != channels[1] or formats[0] != formats[1]:
        raise FrameLevelInputError(
            "model_low_noise", f"{formats[1]} latent, {channels[1]} input channels",
            f"does not pair with model_high_noise ({formats[0]} latent, {channels[0]} input channels)",
            "connect the two experts of one Wan 2.2 model (both T2V or both I2V)")
    if is_frame_level_patched(high) != is_frame_level_patched(low):
        patched = "model_high_noise" if is_frame_level_patched(high) else "model_low_noise"
        raise FrameLevelInputError(
            "model_high_noise / model_low_noise", f"only {patched} has FrameLevelCrossAttention",
            "frame-level prompts would reach one expert only", "apply FrameLevelCrossAttention to both experts")
    if pmwd_patch_options(high) != pmwd_patch_options(low):
        raise FrameLevelInputError(
            "model_high_noise / model_low_noise",
            f"PMWD {pmwd_patch_options(high)} vs {pmwd_patch_options(low)}",
            "the experts carry different FrameLevelPMWDModel windows (or only one has them)",
            "apply FrameLevelPMWDModel with the same settings to both experts, or to neither")


def experts_guider(high, low, positive, negative, settings: ExpertSettings) -> WanExpertsGuider:
    """A GUIDER running `high` at and above `settings.boundary` and `low` below it; checks the pair."""
    _check_pair(high, low)
    guider = WanExpertsGuider(high, low, settings)
    guider.set_conds(positive, negative)
    return guider
