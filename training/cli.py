"""Command line: cache, train, export. Run it by path (it registers the pack's package itself):

    python training/cli.py cache  --config my.toml --text-encoder /models/Wan2.1-T2V-1.3B-Diffusers [--vae same]
    accelerate launch [--config_file training/configs/ddp.yaml] training/cli.py train --config my.toml
    python training/cli.py export --config my.toml --format kohya --out my_lora.safetensors
    python training/cli.py check  --config my.toml --accelerate-config training/configs/deepspeed_zero2.yaml
    python training/cli.py convert-captions [--pixel-keys] dataset/*.json   (pixel-keyed files -> latent keys)

`--set section.key=value` overrides a TOML value (value parsed as TOML, e.g. --set train.max_steps=10).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

PACKAGE = "comfyui_framelevel"


def bootstrap_package() -> None:
    """Register the repository root as package `comfyui_framelevel` without running its node tables
    (the trainer never imports `comfy` or ComfyUI's `nodes`)."""
    if PACKAGE in sys.modules:
        return
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(PACKAGE, root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)


def parse_overrides(pairs: list[str]) -> dict:
    import tomllib

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set {pair!r}: use section.key=value, e.g. --set train.max_steps=100")
        try:
            overrides[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key] = value
    return overrides


def _load(args):
    from comfyui_framelevel.training.config import ConfigError, load_config

    world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
    overrides = parse_overrides(args.set)
    if getattr(args, "trust_pickles", False):
        overrides["train.trust_pickled_state"] = True
    try:
        return load_config(args.config, world, overrides)
    except ConfigError as error:
        raise SystemExit(f"config error: {error}") from None


def cmd_cache(args) -> None:
    from comfyui_framelevel.training.data.cache import build_cache
    from comfyui_framelevel.training.data.encoders import DiffusersWanVAE, UMT5TextEncoder

    config = _load(args)
    text = UMT5TextEncoder.from_pretrained(args.text_encoder, device=args.device)
    vae = DiffusersWanVAE(args.vae, device=args.device) if args.vae else None
    report = build_cache(config.data, text, vae, progress=True)
    print(f"cached {report.clips} clips ({report.latents_encoded} newly encoded); captions: "
          f"{report.captions_encoded} encoded, {report.captions_reused} already cached")
    for line in report.skipped:
        print("skipped:", line)


def cmd_train(args) -> None:
    from comfyui_framelevel.training.train import TrainingDiverged, run_training

    try:
        run_training(_load(args), stop_after=args.stop_after)
    except TrainingDiverged as error:
        raise SystemExit(str(error)) from None


def cmd_check(args) -> None:
    """Validate the TOML against an accelerate config before launching (batch split, DeepSpeed values)."""
    from comfyui_framelevel.training.config import ConfigError, load_config
    from comfyui_framelevel.training.distributed import accelerate_launch_env, deepspeed_config_from_env

    world, env = 1, None
    if args.accelerate_config:
        world, env = accelerate_launch_env(args.accelerate_config)
    try:
        config = load_config(args.config, world, parse_overrides(args.set), env=env)
    except ConfigError as error:
        raise SystemExit(f"config error: {error}") from None
    run = config.train
    print(f"ok: {world} process(es) x {run.gradient_accumulation_steps} accumulation step(s) x "
          f"{run.global_batch_size // (world * run.gradient_accumulation_steps)} clip(s) = global batch "
          f"{run.global_batch_size}; {'LoRA' if config.lora else 'full fine-tune'}")
    ds = deepspeed_config_from_env(env) if env is not None else None
    if ds is not None:
        print(f"DeepSpeed ZeRO stage {ds.get('zero_optimization', {}).get('stage')}, accelerate accepted the config")


def cmd_export(args) -> None:
    import dataclasses

    from comfyui_framelevel.training.train import Trainer

    config = _load(args)
    if args.format in ("diffusers", "kohya"):
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, export_format=args.format))
    trainer = Trainer(config)
    if not trainer.resume_if_possible():
        raise SystemExit(f"no checkpoint in {config.train.output_dir}/checkpoints to export")
    if args.format == "full" and config.lora is not None:
        from comfyui_framelevel.training.export import export_full
        from comfyui_framelevel.training.modeling import trainable_model

        state = trainer.accelerator.get_state_dict(trainer.model)  # every process (gathers under FSDP)
        if trainer.accelerator.is_main_process:
            model = trainable_model(config)
            model.load_state_dict(state)
            print(export_full(model, args.out, config.train.export_dtype))
    else:
        written = trainer.export(args.out)
        if written is not None:
            print(written)
    trainer.close()


def cmd_convert_captions(args) -> None:
    from comfyui_framelevel.training.data.captions import convert_caption_file

    for path in args.files:
        for dropped in convert_caption_file(Path(path), pixel_keys=args.pixel_keys, pixel_frames=args.pixel_frames):
            print(f"{path}: no latent frame shows the caption at {dropped}; left out")
        print(f"{path}: latent keys")


def main(argv=None) -> None:
    bootstrap_package()
    parser = argparse.ArgumentParser(prog="framelevel-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("cache", "train", "export", "check"):
        p = sub.add_parser(name)
        p.add_argument("--config", required=True)
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    sub.choices["cache"].add_argument("--text-encoder", required=True, help="UMT5 folder (transformers)")
    sub.choices["cache"].add_argument("--vae", help="Wan VAE folder (diffusers); omit for latent-only data")
    sub.choices["cache"].add_argument("--device", default="cpu")
    sub.choices["train"].add_argument("--stop-after", type=int, default=None, help="stop after N steps")
    for name in ("train", "export"):
        sub.choices[name].add_argument(
            "--trust-pickles", action="store_true",
            help="let resume load pickled state that can run code (DeepSpeed checkpoints, checkpoints of earlier "
                 "trainer versions); only for checkpoints nobody else could change")
    sub.choices["check"].add_argument("--accelerate-config", help="the YAML you will pass to accelerate launch")
    sub.choices["export"].add_argument("--out", required=True)
    sub.choices["export"].add_argument("--format", choices=("diffusers", "kohya", "full"), default="config")
    convert = sub.add_parser("convert-captions", help="rewrite pixel-keyed caption files with latent keys")
    convert.add_argument("files", nargs="+", help="caption JSON files, rewritten in place")
    convert.add_argument("--pixel-keys", action="store_true",
                         help="bare objects {\"1\": ...} are keyed by pixel frames (the trainer's earlier reading)")
    convert.add_argument("--pixel-frames", type=int, default=None,
                         help="the clips' length in pixel frames (else a clip is taken to run past its last key)")
    args = parser.parse_args(argv)
    {"cache": cmd_cache, "train": cmd_train, "export": cmd_export, "check": cmd_check,
     "convert-captions": cmd_convert_captions}[args.command](args)


if __name__ == "__main__":
    main()
