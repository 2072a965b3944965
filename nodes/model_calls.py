"""How the pack's patches shape one Wan model call, without ComfyUI.

`comfy_adapter` binds these pure pieces to ComfyUI's hooks; here they are plain functions over
tensors, dicts and lists so they can be tested without a ComfyUI checkout:

- cond batching: `CONDFrameText` (a cond item ComfyUI batches like its own) and `FrameTextBatch`;
- which global latent frames a call holds (`call_frames`), and the per-frame timesteps it sees
  (`call_timesteps`);
- the per-call options our samplers add (`options_for_call`), and per-latent conditioning (an
  I2V model's `c_concat`, the 5B's denoise mask) cut to the frames a call holds (`call_conditioning`);
- the noise level of every frame of a call (`call_levels`) and the options a second model (Wan 2.2's
  low-noise expert) needs for the same call (`rebase_options`);
- PMWD's window slicing of per-latent inputs (`window_value`, `window_transformer_options`), the
  checks before windowing a call (`check_pmwd_call`) and the layout text (`pmwd_layout`).
"""

from __future__ import annotations

import torch

from .comfy_versions import context_window_frames
from .core.frame_text import FrameText
from .core.fusion import gather_window_columns, gather_windows
from .core.per_frame_sigma import progress_step
from .core.windows import PMWDOptions, pmwd_windows
from .validation import FrameLevelInputError

FRAME_TEXT_KEY = "fl_frame_text"          # cond-dict key set by FrameLevelTextEncode
PACKED_TEXT_OPTION = "fl_packed_text"      # per-call transformer_options key read by the attention
FRAME_TIMESTEPS_OPTION = "fl_frame_timesteps"  # [N, L] per-frame timesteps set by our samplers
FRAME_INDEX_OPTION = "fl_frame_index"      # [N, L] global latent index of each frame (our samplers)
FRAME_SIGMAS_OPTION = "fl_frame_sigmas"    # [N, L] per-frame sigmas (timestep / 1000) set by our samplers
FRAME_COUNT_OPTION = "fl_video_frames"     # latent frames of the whole video (our samplers)
WRAPPERS_OPTION = "wrappers"               # ComfyUI's transformer_options key of per-call wrappers


# ------------------------------------------------------------------------------------------------
# Per-frame text through ComfyUI's cond machinery (duck-typed like comfy.conds.CONDRegular)


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


def frame_text_rows(cond_kwargs: dict) -> list[FrameText] | None:
    """Frame text of one conditioning entry (the kwargs ComfyUI hands to `extra_conds`): its own,
    fitted to the latent's length, or its ordinary prompt on every frame; None without either."""
    noise = cond_kwargs.get("noise")
    frames = noise.shape[2] if noise is not None and noise.ndim == 5 else None
    frame_text = cond_kwargs.get(FRAME_TEXT_KEY)
    if frame_text is not None:
        if frames is None:
            return [frame_text]
        try:
            return [frame_text.fitted(frames)]
        except ValueError as err:
            raise FrameLevelInputError("positive/negative (frame prompts)", frame_text.latent_frames,
                                       str(err).split(". Fix:")[0],
                                       "match FrameLevelPromptSchedule's length to the latent's length") from None
    cross_attn = cond_kwargs.get("cross_attn")
    if cross_attn is None or frames is None:
        return None
    return [FrameText.single(cross_attn[i], frames) for i in range(cross_attn.shape[0])]


# ------------------------------------------------------------------------------------------------
# What one call holds: frames and their timesteps


def _context_window_applies(window, columns: int, frames: int) -> bool:
    """True when a ComfyUI context window must still be cut from full-length per-frame data."""
    return window is not None and window.dim == 2 and columns != frames


def call_frames(transformer_options: dict, frames: int):
    """Global latent indices of the `frames` frames in this call: [N, L] from our samplers (cut to
    a ComfyUI context window if one is active), else a context window's index list, else 0..F-1."""
    window = transformer_options.get("context_window")
    index = transformer_options.get(FRAME_INDEX_OPTION)
    if index is not None:
        return index[:, context_window_frames(window)] if _context_window_applies(window, index.shape[1], frames) else index
    if window is not None and window.dim == 2:
        return context_window_frames(window)
    return list(range(frames))


