"""Build the trainable model from the [model] and [lora] sections, and the optimizer/scheduler."""

from __future__ import annotations

import torch

from .config import TrainConfig
from .lora import inject_lora
from .wan import WanConfig, WanDiT, random_init, tiny_config

SIZES = {"1.3B": WanConfig.wan21_1_3b, "14B": WanConfig.wan21_14b, "tiny": tiny_config}


def base_model(config: TrainConfig) -> WanDiT:
    """Wan DiT from original-named weights, or a random init of a named size."""
    m = config.model
    if m.weights:
        from safetensors.torch import load_file

        state = load_file(m.weights)
        wan_config = WanConfig.from_state_dict(state, num_heads=m.num_heads or None)
        model = WanDiT.from_state_dict(state, wan_config)
    else:
        overrides = {"num_heads": m.num_heads} if m.num_heads else {}
        if m.size != "tiny":
            overrides["text_dim"] = m.text_dim
        model = random_init(WanDiT(SIZES[m.size](**overrides)), m.init_seed)
    model.gradient_checkpointing = m.gradient_checkpointing
    return model


def trainable_model(config: TrainConfig) -> WanDiT:
    model = base_model(config)
    if config.lora is None:
        return model.requires_grad_(True)
    if config.model.base_dtype == "bf16":
        model.to(torch.bfloat16)
    # adapters start from the run's seed: a fresh run is reproducible, and a resumed one loads them anyway
    inject_lora(model, config.lora, torch.Generator().manual_seed(config.train.seed))
    return model


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def build_optimizer(config: TrainConfig, params):
    o = config.optim
    if o.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=o.learning_rate, weight_decay=o.weight_decay, scale_parameter=False,
                         relative_step=False, warmup_init=False)
    return torch.optim.AdamW(params, lr=o.learning_rate, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)


def build_scheduler(config: TrainConfig, optimizer):
    warmup = config.optim.warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
