"""What `accelerate launch` set up, checked against the training config, and two gaps on our path.

- FSDP on CPU. accelerate 1.15 turns a launch with an FSDP config into FSDP only for GPU-like
  process groups (AcceleratorState upgrades MULTI_GPU/XPU/NPU/... to FSDP, never MULTI_CPU), so on a
  machine without GPUs the run silently became plain DDP. torch's FSDP2 (`fully_shard`) runs on CPU
  with gloo, so `enable_fsdp2_on_cpu` switches accelerate's state to FSDP itself; everything after
  that (prepare, clipping, sharded checkpoints, full-state export) is accelerate's normal FSDP2 path.
  FSDP1 (`FullyShardedDataParallel`) cannot run on CPU in torch 2.13: it always computes on a
  CUDA-like device and stops with "Inconsistent compute device and `device_id` on rank 0: cpu vs
  cpu:0" (and accelerate's plugin with sync_module_states=true stops earlier with "There are currently
  no available devices found"), so it is refused with that reason.
- DeepSpeed. accelerate reads the micro batch from a prepared DataLoader, which this trainer does not
  use (it has its own batch plan), and it silently prefers the DeepSpeed config's
  gradient_accumulation_steps over ours; `check_deepspeed_config` rejects every setting that would
  make DeepSpeed train something other than the TOML says, and `fill_deepspeed_config` sets the batch
  sizes the trainer really uses.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import TrainConfig


def env_flag(name: str, env=None) -> bool:
    return (env if env is not None else os.environ).get(name, "false").lower() == "true"


# ----------------------------------------------------------------------------------------------
# FSDP on CPU


FSDP1_ON_CPU = ("FSDP1 (fsdp_version: 1) cannot run on CPU with torch {torch}: FullyShardedDataParallel "
                "always computes on a CUDA-like device (it stops with \"Inconsistent compute device and "
                "`device_id` on rank 0: cpu vs cpu:0\"). Use fsdp_version: 2 (training/configs/"
                "cpu_2proc_fsdp.yaml) on CPU; FSDP1 works on GPUs.")


def check_fsdp_on_cpu(env=None) -> None:
    """Before the Accelerator exists: refuse FSDP1 on CPU with the reason instead of a deep traceback."""
    import torch

    env = env if env is not None else os.environ
    if env_flag("ACCELERATE_USE_FSDP", env) and env.get("FSDP_VERSION", "1") == "1":
        raise RuntimeError(FSDP1_ON_CPU.format(torch=torch.__version__))


def enable_fsdp2_on_cpu(accelerator) -> bool:
    """After `Accelerator(cpu=True)` under an FSDP launch: make it FSDP2 instead of DDP (see module doc)."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not env_flag("ACCELERATE_USE_FSDP") or accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables `accelerate launch` exported
    if plugin.fsdp_version != 2:
        raise RuntimeError(FSDP1_ON_CPU.format(torch=__import__("torch").__version__))
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    state = accelerator.state
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    # AcceleratorState re-reads PartialState's dict whenever it is instantiated again (accelerate does
    # that inside get_state_dict, save_state, ...); on GPUs it writes FSDP back there the same way.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def is_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


# ----------------------------------------------------------------------------------------------
# DeepSpeed


def micro_batch_size(config: TrainConfig, world_size: int) -> int:
    run = config.train
    return run.global_batch_size // (world_size * run.gradient_accumulation_steps)


def _get(tree: dict, dotted: str, default=None):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return default
        tree = tree[part]
    return tree


