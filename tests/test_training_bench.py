"""The training-step benchmark runs and prints its ratio (timings are never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import comfyui_framelevel.training as training_package

SCRIPT = Path(training_package.__file__).resolve().parent / "bench_train_step.py"


def test_benchmark_prints_both_medians_and_the_ratio():
    result = subprocess.run([sys.executable, str(SCRIPT), "--batch", "2", "--frames", "3", "--size", "4",
                             "--rounds", "2", "--steps", "2", "--warmup", "1", "--threads", "1", "--lora"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "bare step (forward + loss + backward + AdamW + zero_grad): median" in out, out
    assert "training step (Trainer.steps):" in out and "LoRA" in out, out
    ratio = re.search(r"ratio training / bare: (\d+\.\d+)", out)
    assert ratio and float(ratio.group(1)) > 0, out
