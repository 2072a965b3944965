"""A training step's time over a bare step of the same model and batch: the trainer's overhead.

    python training/bench_train_step.py [--batch 8 --frames 10 --size 16] [--rounds 15 --steps 4]
                                        [--threads 2] [--lora]

- bare step: forward, the same masked flow-matching loss, backward, AdamW step, zero_grad - on inputs
  already on the device (noise drawn once, beforehand). A training step cannot do less.
- training step: one iteration of `Trainer.steps()`, the loop `fit` runs: the next global batch from
  the cache (read, collated, noise levels and noise drawn, pinned on GPUs - prefetched in a background
  thread), copy to the device, forward, loss, backward, gradient clipping, the NaN/inf check (the step's
  one host sync), AdamW, LR scheduler, progress bar. Checkpoints and validation are off (they are
  periodic, not per-step work).

Rounds of `--steps` training steps and `--steps` bare steps alternate (ABBA order), after `--warmup`
steps of each; every step is timed on its own (synchronised on GPUs) and the report uses medians, so a
slow outlier or a drifting machine does not decide the ratio. The target is a ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import os
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
from comfyui_framelevel.training.testing import prepare_tiny_run  # noqa: E402
from comfyui_framelevel.training.train import Trainer, inputs_loss  # noqa: E402


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        sections = {"train": {"global_batch_size": args.batch, "max_steps": 10**9, "checkpoint_every": 10**9,
                              "progress_bar": True, "tensorboard": False}}
        if args.lora:
            sections["lora"] = {"rank": 16, "alpha": 16}
        raw = prepare_tiny_run(tmp, clips=args.batch, latent_frames=args.frames, latent_size=args.size, **sections)
        trainer = Trainer(config_from_dict(raw))
        torch.set_num_threads(args.threads)  # after accelerate, which may change it
        device = trainer.accelerator.device
        model, optimizer = trainer.model, trainer.optimizer.optimizer
        clips = list(range(args.batch))
        bare_inputs = [m.to(device) for m in trainer.prepare(10**6, clips)]

        def bare():
            for inputs in bare_inputs:
                inputs_loss(model, inputs, trainer.config).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps = trainer.steps()

        def train():
            next(steps)

        for _ in range(args.warmup):
            _timed(train, device), _timed(bare, device)
        train_s, bare_s, round_ratios = [], [], []
        for r in range(args.rounds):
            order = (train, bare) if r % 2 == 0 else (bare, train)
            times = {fn: [_timed(fn, device) for _ in range(args.steps)] for fn in order}
            train_s += times[train]
            bare_s += times[bare]
            round_ratios.append(statistics.median(times[train]) / statistics.median(times[bare]))
        steps.close()
        latent = tuple(bare_inputs[0].x_t.shape)
        tokens = latent[2] * (latent[3] // 2) * (latent[4] // 2)
        dim, blocks = trainer.model.config.dim, trainer.model.config.num_layers
    return {"device": device, "latent": latent, "tokens": tokens, "dim": dim, "blocks": blocks,
            "train": _quartiles(train_s), "bare": _quartiles(bare_s), "rounds": _quartiles(round_ratios),
            "ratio": statistics.median(train_s) / statistics.median(bare_s)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="clips per step (one process, one micro-batch)")
    parser.add_argument("--frames", type=int, default=10, help="latent frames per clip")
    parser.add_argument("--size", type=int, default=16, help="latent height = width")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=4, help="steps of each kind per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch CPU threads")
    parser.add_argument("--lora", action="store_true", help="LoRA rank 16 instead of a full fine-tune")
    args = parser.parse_args(argv)
    r = run(args)
    ms = lambda q: f"median {q[1] * 1e3:.2f} ms (quartiles {q[0] * 1e3:.2f}-{q[2] * 1e3:.2f})"  # noqa: E731
    print(f"device {r['device']}; torch threads {args.threads}; batch {args.batch} x latent {list(r['latent'][1:])} "
          f"({r['tokens']} tokens); tiny Wan dim {r['dim']}, {r['blocks']} blocks; "
          f"{'LoRA' if args.lora else 'full fine-tune'}; {args.rounds} rounds x {args.steps} steps")
    print(f"bare step (forward + loss + backward + AdamW + zero_grad): {ms(r['bare'])}")
    print(f"training step (Trainer.steps):                            {ms(r['train'])}")
    print(f"ratio training / bare: {r['ratio']:.3f}  (per-round ratios: median {r['rounds'][1]:.3f}, "
          f"quartiles {r['rounds'][0]:.3f}-{r['rounds'][2]:.3f})")
    return r


if __name__ == "__main__":
    main()
