"""Side-by-side benchmark of the frame-level cross-attention backends; prints RATIOS.

    python -m comfyui_framelevel.kernels.bench_frame_attention [--shape 1.3b 14b] [--scaled] ...
    python kernels/bench_frame_attention.py --help          (from the repository, no install)

All variants run in one process on identical inputs, in interleaved rounds (the order rotates
every round), and each is summarised by its median. Reported per variant: time relative to
(a) SDPA with frames in the batch dim, (b) a dense block-diagonal mask over F x 512 keys (the
naive "concatenate every frame's 512-token context" route) and (c) padding every prompt to 512
(Wan-native, mask-free), plus, on CUDA, the fraction of the memory/compute floor and the ratio to
a same-run Q->O copy. Without CUDA the shapes are scaled down (tokens per frame 1560 -> 130).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

if __package__ in (None, ""):  # run as a file from the repository: load the pack under its name
    _pack = types.ModuleType("comfyui_framelevel")
    _pack.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules.setdefault("comfyui_framelevel", _pack)
    __package__ = "comfyui_framelevel.kernels"  # noqa: A001

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from . import dispatch  # noqa: E402
from .testing import literal_padded_keys, make_problem  # noqa: E402

SHAPES = {"1.3b": dict(heads=12, head_dim=128), "14b": dict(heads=40, head_dim=128)}
PROMPT_LENGTHS = [97, 120, 131, 88, 140, 115]  # 6 distinct prompts, ~120 tokens each
WAN_CONTEXT = 512
H200_FLOPS, H200_BYTES_PER_S = 790e12, 4.3e12


def wan_problem(shape: str, frames: int, tokens_per_frame: int, seed: int = 0):
    """6 prompts over `frames` latent frames in runs, each prompt + one pad row of bias ln(n_pad)."""
    routing = [[f * len(PROMPT_LENGTHS) // frames for f in range(frames)]]
    return make_problem(PROMPT_LENGTHS, [WAN_CONTEXT - n for n in PROMPT_LENGTHS], routing,
                        tokens_per_frame=tokens_per_frame, seed=seed, **SHAPES[shape])


def padded_512_inputs(problem, dtype, device):
    """Every frame's prompt padded to 512 literal rows: K/V [F, H, 512, D] for mask-free SDPA."""
    heads = problem.heads
    keys, values = [], []
    for prompt in problem.frame_prompt[0].tolist():
        k, v = literal_padded_keys(problem, prompt, dtype)
        keys.append(k)
        values.append(v)
    split = lambda t: torch.stack(t).to(device).unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731
    return split(keys), split(values)


def dense_mask_inputs(padded_k, padded_v, tokens_per_frame, device):
    """Naive route: all frames' 512-padded contexts concatenated, with a dense block-diagonal mask."""
    frames, heads, width, head_dim = padded_k.shape
    k = padded_k.transpose(0, 1).reshape(1, heads, frames * width, head_dim)
    v = padded_v.transpose(0, 1).reshape(1, heads, frames * width, head_dim)
    query_frame = torch.arange(frames * tokens_per_frame, device=device) // tokens_per_frame
    key_frame = torch.arange(frames * width, device=device) // width
    return k, v, (query_frame[:, None] == key_frame[None, :]).view(1, 1, frames * tokens_per_frame, -1)


def build_variants(problem, dtype, device, backends):
    """name -> zero-argument callable returning [B, F*LF, H*D] (or a tensor of that size)."""
    q, k, v, *tables = problem.args(dtype, device)
    kwargs = problem.kwargs(device)
    heads, tokens = problem.heads, problem.tokens_per_frame
    frames = problem.frame_prompt.shape[1]
    variants = {}
    for name in backends:
        function = dispatch.backend_function(name)
        variants[name] = lambda function=function: function(q, k, v, *tables, **kwargs)
    padded_k, padded_v = padded_512_inputs(problem, dtype, device)
    q_frames = q.reshape(frames, tokens, heads, -1).transpose(1, 2)
    variants["padded_512"] = lambda: F.scaled_dot_product_attention(q_frames, padded_k, padded_v)
    dense_k, dense_v, dense_mask = dense_mask_inputs(padded_k, padded_v, tokens, device)
    q_all = q.reshape(1, frames * tokens, heads, -1).transpose(1, 2)
    variants["dense_mask_Fx512"] = lambda: F.scaled_dot_product_attention(q_all, dense_k, dense_v,
                                                                           attn_mask=dense_mask)
    out = torch.empty_like(q)
    variants["copy_q_to_o"] = lambda: out.copy_(q)
    return variants


def timer(device):
    """Returns a function that times one call in seconds (CUDA events on GPU)."""
    if device.type == "cuda":
        def time_cuda(call):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        return time_cuda

    def time_cpu(call):
        begin = time.perf_counter()
        call()
        return time.perf_counter() - begin
    return time_cpu


