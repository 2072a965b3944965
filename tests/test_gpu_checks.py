"""tests/run_gpu_checks.py end to end without a GPU (--dry-run): every step runs on the CPU at tiny
sizes, the printed ratios are parsed from the benchmarks' real output and written as JSON + markdown.
The sampling and experts benchmarks need ComfyUI; without COMFYUI_PATH the other three steps are run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["gpu_tests", "frame_attention", "sampling", "experts", "train_step"]
NEEDS_COMFYUI = {"sampling", "experts"}


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_ratios(tmp_path):
    steps = STEPS if os.environ.get("COMFYUI_PATH") else [s for s in STEPS if s not in NEEDS_COMFYUI]
    result = subprocess.run([sys.executable, "tests/run_gpu_checks.py", "--dry-run", "--out", str(tmp_path),
                             "--only", *steps], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    (json_path,) = tmp_path.glob("dryrun-cpu-*.json")
    run = json.loads(json_path.read_text())
    assert run["dry_run"] is True and run["device"]["name"] == "cpu"
    assert {"torch", "triton", "cuda", "python"} <= set(run["versions"])
    assert [s["name"] for s in run["steps"]] == steps and all(s["status"] == "ok" for s in run["steps"])
    results = {s["name"]: s["results"] for s in run["steps"]}

    assert results["gpu_tests"].get("skipped", 0) > 0 and not results["gpu_tests"].get("failed")
    (table,) = results["frame_attention"]["tables"]
    assert {"batched", "grouped", "padded_512", "dense_mask_Fx512"} <= set(table["rows"])
    assert table["rows"]["batched"]["x batched"] == 1.0 and table["rows"]["grouped"]["x batched"] > 0
    assert results["train_step"]["ratio"] > 0
    if "sampling" in results:
        speed, memory = results["sampling"]["sections"]
        assert len(speed["ratios"]) == 8 and len(memory["ratios"]) == 2
        assert all(r["ratio"] > 0 for r in speed["ratios"] + memory["ratios"])
    if "experts" in results:
        names = [r["name"] for r in results["experts"]["ratios"]]
        assert len(names) == 3 and names[0].startswith("two-expert DF sampler (step 0) / official")
        assert all(r["ratio"] > 0 for r in results["experts"]["ratios"])

    text = json_path.with_suffix(".md").read_text()
    assert text.startswith("# DRY RUN") and "| train_step | training step / bare step |" in text
