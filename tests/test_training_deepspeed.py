"""The shipped DeepSpeed config goes through accelerate's launcher and DeepSpeed's own schema, and the
trainer's config loader rejects DeepSpeed values that contradict the TOML (and FSDP1 on CPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import comfyui_framelevel.training as training_package
import pytest
from comfyui_framelevel.training.config import ConfigError, config_from_dict, load_config
from comfyui_framelevel.training.distributed import (
    FSDP1_ON_CPU,
    accelerate_launch_env,
    check_deepspeed_config,
    check_fsdp_on_cpu,
    check_launch,
    deepspeed_config_from_env,
    fill_deepspeed_config,
)
from comfyui_framelevel.training.testing import tiny_run_config, to_toml

CONFIGS = Path(training_package.__file__).resolve().parent / "configs"
DEEPSPEED_CONFIGS = sorted(CONFIGS.glob("deepspeed*.yaml"))


def _example_config(tmp_path, **train):
    """The shipped example.toml (weights path dropped: it names a file that is not here)."""
    import tomllib

    raw = tomllib.loads((CONFIGS / "example.toml").read_text())
    raw["model"].pop("weights")
    raw["data"]["cache_dir"] = str(tmp_path)
    raw["validation"]["every"] = 0
    raw["train"].update(train)
    return raw


def _validate_with_deepspeed(ds: dict, world_size: int, monkeypatch):
    """DeepSpeed's own parser (pydantic models, unknown keys forbidden) at the YAML's process count."""
    deepspeed_config = pytest.importorskip("deepspeed.runtime.config", reason="deepspeed is not installed "
                                           "(optional: pip install deepspeed)")
    monkeypatch.setattr(deepspeed_config.dist, "get_rank", lambda *a, **k: 0)
    monkeypatch.setattr(deepspeed_config.dist, "get_world_size", lambda *a, **k: world_size)
    return deepspeed_config.DeepSpeedConfig(json.loads(json.dumps(ds, default=str).replace("Infinity", "1e9")))


def _shipped(yaml, tmp_path) -> tuple[dict, int, object]:
    """The engine config accelerate builds from a shipped YAML, filled from example.toml."""
    world, env = accelerate_launch_env(yaml)  # accelerate's own launcher code reads the YAML (and JSON)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and world == 8
    ds = deepspeed_config_from_env(env)  # accelerate's DeepSpeedPlugin builds the engine config
    config = config_from_dict(_example_config(tmp_path), world_size=world)  # global batch 8 over 8 GPUs
    check_launch(config, world, env)
    return fill_deepspeed_config(config, ds, world), world, config


@pytest.mark.parametrize("yaml", DEEPSPEED_CONFIGS, ids=lambda p: p.name)
def test_shipped_deepspeed_config_is_accepted_by_accelerate_and_fits_the_example(yaml, tmp_path):
    assert DEEPSPEED_CONFIGS, "training/configs/deepspeed_zero2.yaml is missing"
    ds, _, _ = _shipped(yaml, tmp_path)
    assert ds["zero_optimization"]["stage"] == 2 and ds["gradient_accumulation_steps"] == 1
    assert (ds["train_batch_size"], ds["train_micro_batch_size_per_gpu"], ds["gradient_clipping"]) == (8, 1, 1.0)


@pytest.mark.parametrize("yaml", DEEPSPEED_CONFIGS, ids=lambda p: p.name)
def test_shipped_deepspeed_config_passes_deepspeeds_own_schema(yaml, tmp_path, monkeypatch):
    ds, world, config = _shipped(yaml, tmp_path)
    parsed = _validate_with_deepspeed(ds, world, monkeypatch)
    assert parsed.zero_optimization_stage == 2 and parsed.gradient_clipping == config.optim.max_grad_norm
    assert parsed.train_batch_size == 8 and parsed.gradient_accumulation_steps == 1


def test_deepspeed_schema_rejects_a_misspelt_key(monkeypatch):
    pytest.importorskip("deepspeed")
    with pytest.raises(Exception, match="stagee"):
        _validate_with_deepspeed({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 1,
                                  "zero_optimization": {"stagee": 2}}, 8, monkeypatch)


def _json_launch(tmp_path, ds: dict):
    """An accelerate YAML naming a DeepSpeed JSON, as `accelerate launch` would pass it on (accelerate
    refuses mixed_precision and the other engine values in the YAML then: they belong in the JSON)."""
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    yaml = tmp_path / "ds.yaml"
    yaml.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\nnum_machines: 1\n"
                    "num_processes: 4\nmachine_rank: 0\n"
                    f"deepspeed_config:\n  deepspeed_config_file: {tmp_path / 'ds.json'}\n  zero3_init_flag: false\n"
                    "rdzv_backend: static\nsame_network: true\nuse_cpu: false\n")
    return accelerate_launch_env(yaml)


ZERO2_JSON = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
              "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
              "bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 2, "overlap_comm": True}}


@pytest.mark.parametrize("change, needle", [
    ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps = 4 but train.gradient_accumulation_steps = 2"),
    ({"train_micro_batch_size_per_gpu": 1}, "train_micro_batch_size_per_gpu = 1 but train.global_batch_size 16 / "
                                            "(4 processes x 2 accumulation steps) = 2"),
    ({"train_batch_size": 32}, "train_batch_size = 32 but train.global_batch_size = 16"),
    ({"gradient_clipping": 0.5}, "gradient_clipping = 0.5 but optim.max_grad_norm = 1.0"),
    ({"bf16": {"enabled": False}}, "bf16.enabled = false but train.mixed_precision = 'bf16'"),
])
def test_config_loader_rejects_deepspeed_values_that_contradict_the_toml(tmp_path, change, needle):
    world, env = _json_launch(tmp_path, {**ZERO2_JSON, **change})
    toml = tmp_path / "run.toml"
    toml.write_text(to_toml(tiny_run_config(tmp_path, train={"global_batch_size": 16, "gradient_accumulation_steps": 2,
                                                              "mixed_precision": "bf16"})))
    with pytest.raises(ConfigError, match=re.escape(needle)) as error:
        load_config(toml, world, env=env)
    assert "ds.json contradicts the training config" in str(error.value)


def test_deepspeed_json_with_auto_values_fits_any_toml_and_is_filled_from_it(tmp_path, monkeypatch):
    world, env = _json_launch(tmp_path, ZERO2_JSON)
    config = config_from_dict(tiny_run_config(tmp_path, train={"global_batch_size": 16, "gradient_accumulation_steps": 2,
                                                               "mixed_precision": "bf16"}), world)
    check_launch(config, world, env)
    ds = fill_deepspeed_config(config, deepspeed_config_from_env(env), world)
    assert (ds["train_batch_size"], ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (16, 2, 2)
    ds["bf16"] = {"enabled": True}  # what the Accelerator's set_mixed_precision("bf16") fills in
    parsed = _validate_with_deepspeed(ds, world, monkeypatch)  # skips without deepspeed, checks above ran
    assert parsed.zero_config.overlap_comm and parsed.bfloat16_config.enabled


def test_launch_mixed_precision_and_validation_must_agree(tmp_path):
    world, env = accelerate_launch_env(DEEPSPEED_CONFIGS[0])  # mixed_precision: bf16
    config = config_from_dict(tiny_run_config(tmp_path, train={"global_batch_size": 8, "mixed_precision": "no"}), world)
    with pytest.raises(ConfigError, match="accelerate config says mixed_precision: bf16"):
        check_launch(config, world, env)
    zero3 = {**ZERO2_JSON, "zero_optimization": {"stage": 3}}
    with_validation = config_from_dict(tiny_run_config(tmp_path, train={"global_batch_size": 8, "mixed_precision": "no"},
                                                       validation={"every": 10}), world)
    with pytest.raises(ConfigError, match="set \\[validation\\] every = 0"):
        check_deepspeed_config(with_validation, zero3, world)
    fsdp_world, fsdp_env = accelerate_launch_env(CONFIGS / "cpu_2proc_fsdp.yaml")
    with pytest.raises(ConfigError, match="FSDP's sharded weights"):
        check_launch(config_from_dict(tiny_run_config(tmp_path, validation={"every": 10})), fsdp_world, fsdp_env)


def test_fsdp1_on_cpu_is_refused_with_the_reason():
    with pytest.raises(RuntimeError, match=re.escape("Inconsistent compute device and `device_id`")):
        check_fsdp_on_cpu({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"})
    check_fsdp_on_cpu({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"})
    assert "fsdp_version: 2" in FSDP1_ON_CPU


def test_deepspeed_launch_without_gpus_is_refused_not_silently_ddp(tmp_path, monkeypatch):
    import torch
    from comfyui_framelevel.training.train import make_accelerator

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(RuntimeError, match="accelerate ignores DeepSpeed on CPU"):
        make_accelerator(config_from_dict(tiny_run_config(tmp_path)))
