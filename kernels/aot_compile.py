"""Compile the Triton kernel ahead of time for sm_80 / sm_90 on a machine without a GPU.

Triton ships its own ptxas, so `triton.compile` can lower the kernel to PTX and cubin for any
target. This catches GPU-only compile errors in CI and reports what a tile configuration costs:
registers per thread, spill stores/loads, stack frame and shared memory per program.

    python -m comfyui_framelevel.kernels.aot_compile [--arch 80 90] [--dtype bf16 fp16 fp32]
                                                     [--tiles 128x64x8x2 64x64x4x2 ...]

Tiles are BLOCK_MxBLOCK_Nxwarpsxstages. Without --tiles it compiles the configurations that
`choose_tiles` uses on the GPU.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

TRITON_TYPES = {"bf16": "*bf16", "fp16": "*fp16", "fp32": "*fp32"}
PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")
PTXAS_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


@dataclass
class Report:
    arch: int
    dtype: str
    tiles: tuple[int, int, int, int]
    registers: int
    stack_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int
    shared_bytes: int
    mma: str

    def line(self) -> str:
        block_m, block_n, warps, stages = self.tiles
        return (f"sm_{self.arch:<3} {self.dtype:<5} M{block_m:<4} N{block_n:<4} warps {warps} stages {stages}  "
                f"regs {self.registers:>3}  spill st/ld {self.spill_store_bytes:>4}/{self.spill_load_bytes:<4} B  "
                f"stack {self.stack_bytes:>4} B  shared {self.shared_bytes / 1024:6.1f} KiB  {self.mma}")


def kernel_signature(dtype: str) -> dict:
    """Argument types of `frame_attention_fwd_kernel` (constexprs are filled in separately)."""
    pointer = TRITON_TYPES[dtype]
    return {
        "Q": pointer, "K": pointer, "V": pointer, "Bias": "*fp32", "Out": pointer,
        "FramePrompt": "*i32", "SegStart": "*i32", "SegLen": "*i32",
        "stride_qb": "i32", "stride_qt": "i32", "stride_kt": "i32", "stride_vt": "i32",
        "stride_ob": "i32", "stride_ot": "i32", "qk_scale_log2": "fp32", "tokens_per_frame": "i32",
        "frames": "i32",
    }


def compile_kernel(arch: int, dtype: str, tiles, head_dim: int = 128):
    """triton.compile the forward kernel for `sm_{arch}`; returns the CompiledKernel."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from .triton_frame_attn import frame_attention_fwd_kernel, interpreting

    if interpreting():
        raise RuntimeError("AOT compile needs the compiled kernel; unset TRITON_INTERPRET and run again")
    block_m, block_n, warps, stages = tiles
    constexprs = dict(HEAD_DIM=head_dim, BLOCK_D=max(16, triton.next_power_of_2(head_dim)), BLOCK_M=block_m,
                      BLOCK_N=block_n, HAS_BIAS=True, UPCAST=False, IEEE_FP32=dtype == "fp32")
    signature = {**kernel_signature(dtype), **{name: "constexpr" for name in constexprs}}
    names = frame_attention_fwd_kernel.arg_names
    aligned = ["Q", "K", "V", "Bias", "Out", "stride_qb", "stride_qt", "stride_kt", "stride_vt", "stride_ob",
               "stride_ot"]  # what the JIT would infer for Wan's shapes (H*D = 1536 or 5120)
    attrs = {(names.index(name),): [["tt.divisibility", 16]] for name in aligned}
    source = ASTSource(fn=frame_attention_fwd_kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    target = GPUTarget("cuda", arch, 32)
    options = {"num_warps": warps, "num_stages": stages}
    return triton.compile(source, target=target, options=options)


def ptxas_usage(ptx: str, arch: int) -> tuple[int, int, int, int]:
    """(registers, stack, spill stores, spill loads) from the bundled ptxas in verbose mode."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    ptxas = get_ptxas(arch).path
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "kernel.ptx")
        with open(source, "w") as handle:
            handle.write(ptx)
        result = subprocess.run([ptxas, "-v", f"--gpu-name={sm_arch_from_capability(arch)}", source,
                                 "-o", os.path.join(folder, "kernel.cubin")],
                                capture_output=True, text=True, check=True)
    text = result.stderr + result.stdout
    registers, stack = PTXAS_REGISTERS.search(text), PTXAS_STACK.search(text)
    if registers is None or stack is None:
        raise RuntimeError(f"could not parse ptxas -v output:\n{text}")
    return (int(registers.group(1)), *(int(group) for group in stack.groups()))


def report(arch: int, dtype: str, tiles, head_dim: int = 128) -> Report:
    compiled = compile_kernel(arch, dtype, tiles, head_dim)
    ptx = compiled.asm["ptx"]
    registers, stack, spill_stores, spill_loads = ptxas_usage(ptx, arch)
    mma = "wgmma" if "wgmma" in ptx else ("mma.sync" if "mma.sync" in ptx else "fma")
    return Report(arch, dtype, tuple(tiles), registers, stack, spill_stores, spill_loads,
                  int(compiled.metadata.shared), mma)


def default_tiles(dtype: str, arch: int) -> tuple[int, int, int, int]:
    import torch

    from .triton_frame_attn import choose_tiles

    return choose_tiles(128, {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype], False, arch)


def parse_tiles(text: str) -> tuple[int, int, int, int]:
    parts = tuple(int(part) for part in text.lower().split("x"))
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"tiles must be BLOCK_MxBLOCK_NxWARPSxSTAGES, got {text!r}")
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="compute capabilities (80, 90)")
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp16", "fp32"], choices=sorted(TRITON_TYPES))
    parser.add_argument("--tiles", type=parse_tiles, nargs="*", default=None,
                        help="BLOCK_MxBLOCK_NxWARPSxSTAGES (default: the tiles the dispatcher uses)")
    parser.add_argument("--head-dim", type=int, default=128)
    args = parser.parse_args(argv)
    failures = 0
    for arch in args.arch:
        for dtype in args.dtype:
            for tiles in args.tiles or [default_tiles(dtype, arch)]:
                try:
                    print(report(arch, dtype, tiles, args.head_dim).line(), flush=True)
                except Exception as error:  # report every configuration, fail at the end
                    failures += 1
                    print(f"sm_{arch} {dtype} {tiles}: FAILED {type(error).__name__}: {error}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
