"""The training TOML: schema as dataclasses, checked up front with messages naming key, value and fix.

Sections: [model] [data] [objective] [lora] (present = LoRA, absent = full fine-tune) [optim]
[train] [validation]. See training/configs/example.toml and training/README.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..nodes.core import frames as fm  # noqa: TID252 - package-relative
from .data.cache import DataConfig
from .distributed import check_launch
from .errors import ConfigError
from .lora import LoraConfig
from .objective import NoiseConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ModelConfig:
    weights: str = ""  # original-named Wan 2.1 DiT safetensors (ComfyUI's diffusion_models files work)
    size: str = "1.3B"  # used when weights is empty: "1.3B", "14B" or "tiny" (random init, for tests)
    num_heads: int = 0  # 0 = read from the weights (dim // 128)
    text_dim: int = 4096
    init_seed: int = 0
    gradient_checkpointing: bool = True
    base_dtype: str = "fp32"  # dtype of frozen base weights under LoRA: "fp32" or "bf16"


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "adafactor" (transformers, factored second moments)
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    max_grad_norm: float = 1.0  # 0 disables clipping


@dataclass(frozen=True)
class RunConfig:
    output_dir: str = "output"
    max_steps: int = 1000
    global_batch_size: int = 1  # clips per optimizer step over all processes and accumulation steps
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "bf16"  # "no", "bf16" or "fp16"
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    tensorboard: bool = True
    progress_bar: bool = True
    export_format: str = "diffusers"  # LoRA key style: "diffusers" (lora_A/B) or "kohya" (lora_down/up)
    export_dtype: str = "bf16"
    # resume may load pickles that can run code (DeepSpeed checkpoints, checkpoints of earlier trainer
    # versions); only for checkpoints nobody else could change. CLI: --trust-pickles
    trust_pickled_state: bool = False


@dataclass(frozen=True)
class ValidationConfig:
    every: int = 0  # steps between validation samples; 0 = off
    steps: int = 20  # sampler steps (the pack's DF sampler, as the ComfyUI nodes run it)
    shift: float = 5.0
    seed: int = 0
    step_size: float = 0.0  # DF step size: 0 = synchronous (stock Euler), > 0 = staircase
    causal_block_size: int = 1
    solver: str = "euler"  # or "dpmpp_2m"


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: NoiseConfig = field(default_factory=NoiseConfig)
    lora: LoraConfig | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "objective": NoiseConfig, "lora": LoraConfig,
            "optim": OptimConfig, "train": RunConfig, "validation": ValidationConfig}
CHOICES = {
    "model.size": ("1.3B", "14B", "tiny"), "model.base_dtype": ("fp32", "bf16"),
    "objective.timestep_sampling": ("logit_normal", "uniform"), "objective.loss_weighting": ("none", "bell"),
    "optim.optimizer": ("adamw", "adafactor"), "train.mixed_precision": ("no", "bf16", "fp16"),
    "validation.solver": ("euler", "dpmpp_2m"), "train.export_format": ("diffusers", "kohya"), "train.export_dtype": ("bf16", "fp16", "fp32"),
}
RANGES = {  # key: (low, high, inclusive-low)
    "objective.df_ratio": (0, 1, True), "objective.clean_prefix_ratio": (0, 1, True),
    "objective.df_step": (0, 1, True), "objective.shift": (0, None, False),
    "objective.logit_std": (0, None, False), "lora.rank": (1, None, True), "lora.alpha": (0, None, False),
    "lora.dropout": (0, 1, True), "optim.learning_rate": (0, None, False), "train.max_steps": (1, None, True),
    "train.global_batch_size": (1, None, True), "train.gradient_accumulation_steps": (1, None, True),
    "train.checkpoint_every": (1, None, True), "train.keep_checkpoints": (1, None, True),
    "train.log_every": (1, None, True), "validation.steps": (1, None, True), "data.text_len": (1, None, True),
    "objective.max_clean_frames": (0, None, True), "validation.every": (0, None, True),
    "validation.step_size": (0, None, True), "validation.causal_block_size": (1, None, True),
    "validation.shift": (0, None, False),
}


def _convert(value, hint, key):
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected an integer, e.g. {key.split('.')[-1]} = 4")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string in quotes")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key} = {value!r}: expected a list, e.g. [ ... ]")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key} = {value!r}: expected {len(args)} values")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    return value


def _build_section(cls, table: dict, section: str):
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] must be a table, got {table!r:.60}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in table.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"[{section}] has unknown key {key!r}{hint}")
        values[key] = _convert(value, hints[key], f"{section}.{key}")
    return cls(**values)


def _check_choices_and_ranges(config: TrainConfig) -> None:
    for dotted, allowed in CHOICES.items():
        section, key = dotted.split(".")
        part = getattr(config, section)
        if part is not None and getattr(part, key) not in allowed:
            raise ConfigError(f"{dotted} = {getattr(part, key)!r} is not allowed; use one of {list(allowed)}")
    for dotted, (low, high, inclusive) in RANGES.items():
        section, key = dotted.split(".")
        part = getattr(config, section)
        if part is None:
            continue
        value = getattr(part, key)
        if (value < low if inclusive else value <= low) or (high is not None and value > high):
            bound = f"{'>=' if inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
            raise ConfigError(f"{dotted} = {value!r} is out of range; it must be {bound}")


def _check_data(config: TrainConfig) -> None:
    data = config.data
    for i, (h, w) in enumerate(data.resolutions):
        if h % 16 or w % 16 or h <= 0 or w <= 0:
            raise ConfigError(f"data.resolutions[{i}] = [{h}, {w}]: height and width must be positive "
                              f"multiples of 16 (VAE 8 x patch 2), e.g. [480, 832]")
    for i, n in enumerate(data.frame_buckets):
        if not fm.is_valid_pixel_count(n):
            nearest = fm.pixel_count(fm.latent_count(n)) if n >= 1 else 1
            raise ConfigError(f"data.frame_buckets[{i}] = {n}: pixel frame counts must be 4k+1 "
                              f"(e.g. {nearest} or 81)")
    if not data.cache_dir:
        raise ConfigError("data.cache_dir is empty; set it to the folder the `cache` command writes")


def _check_run(config: TrainConfig, world_size: int) -> None:
    run = config.train
    per_step = world_size * run.gradient_accumulation_steps
    if run.global_batch_size % per_step:
        raise ConfigError(f"train.global_batch_size = {run.global_batch_size} is not divisible by "
                          f"processes ({world_size}) x gradient_accumulation_steps "
                          f"({run.gradient_accumulation_steps}) = {per_step}; use a multiple of {per_step}")
    if config.model.weights and not Path(config.model.weights).is_file():
        raise ConfigError(f"model.weights = {config.model.weights!r} does not exist; give the path of a "
                          f"Wan 2.1 DiT .safetensors, or leave it empty for a random init")
    if config.lora is not None and not config.lora.target_modules:
        raise ConfigError("lora.target_modules is empty; list modules like ['self_attn.q', 'ffn.0']")


def config_from_dict(raw: dict, world_size: int = 1) -> TrainConfig:
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; known sections: {list(SECTIONS)}")
    parts = {name: _build_section(cls, raw[name], name) for name, cls in SECTIONS.items() if name in raw}
    config = TrainConfig(**parts)
    _check_choices_and_ranges(config)
    _check_data(config)
    _check_run(config, world_size)
    return config


def load_config(path, world_size: int = 1, overrides: dict | None = None, env=None) -> TrainConfig:
    """Read and validate a TOML; also checks it against what `accelerate launch` set up in `env`
    (default: this process's environment), e.g. a DeepSpeed config's batch or accumulation values."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path} does not exist") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    config = config_from_dict(raw, world_size)
    check_launch(config, world_size, env)
    return config


def config_to_dict(config: TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if v is not None}
