#!/usr/bin/env python3
"""GPU in one command: the `gpu` tests and every benchmark, ratios written to a results file.

    COMFYUI_PATH=/path/to/ComfyUI python tests/run_gpu_checks.py            # on a CUDA machine
    python tests/run_gpu_checks.py --dry-run [--out DIR]                     # anywhere, on the CPU

Steps, each in its own process with its own time limit (together under 8 minutes):
1. `gpu_tests`: `python -m pytest -q -m gpu tests` (the Triton and FlexAttention checks on CUDA);
2. `frame_attention`: kernels/bench_frame_attention.py, Wan 1.3B and 14B shapes, 10 rounds;
3. `sampling`: tests/bench_sampling.py on the GPU (needs COMFYUI_PATH), 3 rounds;
4. `experts`: tests/bench_experts.py (Wan 2.2 two experts vs the official two-sampler route), 3 rounds;
5. `train_step`: training/bench_train_step.py, 8 rounds.
The printed ratios are parsed (tests/gpu_checks_report.py) and written with the device name and the
torch / triton / CUDA versions to `docs/benchmarks/gpu-<device>-<date>.json` and a markdown table
next to it. The exit status is 0 only when every step ran, passed and gave its ratios.

`--dry-run` proves the script end to end without a GPU: every step runs on the CPU at tiny sizes (the
`gpu` tests are collected and skip), and the results, marked `"dry_run": true`, go to `--out` (default
a new temporary folder) and are not measurements.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_checks_report as report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 8 * 60


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[str, ...]          # after `python`
    timeout_s: int
    parse: object                  # output -> results dict (empty: no ratios found)
    needs_comfyui: bool = False


def gpu_steps() -> list[Step]:
    return [
        Step("gpu_tests", ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests"), 160,
             report.parse_pytest),
        Step("frame_attention", ("kernels/bench_frame_attention.py", "--rounds", "10"), 100,
             report.parse_frame_attention),
        Step("sampling", ("tests/bench_sampling.py", "--device", "cuda", "--rounds", "3"), 100,
             report.parse_sampling, needs_comfyui=True),
        Step("experts", ("tests/bench_experts.py", "--device", "cuda", "--rounds", "3"), 60,
             report.parse_experts, needs_comfyui=True),
        Step("train_step", ("training/bench_train_step.py", "--rounds", "8"), 60, report.parse_train_step),
    ]


def dry_run_steps() -> list[Step]:
    """The same steps on the CPU at tiny sizes: only that each runs and gives parsable ratios."""
    return [
        Step("gpu_tests", ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/test_kernels_gpu.py"),
             120, report.parse_pytest),
        Step("frame_attention", ("kernels/bench_frame_attention.py", "--device", "cpu", "--shape", "1.3b",
                                 "--tokens-per-frame", "8", "--frames", "3", "--rounds", "1"), 120,
             report.parse_frame_attention),
        Step("sampling", ("tests/bench_sampling.py", "--device", "cpu", "--rounds", "1", "--steps", "1",
                          "--tiny"), 180, report.parse_sampling, needs_comfyui=True),
        Step("experts", ("tests/bench_experts.py", "--device", "cpu", "--rounds", "1", "--steps", "3", "--tiny"), 180,
             report.parse_experts, needs_comfyui=True),
        Step("train_step", ("training/bench_train_step.py", "--batch", "2", "--frames", "2", "--size", "4",
                            "--rounds", "2", "--steps", "1", "--warmup", "1", "--threads", "1"), 120,
             report.parse_train_step),
    ]


def run_step(step: Step, deadline: float, env: dict) -> dict:
    """Run one step; its status: ok, failed (exit status or no ratios), timeout, or not_run."""
    record = {"name": step.name, "command": ["python", *step.args], "status": "not_run", "seconds": 0.0}
    if step.needs_comfyui and not os.environ.get("COMFYUI_PATH"):
        return {**record, "reason": "needs COMFYUI_PATH (a ComfyUI checkout, see .ci/setup_comfyui.sh)"}
    timeout = min(step.timeout_s, max(1.0, deadline - time.monotonic()))
    start = time.monotonic()
    print(f"== {step.name}: {' '.join(record['command'])} (limit {timeout:.0f} s)", flush=True)
    try:
        done = subprocess.run([sys.executable, *step.args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        output, returncode = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as err:
        output = _text(err.stdout) + _text(err.stderr)
        returncode = None
    results = step.parse(output)
    status = "timeout" if returncode is None else ("ok" if returncode == 0 and results else "failed")
    print(f"   {status} in {time.monotonic() - start:.0f} s", flush=True)
    return {**record, "status": status, "seconds": round(time.monotonic() - start, 1),
            "returncode": returncode, "results": results, "output_tail": output[-4000:]}


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def device_info(dry_run: bool) -> dict:
    import torch
    if dry_run or not torch.cuda.is_available():
        return {"name": "cpu", "slug": "cpu", "cuda": False}
    properties = torch.cuda.get_device_properties(0)
    slug = re.sub(r"[^a-z0-9]+", "-", properties.name.lower()).strip("-")
    return {"name": properties.name, "slug": slug, "cuda": True, "count": torch.cuda.device_count(),
            "capability": f"{properties.major}.{properties.minor}",
            "memory_gib": round(properties.total_memory / 2**30, 1)}


def versions() -> dict:
    import platform

    import torch
    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda or "none"}
    try:
        import triton
        found["triton"] = triton.__version__
    except ImportError:
        found["triton"] = "not installed"
    comfy_version = Path(os.environ.get("COMFYUI_PATH", "/nonexistent"), "comfyui_version.py")
    if comfy_version.is_file():
        match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", comfy_version.read_text())
        found["comfyui"] = match[1] if match else "unknown"
    return found


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() or None


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes (no GPU needed)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default docs/benchmarks; a new temporary folder for --dry-run)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these steps (names as above)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device here: run on a GPU machine, or use --dry-run to check the script on the CPU")
        return 2
    steps = dry_run_steps() if args.dry_run else gpu_steps()
    steps = [s for s in steps if args.only is None or s.name in args.only]
    started, deadline = time.monotonic(), time.monotonic() + BUDGET_S
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if args.dry_run else dict(os.environ)  # dry: CPU only
    run = {"dry_run": args.dry_run, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "device": device_info(args.dry_run), "versions": versions(), "commit": git_commit(),
           "budget_s": BUDGET_S, "steps": [run_step(step, deadline, env) for step in steps]}
    run["total_seconds"] = round(time.monotonic() - started, 1)
    folder = args.out or (Path(tempfile.mkdtemp(prefix="gpu-checks-dryrun-")) if args.dry_run
                          else ROOT / "docs" / "benchmarks")
    json_path, md_path = report.write_results(run, folder)
    print(report.markdown(run))
    print(f"results: {json_path}\n         {md_path}")
    return 0 if all(step["status"] == "ok" for step in run["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
