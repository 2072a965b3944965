#!/usr/bin/env python3
"""Sampling benchmarks against stock ComfyUI, measured side by side in one run (ratios, not seconds).

    COMFYUI_PATH=/path/to/ComfyUI python tests/bench_sampling.py [--rounds 5] [--threads 1] [--device cuda]

Speed, on one tiny random Wan built through ComfyUI's classes (dim 256, 4 layers):
* DF sampler (step size 0) time per model evaluation / stock Euler's        (target <= 1.05)
* frame-level cross-attention (6 prompts) / unpatched model, same sampler   (target <= 1.03)
* PMWD / ComfyUI's sequential context windows, same windows                  (target <= 1.0)
  for both routes (our PMWD sampler; the PMWD model patch under stock Euler), with windows per
  call left automatic (one on the CPU) and with all K windows stacked into one call (the GPU
  setting; on a CPU stacking only enlarges the working set, so it is reported, not targeted)
* PMWD / K x sampling one window alone                                       (target <= 1.05)
Rounds are interleaved over the variants; medians are reported.

Peak memory, on a one-layer Wan with the 1.3B model's width (dim 1536, ffn 8960) so activations
per latent frame relate to the latent's size as in the real model; main-job layout, 121 latent
frames in 7 windows of 21, one step:
* PMWD with one window per model call / sampling one window alone            (target <= 1.15)
Peak = highest sum of live tensor bytes allocated during sampling (torch profiler memory events;
CUDA's max_memory_allocated when run on a GPU). Weights are loaded before and do not count.

CPU timings on a shared machine are noisy: `--threads 1` (the default) keeps one busy neighbour
from stalling every multi-threaded op, which otherwise dominates the ratios. `--device cuda` runs
ComfyUI and the models on the GPU (the default when one is present); `--tiny` shrinks both models to
check the script quickly (tests/run_gpu_checks.py --dry-run), its ratios mean nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_support as cs
import conftest  # noqa: F401  (loads the pack as comfyui_framelevel)
import torch


@dataclass(frozen=True)
class Sizes:
    """Model sizes: the tiny Wan of the speed part, the one-layer Wan of the memory part."""

    speed: dict
    memory: dict


SIZES = Sizes(speed=dict(dim=256, num_heads=2, num_layers=4, ffn_dim=512),
              memory=dict(dim=1536, num_heads=12, num_layers=1, ffn_dim=8960))
TINY = Sizes(speed=dict(dim=32, num_heads=2, num_layers=1, ffn_dim=64),
             memory=dict(dim=64, num_heads=2, num_layers=1, ffn_dim=128))


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


def peak_tensor_bytes(fn, device: str) -> int:
    """Highest total of live tensor bytes allocated while `fn` runs (allocations minus frees in
    time order; on CUDA the allocator's own peak)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def latent(frames, size=16):
    return {"samples": torch.zeros(1, 16, frames, size, size)}


def speed_rows(comfy, rounds: int, steps: int, sizes: Sizes = SIZES):
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention, calculate_sigmas
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcingSampler
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDModel, FrameLevelPMWDSampler
    from test_comfyui_diffusion_forcing import run_custom

    model = cs.comfy_wan_from_dit(cs.tiny_dit(seed=0, **sizes.speed))
    patched = apply_frame_level_cross_attention(model)
    contexts = [cs.padded_context(None, 20 + 7 * i, 32, length=64, seed=i) for i in range(6)]
    frames, window, windows = 21, 9, 3
    plain, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[5])
    frame_prompts = cs.frame_conditioning(contexts, [min(5, f * 6 // frames) for f in range(frames)])
    sigmas = calculate_sigmas(model, "simple", steps)

    euler = comfy.samplers.sampler_object("euler")
    df = FrameLevelDiffusionForcingSampler.execute(0.0, 1, "euler")[0]
    pmwd = FrameLevelPMWDSampler.execute(window, windows, 0, "flat", "euler", 0)[0]
    pmwd_stacked = FrameLevelPMWDSampler.execute(window, windows, 0, "flat", "euler", windows)[0]
    pmwd_patch = FrameLevelPMWDModel.execute(model, window, windows, 0, "flat", 0)[0]
    pmwd_patch_stacked = FrameLevelPMWDModel.execute(model, window, windows, 0, "flat", windows)[0]
    overlap = (windows * window - frames) // (windows - 1)
    ctx = cs.context_windows(model, window, overlap, causal_window_fix=False if cs.has_causal_window_fix() else None)
    variants = {
        "stock_euler": lambda: run_custom(model, euler, plain, negative, latent(frames), sigmas),
        "df_step0": lambda: run_custom(model, df, plain, negative, latent(frames), sigmas),
        "patched_frame_prompts": lambda: run_custom(patched, euler, frame_prompts, negative, latent(frames), sigmas),
        "pmwd_batched": lambda: run_custom(model, pmwd, plain, negative, latent(frames), sigmas),
        "pmwd_stacked": lambda: run_custom(model, pmwd_stacked, plain, negative, latent(frames), sigmas),
        "pmwd_patch_euler": lambda: run_custom(pmwd_patch, euler, plain, negative, latent(frames), sigmas),
        "pmwd_patch_stacked": lambda: run_custom(pmwd_patch_stacked, euler, plain, negative, latent(frames), sigmas),
        "comfy_context_windows": lambda: run_custom(ctx, euler, plain, negative, latent(frames), sigmas),
        "one_window": lambda: run_custom(model, euler, plain, negative, latent(window), sigmas),
    }
    t = measure(variants, rounds)
    header = (f"speed: tiny Wan dim {sizes.speed['dim']} x {sizes.speed['num_layers']} layers, {frames} latent frames of 8x8 tokens, {windows} windows of "
              f"{window}, {steps} steps, cfg 4, {rounds} interleaved rounds (medians)")
    return header, [
        ("DF sampler per model evaluation / stock Euler", t["df_step0"] / t["stock_euler"], 1.05),
        ("frame-level patch (6 prompts) / unpatched", t["patched_frame_prompts"] / t["stock_euler"], 1.03),
        ("PMWD sampler (auto) / ComfyUI context windows", t["pmwd_batched"] / t["comfy_context_windows"], 1.0),
        ("PMWD model patch + Euler (auto) / ComfyUI context windows",
         t["pmwd_patch_euler"] / t["comfy_context_windows"], 1.0),
        (f"PMWD sampler / {windows} x one window", t["pmwd_batched"] / (windows * t["one_window"]), 1.05),
        (f"PMWD model patch / {windows} x one window", t["pmwd_patch_euler"] / (windows * t["one_window"]), 1.05),
        (f"PMWD sampler, {windows} windows per call / ComfyUI context windows",
         t["pmwd_stacked"] / t["comfy_context_windows"], None),
        (f"PMWD model patch, {windows} windows per call / ComfyUI context windows",
         t["pmwd_patch_stacked"] / t["comfy_context_windows"], None),
    ]


def memory_rows(comfy, device: str, sizes: Sizes = SIZES):
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDModel, FrameLevelPMWDSampler
    from test_comfyui_diffusion_forcing import run_custom

    model = cs.comfy_wan_from_dit(cs.tiny_dit(seed=0, **sizes.memory))
    plain = cs.conditioning(cs.padded_context(None, 20, 32, length=64, seed=0))
    negative = cs.conditioning(cs.padded_context(None, 30, 32, length=64, seed=1))
    frames, window, windows, size = 121, 21, 7, 8
    sigmas = calculate_sigmas(model, "simple", 1)
    euler = comfy.samplers.sampler_object("euler")
    pmwd = FrameLevelPMWDSampler.execute(window, windows, 0, "flat", "euler", 1)[0]
    pmwd_patch = FrameLevelPMWDModel.execute(model, window, windows, 0, "flat", 1)[0]
    runs = {
        "one_window": lambda: run_custom(model, euler, plain, negative, latent(window, size), sigmas),
        "pmwd_sampler": lambda: run_custom(model, pmwd, plain, negative, latent(frames, size), sigmas),
        "pmwd_patch": lambda: run_custom(pmwd_patch, euler, plain, negative, latent(frames, size), sigmas),
    }
    for fn in runs.values():   # warm-up: lazy loads and caches happen outside the measurement
        fn()
    peak = {name: peak_tensor_bytes(fn, device) for name, fn in runs.items()}
    header = (f"peak memory: Wan dim {sizes.memory['dim']} / ffn {sizes.memory['ffn_dim']} x 1 layer, {frames} latent frames of {size // 2}x{size // 2} "
              f"tokens, {windows} windows of {window}, one window per model call, cfg 4; one window alone "
              f"peaks at {peak['one_window'] / 2**20:.1f} MiB")
    return header, [
        ("PMWD sampler, 1 window per call / one window alone", peak["pmwd_sampler"] / peak["one_window"], 1.15),
        ("PMWD model patch, 1 window per call / one window alone", peak["pmwd_patch"] / peak["one_window"], 1.15),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see above)")
    parser.add_argument("--only", choices=["speed", "memory"], help="run one of the two parts")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where ComfyUI runs the models (default: cuda when present)")
    parser.add_argument("--tiny", action="store_true", help="tiny models: checks the script, measures nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    comfy = cs.import_comfy(cpu=args.device == "cpu")
    sizes = TINY if args.tiny else SIZES
    parts = []
    if args.only != "memory":
        parts.append(speed_rows(comfy, args.rounds, args.steps, sizes))
    if args.only != "speed":
        parts.append(memory_rows(comfy, args.device, sizes))
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}"
          f"{' (tiny models: not a measurement)' if args.tiny else ''}")
    for header, rows in parts:
        print(header)
        for name, ratio, target in rows:
            goal = f"(target <= {target})" if target else "(GPU setting; no CPU target)"
            print(f"  {name:<64} {ratio:6.3f}   {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