def call_timesteps(transformer_options: dict, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """The timesteps the model sees for input `x` [N, C, L, H, W]: our samplers' per-frame
    timesteps [N, L] when set (cut to an active context window), else `timestep` unchanged.
    Rows whose frames are all at one level use Wan's cheaper [N] path (same result)."""
    per_frame = transformer_options.get(FRAME_TIMESTEPS_OPTION)
    if per_frame is None:
        return timestep
    window = transformer_options.get("context_window")
    if _context_window_applies(window, per_frame.shape[1], x.shape[2]):
        per_frame = per_frame[:, context_window_frames(window)]
    if per_frame.shape[1] != x.shape[2] or x.shape[0] % per_frame.shape[0]:
        raise RuntimeError(f"per-frame timesteps {tuple(per_frame.shape)} do not fit the model input "
                           f"{tuple(x.shape)}")
    timestep = per_frame.to(device=x.device, dtype=timestep.dtype).repeat(x.shape[0] // per_frame.shape[0], 1)
    if bool((timestep == timestep[:, :1]).all()):
        timestep = timestep[:, 0]
    return timestep


def tokens_per_frame(x: torch.Tensor, patch_size) -> int:
    """Video tokens of one latent frame of `x` [N, C, L, H, W] after patchifying (ceil division,
    as Wan pads): from the latent and the model, never from a fixed resolution."""
    return (-(-x.shape[3] // patch_size[1])) * (-(-x.shape[4] // patch_size[2]))


def options_for_call(model_options: dict, frame_data: dict, wrappers: dict) -> dict:
    """A copy of a run's model_options with our per-frame data (`frame_data`: option key -> value)
    and per-call wrappers (`wrappers`: kind -> {key: wrapper}) added; nothing of the run's own
    options is changed in place."""
    options = dict(model_options)
    transformer_options = dict(options.get("transformer_options", {}))
    merged = {kind: dict(entries) for kind, entries in transformer_options.get(WRAPPERS_OPTION, {}).items()}
    for kind, entries in wrappers.items():
        for key, wrapper in entries.items():
            merged.setdefault(kind, {})[key] = [wrapper]
    transformer_options[WRAPPERS_OPTION] = merged
    transformer_options.update(frame_data)
    options["transformer_options"] = transformer_options
    return options


def _row_index(index, rows: int) -> torch.Tensor:
    """Global latent index per row [rows, L] from call_frames' answer (a list is the same for all rows)."""
    index = torch.as_tensor(index, dtype=torch.int64)
    index = index.reshape(-1, index.shape[-1])
    if rows % index.shape[0]:
        raise RuntimeError(f"frame index of {index.shape[0]} rows does not fit a call of {rows} rows")
    return index.repeat(rows // index.shape[0], 1)


def call_conditioning(value, transformer_options: dict, x: torch.Tensor):
    """A per-latent model input (an I2V `c_concat` [N, C, F, H, W], WAN22's `denoise_mask`) cut to
    the latent frames this call holds, row by row; anything else is returned unchanged. A window
    that does not hold a latent sees none of that latent's conditioning (no start image in a
    window that does not contain latent 0)."""
    frames = transformer_options.get(FRAME_COUNT_OPTION)
    if (frames is None or not isinstance(value, torch.Tensor) or value.ndim != 5 or value.shape[2] != frames
            or value.shape[0] != x.shape[0]):
        return value
    index = _row_index(call_frames(transformer_options, x.shape[2]), x.shape[0]).to(value.device)
    if index.shape[1] == frames and bool((index == torch.arange(frames, device=value.device)).all()):
        return value
    rows = torch.arange(value.shape[0], device=value.device).view(-1, 1)
    return value[rows, :, index].permute(0, 2, 1, 3, 4)


def call_levels(transformer_options: dict, x: torch.Tensor, row_sigmas: torch.Tensor) -> torch.Tensor:
    """Noise level of every frame of a call [N, L] as sigma (= timestep / 1000 for Wan): our
    samplers' per-frame sigmas when set, else each row's sigma (`row_sigmas` [N]) on all its frames."""
    sigmas = transformer_options.get(FRAME_SIGMAS_OPTION)
    if sigmas is None:
        return row_sigmas.reshape(-1, 1).expand(x.shape[0], x.shape[2])
    sigmas = sigmas.reshape(-1, sigmas.shape[-1])
    if sigmas.shape[1] != x.shape[2] or x.shape[0] % sigmas.shape[0]:
        raise RuntimeError(f"per-frame sigmas {tuple(sigmas.shape)} do not fit the call {tuple(x.shape)}")
    return sigmas.repeat(x.shape[0] // sigmas.shape[0], 1)


def _same_items(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def rebase_options(call: dict, base: dict, onto: dict) -> dict:
    """`onto` with the changes that turned `base` into `call` (a three-way merge of model_options).

    A guider prepares one model's options for a run (`base`); the sampler then adds per-call items
    (our per-frame timesteps and wrappers, `sample_sigmas`, a CFG++ post-CFG function). A second
    model sampled in the same run has its own prepared options (`onto`: its wrappers, patches,
    CFG functions); this gives it the same per-call items on top of them. Keys added in `call`
    are taken, dicts are merged key by key, list items added in `call` are appended, values the
    sampler replaced are taken from `call`; what `call` leaves as in `base` stays as in `onto`."""
    out = dict(onto)
    for key, value in call.items():
        if key not in base:
            out[key] = value
            continue
        before = base[key]
        if value is before:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            target = onto.get(key)
            out[key] = rebase_options(value, before, target if isinstance(target, dict) else {})
        elif isinstance(value, list) and isinstance(before, list):
            if not _same_items(value, before):
                added = [item for item in value if not any(item is old for old in before)]
                out[key] = list(onto.get(key) or []) + added
        else:
            out[key] = value
    return out


def progress_reporter(callback, steps: int):
    """The executor's callback(iteration, total, x, x0) as ComfyUI's sampler callback dict (progress
    bar and previews count `steps` sampler steps, whatever the plan's iteration count)."""
    if callback is None:
        return None

    def report(iteration, iterations, x, x0):
        callback({"x": x, "i": progress_step(iteration, iterations, steps), "sigma": None,
                  "sigma_hat": None, "denoised": x0})
    return report


# ------------------------------------------------------------------------------------------------
# PMWD model patch: one model call becomes a batch of windows


def repeat_rows(value: torch.Tensor, copies: int) -> torch.Tensor:
    return torch.cat([value] * copies) if copies > 1 else value


def window_value(value, rows: int, frames: int, windows):
    """One model-call argument for a batch of windows: per-latent tensors [rows, C, F, ...] are
    gathered per window, other per-row tensors and frame text repeated once per window."""
    if isinstance(value, FrameTextBatch):
        return FrameTextBatch(list(value) * len(windows))
    if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != rows:
        return value
    if value.ndim == 5 and value.shape[2] == frames:
        return gather_windows(value, windows)
    return repeat_rows(value, len(windows))


def window_transformer_options(transformer_options: dict, rows: int, frames: int, windows) -> dict:
    """transformer_options of a call over stacked windows: frame index and per-frame timesteps cut
    per window, per-row lists and sigmas repeated once per window."""
    options = dict(transformer_options)
    index = options.get(FRAME_INDEX_OPTION)
    options[FRAME_INDEX_OPTION] = gather_window_columns(torch.arange(frames) if index is None else index, rows,
                                                        windows)
    if options.get(FRAME_TIMESTEPS_OPTION) is not None:
        options[FRAME_TIMESTEPS_OPTION] = gather_window_columns(options[FRAME_TIMESTEPS_OPTION], rows, windows)
    for key in ("cond_or_uncond", "uuids"):
        if isinstance(options.get(key), list):
            options[key] = options[key] * len(windows)
    if isinstance(options.get("sigmas"), torch.Tensor):
        options["sigmas"] = repeat_rows(options["sigmas"], len(windows))
    return options


def check_pmwd_call(transformer_options: dict, control, kwargs: dict) -> None:
    """Refuse what the PMWD patch cannot window, naming it."""
    if transformer_options.get("context_window") is not None:
        raise FrameLevelInputError("model", "context windows + PMWD patch", "two window schemes are stacked",
                                   "use either ComfyUI's context windows or FrameLevelPMWDModel, not both")
    if control is not None:
        raise FrameLevelInputError("model", "ControlNet", "the PMWD patch cannot window ControlNet residuals",
                                   "remove the ControlNet or use FrameLevelPMWDSampler")
    if kwargs.get("time_dim_concat") is not None:
        raise FrameLevelInputError("model", "time_dim_concat", "frames appended along time cannot be windowed",
                                   "remove the node that adds time_dim_concat")


def pmwd_layout(frames: int, options: PMWDOptions, steps: int) -> str:
    """What the PMWD patch will do for a video of `frames` latents, as text (raises on bad settings)."""
    windows = pmwd_windows(frames, options)
    starts = " ".join(str(w.frames[0]) for w in windows)
    return (f"PMWD model patch: {frames} latent frames, {len(windows)} windows of {options.window} "
            f"(starts {starts}, fusion {options.fusion}); every model evaluation runs {len(windows)} windows, "
            f"{len(windows) * steps} window evaluations per cond over {steps} steps of a first-order sampler")


def check_pmwd_layout(noise_shape, options: PMWDOptions, steps: int) -> str:
    """The layout text for a latent of `noise_shape`, or an input error before sampling."""
    if len(noise_shape) != 5:
        raise FrameLevelInputError("model", tuple(noise_shape), "the PMWD patch needs a video latent "
                                   "[B, C, frames, H, W]", "sample a Wan video latent (EmptyHunyuanLatentVideo)")
    try:
        return pmwd_layout(noise_shape[2], options, steps)
    except ValueError as err:
        raise FrameLevelInputError("window / num_windows / overlap", f"{noise_shape[2]} latent frames",
                                   str(err), "fit the window settings to the video length") from None


# ------------------------------------------------------------------------------------------------
# Living beside other packs' object patches on the same model objects

OURS_ATTRIBUTE = "__framelevel_patch__"
_CHAIN_DEPTH = 8


def mark_ours(function):
    """Tag a patch function of this pack (bound methods of it carry the tag too)."""
    setattr(function, OURS_ATTRIBUTE, True)
    return function


def is_ours(obj) -> bool:
    return bool(getattr(obj, OURS_ATTRIBUTE, False))


def _callees(obj):
    """What a patch may call: the function behind a bound method, a partial's function and
    arguments, a decorator's __wrapped__, closure cells and default arguments."""
    function = getattr(obj, "__func__", obj)
    yield from (getattr(obj, name) for name in ("func", "__wrapped__") if hasattr(obj, name))
    yield from getattr(obj, "args", None) or ()
    yield from (getattr(obj, "keywords", None) or {}).values()
    for cell in getattr(function, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:   # an empty cell
            continue
    yield from getattr(function, "__defaults__", None) or ()
    yield from (getattr(function, "__kwdefaults__", None) or {}).values()


def reaches_ours(obj, depth: int = _CHAIN_DEPTH) -> bool:
    """True when `obj` is one of our patches or keeps one to call (a patch that wraps ours)."""
    if is_ours(obj):
        return True
    if depth == 0 or not callable(obj):
        return False
    return any(reaches_ours(inner, depth - 1) for inner in _callees(obj) if callable(inner))


def describe_patch(obj) -> str:
    function = getattr(obj, "__func__", getattr(obj, "func", obj))
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


_PROMPT_RELAY_WAY_OUT = ("keep one of the two for prompt regions: FrameLevelPromptSchedule reads Prompt Relay's "
                         "segment stories as they are, so replace PromptRelayEncode with FrameLevelPromptSchedule -> "
                         "FrameLevelTextEncode (docs/comfyui_versions.md, 'From Prompt Relay'), or remove "
                         "FrameLevelCrossAttention to keep Prompt Relay")
# Other packs known to patch Wan's `blocks.N.cross_attn.forward`: (name fragment, who, the way out)
KNOWN_CROSS_ATTENTION_PATCHERS = (
    ("promptrelay", "Prompt Relay (PromptRelayEncode, which refuses stacking itself)", _PROMPT_RELAY_WAY_OUT),
    ("kjnodes", "KJNodes (a cross-attention patch node)",
     "apply the KJNodes patch after FrameLevelCrossAttention if it wraps the forward it finds, else remove one"),
)


def patch_owner(obj) -> tuple[str, str | None]:
    """Who made an object patch, as a person knows them, and the known way out (None if unknown)."""
    described = describe_patch(obj)
    key = described.lower().replace("-", "").replace("_", "")
    for fragment, who, way_out in KNOWN_CROSS_ATTENTION_PATCHERS:
        if fragment in key:
            return f"{who} [{described}]", way_out
    return described, None


def foreign_patch(object_patches: dict, names) -> tuple[str, object] | None:
    """The first (name, patch) among `names` whose patch is another pack's and does not call ours
    (our routing would be lost under it); None when every one is ours or wraps ours."""
    for name in names:
        patch = object_patches.get(name)
        if patch is None or not reaches_ours(patch):
            return name, patch
    return None
