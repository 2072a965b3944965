"""The benchmark compares equal work: every variant it times computes the same attention."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from comfyui_framelevel.kernels import bench_frame_attention as bench


def test_all_benchmark_variants_agree_with_the_batched_backend():
    problem = bench.wan_problem("1.3b", frames=5, tokens_per_frame=6)
    variants = bench.build_variants(problem, torch.float32, torch.device("cpu"), ["batched", "grouped"])
    outputs, seconds = bench.first_calls(variants, torch.device("cpu"))
    differences = bench.output_differences(outputs)
    assert all(value > 0 for value in seconds.values())
    assert set(differences) == {"batched", "grouped", "padded_512", "dense_mask_Fx512"}
    assert max(differences.values()) < 1e-5, differences


def test_benchmark_prints_ratios_of_the_measured_medians(capsys, monkeypatch):
    """Every column divides the row's median by that column's baseline median, from one run."""
    medians = {"batched": 2.0, "grouped": 3.0, "padded_512": 4.0, "dense_mask_Fx512": 8.0, "copy_q_to_o": 1.0}
    monkeypatch.setattr(bench, "measure", lambda variants, device, rounds: {n: medians[n] for n in variants})
    assert bench.main(["--shape", "1.3b", "--frames", "3", "--tokens-per-frame", "4", "--rounds", "1",
                       "--backends", "batched", "grouped", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "x batched" in out and "x dense" in out and "x pad512" in out
    rows = {line.split()[0]: [float(v) for v in line.split()[1:4]] for line in out.splitlines()
            if line.split() and line.split()[0] in medians}
    for name, seconds in medians.items():
        assert rows[name] == pytest.approx([seconds / 2.0, seconds / 8.0, seconds / 4.0], abs=5e-4), name


def test_benchmark_file_runs_from_the_repository():
    script = Path(__file__).resolve().parents[1] / "kernels" / "bench_frame_attention.py"
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--scaled" in result.stdout, result.stderr