def measure(variants, device, rounds: int):
    """Interleaved rounds (rotating order) after one untimed warm-up; returns medians per variant."""
    clock = timer(device)
    for call in variants.values():
        call()
    samples = {name: [] for name in variants}
    names = list(variants)
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(clock(variants[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def ideal_floor_seconds(problem, dtype):
    """Memory/compute floor of the ideal kernel on an H200: read Q, K/V once, write O."""
    element = torch.finfo(dtype).bits // 8
    queries, channels = problem.q.shape[1], problem.q.shape[2]
    keys = problem.seg_len[problem.frame_prompt[0]].double().mean().item()
    flops = 4 * queries * keys * channels
    moved = (2 * queries + 2 * problem.k.shape[0]) * channels * element
    return max(flops / H200_FLOPS, moved / H200_BYTES_PER_S)


def print_table(title, medians, first, problem, dtype, device, reference_out):
    base, dense, padded = medians["batched"], medians["dense_mask_Fx512"], medians["padded_512"]
    print(f"\n{title}")
    header = f"{'variant':<18}{'x batched':>10}{'x dense':>10}{'x pad512':>10}{'rel diff':>14}"
    if device.type == "cuda":
        header += f"{'x copy':>9}{'% floor':>9}"
    print(header + f"{'first call x':>14}")  # first call (compile included) / median
    floor = ideal_floor_seconds(problem, dtype)
    for name, seconds in sorted(medians.items(), key=lambda item: item[1]):
        difference = reference_out.get(name)
        line = f"{name:<18}{seconds / base:>10.3f}{seconds / dense:>10.4f}{seconds / padded:>10.3f}"
        line += f"{difference:>14.1e}" if difference is not None else f"{'-':>14}"
        if device.type == "cuda":
            line += f"{seconds / medians['copy_q_to_o']:>9.2f}{100 * floor / seconds:>8.1f}%"
        print(line + f"{first[name] / seconds:>14.1f}")


def first_calls(variants, device):
    """Outputs and seconds of every variant's very first call (compile/autotune included)."""
    clock = timer(device)
    outputs, seconds = {}, {}
    for name, call in variants.items():
        seconds[name] = clock(lambda name=name, call=call: outputs.__setitem__(name, call()))
    return outputs, seconds


def output_differences(outputs):
    """Relative difference of every attention variant's output to the `batched` output (sanity)."""
    expected = outputs["batched"].float()
    differences = {}
    for name, out in outputs.items():
        if name == "copy_q_to_o":
            continue
        out = out.transpose(1, 2).reshape(expected.shape) if out.ndim == 4 else out
        differences[name] = float((out.float() - expected).norm() / expected.norm())
    return differences


def default_backends(device):
    names = ["batched", "grouped"]
    for optional in ("flex", "triton"):
        if dispatch.unavailable_reason(optional, device) is None and (device.type == "cuda" or optional == "flex"):
            names.append(optional)
    return names


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", nargs="+", choices=sorted(SHAPES), default=["1.3b", "14b"])
    parser.add_argument("--scaled", action="store_true", default=None,
                        help="scaled-down shape (default when CUDA is unavailable)")
    parser.add_argument("--tokens-per-frame", type=int, default=None,
                        help="override tokens per latent frame (default 1560, or 130 when scaled)")
    parser.add_argument("--frames", type=int, default=21)
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default=None,
                        help="default bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 20 CUDA, 5 CPU)")
    parser.add_argument("--backends", nargs="+", choices=dispatch.BACKENDS, default=None,
                        help="backends to time (default: all that can run here; flex on CPU "
                             "only when listed, its compile takes seconds)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    scaled = (device.type != "cuda") if args.scaled is None else args.scaled
    tokens = args.tokens_per_frame or (130 if scaled else 1560)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    rounds = args.rounds or (20 if device.type == "cuda" else 5)
    backends = args.backends or [name for name in default_backends(device)
                                 if device.type == "cuda" or name != "flex"]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, {dtype}, {rounds} interleaved rounds, medians; ratios are "
          f"time(variant) / time(column baseline): < 1 is faster")
    for shape in args.shape:
        problem = wan_problem(shape, args.frames, tokens)
        with torch.no_grad():
            variants = build_variants(problem, dtype, device, backends)
            outputs, first = first_calls(variants, device)
            differences = output_differences(outputs)
            del outputs
            medians = measure(variants, device, rounds)
        title = (f"Wan {shape}: {args.frames} frames x {tokens} tokens, {problem.heads} heads x "
                 f"{problem.q.shape[-1] // problem.heads}, {len(PROMPT_LENGTHS)} prompts of "
                 f"{min(PROMPT_LENGTHS)}-{max(PROMPT_LENGTHS)} tokens + pad row")
        print_table(title, medians, first, problem, dtype, device, differences)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
