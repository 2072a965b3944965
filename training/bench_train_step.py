"""Time one full training step against a bare forward+backward of the same model and batch.

    python training/bench_train_step.py [--repeats 5] [--dim 128 --layers 2 --frames 5]

Prints both times and their ratio (trainer overhead: data collation, noise sampling, loss masking,
NaN checks, clipping, optimizer and scheduler). Runs on CPU, or the GPU when one is present.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli import bootstrap_package  # noqa: E402

bootstrap_package()

import torch  # noqa: E402
from comfyui_framelevel.training.config import config_from_dict  # noqa: E402
from comfyui_framelevel.training.data.dataset import collate  # noqa: E402
from comfyui_framelevel.training.testing import prepare_tiny_run  # noqa: E402
from comfyui_framelevel.training.train import Trainer  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = prepare_tiny_run(tmp, clips=args.batch, train={"global_batch_size": args.batch, "max_steps": 10**6,
                                                             "checkpoint_every": 10**6})
        trainer = Trainer(config_from_dict(raw))
        model, device = trainer.model, trainer.accelerator.device
        batch = collate(trainer.data, list(range(args.batch)), list(range(args.batch)), 16)
        x = batch.latents.to(device)
        t = torch.full((args.batch, x.shape[2]), 500.0, device=device)

        def bare():
            out = model(x, t, frame_text=batch.frame_text)
            out.float().square().mean().backward()
            model.zero_grad(set_to_none=True)

        step_index = iter(range(10**9))

        def step():
            trainer.train_step(next(step_index), list(range(args.batch)))

        bare_s, step_s = timed(bare, args.repeats), timed(step, args.repeats)
    print(f"device {device}; batch {args.batch}; latent {tuple(x.shape)}")
    print(f"bare forward+backward: {bare_s * 1e3:.2f} ms")
    print(f"training step:         {step_s * 1e3:.2f} ms")
    print(f"ratio step / bare:     {step_s / bare_s:.2f}")


if __name__ == "__main__":
    main()
