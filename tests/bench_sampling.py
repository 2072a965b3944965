#!/usr/bin/env python3
"""Sampling benchmarks against stock ComfyUI, measured side by side in one run (ratios, not seconds).

    COMFYUI_PATH=/path/to/ComfyUI python tests/bench_sampling.py [--rounds 5]

On one tiny random Wan built through ComfyUI's classes:
* DF sampler (step size 0) time per model evaluation / stock Euler's        (target <= 1.05)
* frame-level cross-attention (6 prompts) / unpatched model, same sampler   (target <= 1.03)
* PMWD batched / ComfyUI's sequential context windows, same windows         (target <= 1.0)
* PMWD / K x sampling one window alone                                       (target <= 1.05)
Rounds are interleaved over the variants; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_support as cs
import conftest  # noqa: F401  (loads the pack as comfyui_framelevel)
import torch


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(variants: dict, rounds: int) -> dict:
    for fn in variants.values():   # warm-up, excluded
        fn()
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    comfy = cs.import_comfy()
    from comfy_extras.nodes_context_windows import ContextWindowsManualNode
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention, calculate_sigmas
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcingSampler
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDSampler
    from test_comfyui_diffusion_forcing import run_custom

    dit = cs.tiny_dit(seed=0, dim=256, num_heads=2, num_layers=4, ffn_dim=512)
    model = cs.comfy_wan_from_dit(dit)
    patched = apply_frame_level_cross_attention(model)
    contexts = [cs.padded_context(None, 20 + 7 * i, 32, length=64, seed=i) for i in range(6)]
    frames, window, windows = 21, 9, 3
    plain, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[5])
    frame_prompts = cs.frame_conditioning(contexts, [min(5, f * 6 // frames) for f in range(frames)])
    sigmas = calculate_sigmas(model, "simple", args.steps)

    def latent(n):
        return {"samples": torch.zeros(1, 16, n, 16, 16)}

    euler = comfy.samplers.sampler_object("euler")
    df = FrameLevelDiffusionForcingSampler().build(0.0, 1, "euler")[0]
    pmwd = FrameLevelPMWDSampler().build(window, windows, 0, "flat", "euler", 0)[0]
    overlap = (windows * window - frames) // (windows - 1)
    ctx = ContextWindowsManualNode.execute(model, window, overlap, "standard_static", 1, False, "flat", dim=2)
    ctx = ctx[0] if isinstance(ctx, tuple) else ctx.result[0]
    variants = {
        "stock_euler": lambda: run_custom(model, euler, plain, negative, latent(frames), sigmas),
        "df_step0": lambda: run_custom(model, df, plain, negative, latent(frames), sigmas),
        "patched_frame_prompts": lambda: run_custom(patched, euler, frame_prompts, negative, latent(frames), sigmas),
        "pmwd_batched": lambda: run_custom(model, pmwd, plain, negative, latent(frames), sigmas),
        "comfy_context_windows": lambda: run_custom(ctx, euler, plain, negative, latent(frames), sigmas),
        "one_window": lambda: run_custom(model, euler, plain, negative, latent(window), sigmas),
    }
    t = measure(variants, args.rounds)
    print(f"tiny Wan dim 256 x 4 layers, {frames} latent frames of 8x8 tokens, {args.steps} steps, cfg 4, "
          f"{args.rounds} interleaved rounds (medians)")
    rows = [
        ("DF sampler per model evaluation / stock Euler", t["df_step0"] / t["stock_euler"], 1.05),
        ("frame-level patch (6 prompts) / unpatched", t["patched_frame_prompts"] / t["stock_euler"], 1.03),
        ("PMWD batched / ComfyUI context windows", t["pmwd_batched"] / t["comfy_context_windows"], 1.0),
        (f"PMWD / {windows} x one window", t["pmwd_batched"] / (windows * t["one_window"]), 1.05),
    ]
    for name, ratio, target in rows:
        print(f"  {name:<48} {ratio:6.3f}   (target <= {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