def check_deepspeed_config(config: TrainConfig, ds: dict, world_size: int, source: str = "the DeepSpeed config"):
    """Raise ConfigError for every DeepSpeed value that contradicts the training TOML ("auto" always fits)."""
    run, problems = config.train, []

    def fixed(key):
        value = _get(ds, key, "auto")
        return None if value in ("auto", None) else value

    ga = fixed("gradient_accumulation_steps")
    if ga is not None and int(ga) != run.gradient_accumulation_steps:
        problems.append(f"gradient_accumulation_steps = {ga} but train.gradient_accumulation_steps = "
                        f"{run.gradient_accumulation_steps} (accelerate would silently use DeepSpeed's value "
                        f"and change the global batch); make them equal")
    micro = fixed("train_micro_batch_size_per_gpu")
    want_micro = micro_batch_size(config, world_size)
    if micro is not None and int(micro) != want_micro:
        problems.append(f"train_micro_batch_size_per_gpu = {micro} but train.global_batch_size "
                        f"{run.global_batch_size} / ({world_size} processes x {run.gradient_accumulation_steps} "
                        f"accumulation steps) = {want_micro}; use {want_micro} or \"auto\"")
    total = fixed("train_batch_size")
    if total is not None and int(total) != run.global_batch_size:
        problems.append(f"train_batch_size = {total} but train.global_batch_size = {run.global_batch_size}; "
                        f"use {run.global_batch_size} or \"auto\"")
    clip = fixed("gradient_clipping")
    want_clip = config.optim.max_grad_norm
    if clip is not None and float(clip) != want_clip:
        problems.append(f"gradient_clipping = {clip} but optim.max_grad_norm = {want_clip} (under DeepSpeed the "
                        f"engine clips, with its own value); make them equal")
    for key, precision in (("bf16.enabled", "bf16"), ("fp16.enabled", "fp16")):
        enabled = fixed(key)
        if enabled is not None and bool(enabled) != (run.mixed_precision == precision):
            problems.append(f"{key} = {str(enabled).lower()} but train.mixed_precision = "
                            f"{run.mixed_precision!r}; make them agree (or leave it \"auto\")")
    stage = fixed("zero_optimization.stage")
    if stage == 3 and config.validation.every:
        problems.append("zero_optimization.stage = 3 shards the weights, but validation samples run on the main "
                        "process only; set [validation] every = 0")
    if problems:
        raise ConfigError(f"{source} contradicts the training config: " + "; ".join(problems))


def fill_deepspeed_config(config: TrainConfig, ds: dict, world_size: int) -> dict:
    """Replace the batch/accumulation/clipping "auto" values with the trainer's (in place)."""
    run = config.train
    ds["train_micro_batch_size_per_gpu"] = micro_batch_size(config, world_size)
    ds["train_batch_size"] = run.global_batch_size
    ds["gradient_accumulation_steps"] = run.gradient_accumulation_steps
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = config.optim.max_grad_norm
    return ds


def deepspeed_config_from_env(env=None) -> dict | None:
    """The DeepSpeed config a process launched by `accelerate launch` will use, or None without DeepSpeed.

    Built by accelerate's own DeepSpeedPlugin from the variables the launcher exported (the YAML's
    `deepspeed_config` entries, or the JSON named by `deepspeed_config_file`)."""
    env = env if env is not None else os.environ
    if not env_flag("ACCELERATE_USE_DEEPSPEED", env):
        return None
    from unittest import mock

    from accelerate.utils import DeepSpeedPlugin

    with mock.patch.dict(os.environ, dict(env), clear=True):
        return DeepSpeedPlugin().deepspeed_config


def check_launch(config: TrainConfig, world_size: int, env=None) -> None:
    """Config-time check of what `accelerate launch` set up (the CLI runs it before anything else)."""
    env = env if env is not None else os.environ
    if env_flag("ACCELERATE_USE_FSDP", env) and config.validation.every:
        raise ConfigError(f"validation.every = {config.validation.every}: validation samples run on the main "
                          f"process only, which FSDP's sharded weights do not allow; set it to 0")
    ds = deepspeed_config_from_env(env)
    if ds is None:
        return
    file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none")
    source = f"DeepSpeed config {file}" if file != "none" else "the accelerate config's deepspeed_config"
    check_deepspeed_config(config, ds, world_size, source)
    launched = env.get("ACCELERATE_MIXED_PRECISION")
    from_yaml = "mixed_precision" in env.get("ACCELERATE_CONFIG_DS_FIELDS", "").split(",")  # not the default "no"
    if from_yaml and launched != config.train.mixed_precision:
        raise ConfigError(f"the accelerate config says mixed_precision: {launched} but train.mixed_precision = "
                          f"{config.train.mixed_precision!r}; under DeepSpeed make them agree (the TOML's value "
                          f"is the one used)")


def accelerate_launch_env(config_file, extra_args=()) -> tuple[int, dict]:
    """(total processes, environment) that `accelerate launch --config_file FILE` gives each process,
    computed by accelerate's own launcher code (it reads the YAML, and the DeepSpeed JSON it names)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), *extra_args, "train.py"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as accelerate's launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config.keys()) if defaults else []
        if mp_from_config:
            fields.append("mixed_precision")
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args.num_processes, env
