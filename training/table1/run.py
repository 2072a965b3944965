"""The paper's Table 1 in miniature, one command (CPU, ComfyUI checkout needed for sampling):

    python training/table1/run.py --comfyui /path/to/ComfyUI [--out docs/benchmarks/table1] [--quick]

Trains two tiny Wan DiTs with the trainer's CLI on a synthetic latent-space multi-scene domain
(frame captions + Diffusion Forcing, and the video-caption synchronous baseline), loads their exports
in ComfyUI, generates 4x-long stories by FIFO / sliding window / PMWD with video-level and
frame-level prompts, and prints the table (also written as <out>.json and <out>.md).
See docs/table1.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = "comfyui_framelevel"
ROOT = Path(__file__).resolve().parents[2]


def bootstrap_package() -> None:
    """Register the repository root as package `comfyui_framelevel` (as training/cli.py does)."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"),
                        help="ComfyUI checkout (default: $COMFYUI_PATH)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "table1"),
                        help="results path without suffix: writes OUT.json and OUT.md")
    parser.add_argument("--work", help="folder for datasets, caches, runs (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="the reduced run of the slow test (~2-3 min)")
    parser.add_argument("--steps", type=int, help="training steps of each run (default 1500; quick 250)")
    parser.add_argument("--stories", type=int, help="long stories per row (default 24; quick 3)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the video-caption baseline run")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not args.comfyui or not Path(args.comfyui, "comfy").is_dir():
        raise SystemExit("give a ComfyUI checkout with --comfyui or COMFYUI_PATH (sampling runs inside ComfyUI)")
    bootstrap_package()
    from comfyui_framelevel.training.table1.pipeline import QUICK, Table1Settings, run_table1
    from comfyui_framelevel.training.table1.report import format_report, write_results

    settings = QUICK if args.quick else Table1Settings()
    if args.steps:
        settings = dataclasses.replace(settings, train=dataclasses.replace(settings.train, max_steps=args.steps))
    if args.stories:
        settings = dataclasses.replace(settings, stories=args.stories)
    if args.no_baseline:
        settings = dataclasses.replace(settings, baseline=False)
    with tempfile.TemporaryDirectory(prefix="table1-") as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        result = run_table1(settings, work, args.comfyui)
    print(format_report(result))
    for path in write_results(result, Path(args.out)):
        print("wrote", path)
    return result


if __name__ == "__main__":
    main()
