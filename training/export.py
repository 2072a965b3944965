"""Export trained weights in formats ComfyUI loads, and check them the way ComfyUI maps keys.

- LoRA, `diffusers` style: `diffusion_model.<path>.lora_A.weight` / `.lora_B.weight` / `.alpha`.
- LoRA, `kohya` style: `lora_unet_<path with _>.lora_down.weight` / `.lora_up.weight` / `.alpha`.
- Full weights: original Wan key names (UNETLoader detects Wan 2.1 from `head.modulation`).
ComfyUI accepts a LoRA module name when it equals `diffusion_model.<path>` or `lora_unet_<path_>`
for some model weight `<path>.weight`; `check_lora_keys` rebuilds that map and reports leftovers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..nodes.core.files import save_safetensors_atomic
from .lora import lora_modules, original_state_dict

LORA_FORMATS = ("diffusers", "kohya")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def lora_state_dict(model: nn.Module, fmt: str = "diffusers", dtype: str = "bf16") -> dict[str, torch.Tensor]:
    if fmt not in LORA_FORMATS:
        raise ValueError(f"LoRA export format {fmt!r} is unknown; choose one of {LORA_FORMATS}")
    adapters = lora_modules(model)
    if not adapters:
        raise ValueError("the model has no LoRA adapters to export; train with [lora] enabled or export "
                         "full weights instead")
    out = {}
    for path, module in adapters.items():
        down = module.lora_A.weight.detach().to(_DTYPES[dtype]).cpu().contiguous()
        up = module.lora_B.weight.detach().to(_DTYPES[dtype]).cpu().contiguous()
        alpha = torch.tensor(float(module.alpha))
        if fmt == "diffusers":
            name = f"diffusion_model.{path}"
            out[f"{name}.lora_A.weight"], out[f"{name}.lora_B.weight"] = down, up
        else:
            name = "lora_unet_" + path.replace(".", "_")
            out[f"{name}.lora_down.weight"], out[f"{name}.lora_up.weight"] = down, up
        out[f"{name}.alpha"] = alpha
    return out


def full_state_dict(model: nn.Module, dtype: str = "bf16") -> dict[str, torch.Tensor]:
    """Original-named weights (LoRA merged) for UNETLoader. Patch embedding kept as stored."""
    return {k: v.detach().to(_DTYPES[dtype]).cpu().contiguous() for k, v in original_state_dict(model).items()}


def comfy_lora_key_map(model_keys) -> dict[str, str]:
    """LoRA module names ComfyUI maps to each model weight (generic rules, as in comfy/lora.py)."""
    key_map = {}
    for key in model_keys:
        if key.endswith(".weight"):
            path = key[: -len(".weight")]
            key_map[f"diffusion_model.{path}"] = key
            key_map["lora_unet_" + path.replace(".", "_")] = key
    return key_map


_LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_down.weight", ".lora_up.weight", ".alpha")


def check_lora_keys(lora: dict, model_keys) -> list[str]:
    """LoRA keys ComfyUI would not load ("lora key not loaded"); empty means every key matches."""
    key_map = comfy_lora_key_map(model_keys)
    unmatched = []
    for key in lora:
        base = next((key[: -len(s)] for s in _LORA_SUFFIXES if key.endswith(s)), None)
        if base is None or base not in key_map:
            unmatched.append(key)
    return unmatched


def export_lora(model: nn.Module, path, fmt: str = "diffusers", dtype: str = "bf16",
                metadata: dict | None = None) -> Path:
    tensors = lora_state_dict(model, fmt, dtype)
    base_keys = original_state_dict(model).keys()
    unmatched = check_lora_keys(tensors, base_keys)
    if unmatched:
        raise RuntimeError(f"{len(unmatched)} LoRA keys would not load in ComfyUI, e.g. {unmatched[:3]}")
    return save_safetensors_atomic(tensors, path, metadata)


def export_full(model: nn.Module, path, dtype: str = "bf16", metadata: dict | None = None) -> Path:
    tensors = full_state_dict(model, dtype)
    if "head.modulation" not in tensors:
        raise RuntimeError("exported weights lack 'head.modulation'; ComfyUI would not detect Wan")
    return save_safetensors_atomic(tensors, path, metadata)
