#!/usr/bin/env python3
"""Wan 2.2 two-expert sampling against the official route, measured side by side in one run (ratios).

    COMFYUI_PATH=/path/to/ComfyUI python tests/bench_experts.py [--rounds 5] [--threads 1]

On two tiny random experts built by ComfyUI's own loader (Wan 2.2 T2V A14B layout, dim 256, 4
layers; 21 latent frames of 8x8 tokens; cfg 4 / 3; boundary 0.875):

* our Diffusion Forcing sampler (step size 0) through FrameLevelWanExperts, per step
  / the official template's two KSamplerAdvanced split at the same step          (target <= 1.05)
* the mixed-call overhead, reported separately: a Diffusion Forcing staircase (step size 2) through
  FrameLevelWanExperts / the same staircase through the high-noise expert alone, with the number
  of calls that mix frames above and below the boundary (each runs both experts), and the cost of
  one mixed call relative to a one-expert call, 1 + ((T_experts - T_one) / mixed) / (T_one / calls)
  (about 2: the price of the exact per-frame rule)
Rounds are interleaved over the variants; medians are reported. `--threads 1` (the default) keeps
a busy neighbour from stalling every multi-threaded op on a shared CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_support as cs
import conftest  # noqa: F401  (loads the pack as comfyui_framelevel)
import torch
from bench_sampling import measure  # the same interleaved rounds and medians

FRAMES, SIZE = 21, 16
SIZES = dict(dim=256, num_heads=2, num_layers=4, ffn_dim=512)
TINY_SIZES = dict(dim=128, num_heads=1, num_layers=1, ffn_dim=256)   # --tiny: only that it runs (the dry run)


def latent(frames: int = FRAMES, size: int = SIZE):
    return {"samples": torch.zeros(1, 16, frames, size, size)}


def build(steps: int, sizes: dict = SIZES, frames: int = FRAMES, size: int = SIZE):
    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise, SamplerCustomAdvanced
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    from comfyui_framelevel.nodes.core.experts import switch_step
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcingSampler
    from comfyui_framelevel.nodes.expert_nodes import FrameLevelWanExperts

    import nodes as comfy_nodes

    high = cs.load_variant("wan22_t2v_a14b", seed=1, **sizes)
    low = cs.load_variant("wan22_t2v_a14b", seed=2, **sizes)
    positive = cs.conditioning(cs.padded_context(None, 20, cs.TEXT_DIM, length=64, seed=0))
    negative = cs.conditioning(cs.padded_context(None, 30, cs.TEXT_DIM, length=64, seed=1))
    sigmas = calculate_sigmas(high, "simple", steps)
    switch = switch_step(sigmas, 0.875)
    experts = FrameLevelWanExperts.execute(high, low, positive, negative, 0.875, 4.0, 3.0, "per_frame")[0]
    one = comfy.samplers.CFGGuider(high)
    one.set_conds(positive, negative)
    one.set_cfg(4.0)
    synchronous = FrameLevelDiffusionForcingSampler.execute(0.0, 1, "euler")[0]
    staircase = FrameLevelDiffusionForcingSampler.execute(2.0, 1, "euler")[0]

    def custom(guider, sampler):
        return SamplerCustomAdvanced().sample(Noise_RandomNoise(0), guider, sampler, sigmas, latent(frames, size))

    def official():
        first = comfy_nodes.KSamplerAdvanced().sample(high, "enable", 0, steps, 4.0, "euler", "simple", positive,
                                                      negative, latent(frames, size), 0, switch, "enable")[0]
        comfy_nodes.KSamplerAdvanced().sample(low, "disable", 0, steps, 3.0, "euler", "simple", positive, negative,
                                              first, switch, 10000, "disable")

    variants = {
        "official_two_samplers": official,
        "experts_df_synchronous": lambda: custom(experts, synchronous),
        "experts_df_staircase": lambda: custom(experts, staircase),
        "one_expert_df_staircase": lambda: custom(one, staircase),
    }
    return variants, experts, switch


def ratio_rows(t: dict, calls: int, mixed: int) -> list[tuple[str, float, str]]:
    """(name, ratio, note) rows from the medians `t` and the staircase's call counts."""
    one_call = t["one_expert_df_staircase"] / calls
    mixed_call = 1.0 + (t["experts_df_staircase"] - t["one_expert_df_staircase"]) / max(mixed, 1) / one_call
    return [
        ("two-expert DF sampler (step 0) / official two KSamplerAdvanced",
         t["experts_df_synchronous"] / t["official_two_samplers"], "(target <= 1.05)"),
        (f"DF staircase through the experts / one expert ({mixed} of {calls} calls mixed)",
         t["experts_df_staircase"] / t["one_expert_df_staircase"], f"(model evaluations {(calls + mixed) / calls:.3f})"),
        ("one mixed call / one one-expert call", mixed_call, "(2 evaluations: about 2)"),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see above)")
    parser.add_argument("--tiny", action="store_true", help="one-layer experts, 5 latent frames of 4x4 tokens "
                        "(proves the script runs; not a measurement)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where ComfyUI runs the experts (default: cuda when present)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cs.import_comfy(cpu=args.device == "cpu")
    sizes, frames, size = (TINY_SIZES, 5, 8) if args.tiny else (SIZES, FRAMES, SIZE)
    variants, experts, switch = build(args.steps, sizes, frames, size)
    t = measure(variants, args.rounds)
    variants["experts_df_staircase"]()     # once more, to count its calls
    calls, mixed = sum(experts.calls.values()), experts.calls["mixed"]
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    print(f"two tiny Wan 2.2 T2V experts (dim {sizes['dim']} x {sizes['num_layers']} layers), {frames} latent frames "
          f"of {size // 2}x{size // 2} tokens, {args.steps} steps (hand-over at step {switch}), cfg 4 / 3, "
          f"{args.rounds} interleaved rounds (medians)")
    for name, ratio, note in ratio_rows(t, calls, mixed):
        print(f"  {name:<70} {ratio:6.3f}   {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
