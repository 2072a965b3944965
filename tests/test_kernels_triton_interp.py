"""The Triton kernel on CPU under TRITON_INTERPRET=1, against the float64 reference.

TRITON_INTERPRET must be set before triton is first imported, so the default run executes this
file again in a child pytest process with the variable set; the real tests below only exist in
that child. In the interpreter bf16 operands are upcast to fp32 inside the kernel (its bf16
`tl.dot` is broken) and the output is rounded to bf16 by torch: bf16 here checks the kernel's
logic, not bf16 tensor-core numerics (the `gpu` tests do that).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
ROOT = Path(__file__).resolve().parents[1]

if not INTERPRETING:

    def test_triton_kernel_under_the_cpu_interpreter():
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        command = [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-x", "-p", "no:cacheprovider"]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"interpreter tests failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
        assert " passed" in result.stdout and "skipped" not in result.stdout.split("passed")[-1]

else:
    from comfyui_framelevel.kernels import frame_cross_attention
    from comfyui_framelevel.kernels.testing import (
        STANDARD_CASES,
        allowed_error,
        error_per_frame_head,
        make_problem,
    )
    from comfyui_framelevel.kernels.triton_frame_attn import interpreting, triton_frame_attention_forward

    DTYPES = [torch.float32, torch.float16, torch.bfloat16]

    def test_kernel_module_was_built_for_the_interpreter():
        assert interpreting()

    @pytest.mark.parametrize("dtype", DTYPES, ids=str)
    @pytest.mark.parametrize("case", sorted(STANDARD_CASES))
    def test_triton_matches_float64_reference(case, dtype):
        problem = make_problem(**STANDARD_CASES[case], seed=31 + DTYPES.index(dtype))
        out = frame_cross_attention(*problem.args(dtype), **problem.kwargs(), backend="triton")
        assert out.dtype == dtype
        errors = error_per_frame_head(out, problem.rounded_reference(dtype), problem.frame_prompt.shape[1],
                                      problem.heads)
        bound, sdpa_error = allowed_error(problem, dtype)
        assert torch.isfinite(errors).all()
        assert float(errors.max()) <= bound, f"error {float(errors.max()):.2e} > {bound:.2e} (SDPA {sdpa_error:.2e})"

    def test_gpu_sized_tiles_with_head_dim_128():
        """Tiles of the compiled kernel (64x64 here) and D=128 as in Wan, LF not a tile multiple."""
        problem = make_problem([70, 3], [442, 509], [[1, 0, 0]], tokens_per_frame=70, heads=1, head_dim=128, seed=5)
        out = triton_frame_attention_forward(*problem.args(torch.float16), **problem.kwargs(), tiles=(64, 64, 4, 1))
        errors = error_per_frame_head(out, problem.rounded_reference(torch.float16), 3, 1)
        assert float(errors.max()) <= allowed_error(problem, torch.float16)[0]

    def test_triton_gradients_match_reference():
        """Backward recomputes through grouped SDPA; compared in fp32 against float64 autograd."""
        problem = make_problem(**STANDARD_CASES["cond_uncond"], seed=12)
        upstream = torch.randn(problem.q.shape, dtype=torch.float64)
        grads = {}
        for backend, dtype in (("reference", torch.float64), ("triton", torch.float32)):
            q, k, v, *tables = problem.args(dtype, requires_grad=True)
            out = frame_cross_attention(q, k, v, *tables, **problem.kwargs(), backend=backend)
            (out * upstream.to(dtype)).sum().backward()
            grads[backend] = (q.grad, k.grad, v.grad)
        for label, got, expected in zip("qkv", grads["triton"], grads["reference"], strict=True):
            relative = float((got.double() - expected).norm() / expected.norm())
            assert relative < 1e-5, f"d{label}: relative error {relative:.2e}"
