"""A small LoRA for nn.Linear that keeps the base weight names (`<path>.weight`, `<path>.bias`).

Adapters live beside the base weight as `<path>.lora_A.weight` [rank, in] and `<path>.lora_B.weight`
[out, rank]; output = base(x) + (alpha / rank) * B(A(x)). A is Kaiming-uniform, B is zero, so a
fresh adapter changes nothing. Works under DDP, FSDP (use_orig_params) and DeepSpeed because it is
plain parameters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                   "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")


@dataclass(frozen=True)
class LoraConfig:
    """[lora] section: rank, alpha (scale = alpha / rank) and target module paths inside each block."""

    rank: int = 16
    alpha: float = 16.0
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)
    dropout: float = 0.0


class LoRALinear(nn.Linear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device="meta")
        self.weight = base.weight  # the same Parameter objects: names and storage unchanged
        self.bias = base.bias
        self.rank, self.alpha = rank, alpha
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, device=base.weight.device)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5), generator=generator)
        nn.init.zeros_(self.lora_B.weight)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        return out + self.lora_B(self.lora_A(self.dropout(x))) * self.scale

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B.weight.float() @ self.lora_A.weight.float()) * self.scale

    def merged_linear(self) -> nn.Linear:
        merged = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_((self.weight.float() + self.delta_weight()).to(self.weight.dtype))
            if self.bias is not None:
                merged.bias.copy_(self.bias)
        return merged


def target_pattern(targets) -> re.Pattern:
    alternatives = "|".join(re.escape(t) for t in targets)
    return re.compile(rf"^blocks\.\d+\.(?:{alternatives})$")


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def inject_lora(model: nn.Module, config: LoraConfig, generator: torch.Generator | None = None) -> list[str]:
    """Freeze the model, wrap every matching Linear with a LoRA; returns the wrapped module paths.

    `generator` (CPU) draws every A matrix in module order, so a seeded run starts from the same
    adapters every time; without it torch's global RNG is used."""
    pattern = target_pattern(config.target_modules)
    paths = [name for name, m in model.named_modules()
             if pattern.match(name) and isinstance(m, nn.Linear) and not isinstance(m, LoRALinear)]
    if not paths:
        raise ValueError(f"[lora] target_modules={list(config.target_modules)} matched no Linear inside "
                         f"blocks.N; use paths like 'self_attn.q' or 'ffn.0'")
    model.requires_grad_(False)
    for path in paths:
        wrapped = LoRALinear(model.get_submodule(path), config.rank, config.alpha, config.dropout, generator)
        _set_submodule(model, path, wrapped)
    return paths


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by a plain Linear holding W + scale * B A (in place)."""
    for path, module in lora_modules(model).items():
        _set_submodule(model, path, module.merged_linear())
    return model


def original_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Base weights with the original names (LoRA deltas merged, adapter tensors dropped)."""
    adapters = lora_modules(model)
    state = {}
    for key, value in model.state_dict().items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        path = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and path in adapters:
            value = (value.float() + adapters[path].delta_weight()).to(value.dtype)
        state[key] = value
    return state
