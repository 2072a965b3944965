"""Real-CUDA checks of the Triton and FlexAttention backends (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch
from comfyui_framelevel.kernels import dispatch, frame_cross_attention
from comfyui_framelevel.kernels.testing import (
    STANDARD_CASES,
    allowed_error,
    error_per_frame_head,
    make_problem,
)

pytestmark = pytest.mark.gpu
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def check_backend(backend, problem, dtype):
    out = frame_cross_attention(*problem.args(dtype, "cuda"), **problem.kwargs("cuda"), backend=backend)
    errors = error_per_frame_head(out, problem.rounded_reference(dtype), problem.frame_prompt.shape[1],
                                  problem.heads)
    bound, sdpa_error = allowed_error(problem, dtype, "cuda")
    assert torch.isfinite(errors).all()
    assert float(errors.max()) <= bound, f"{backend}: {float(errors.max()):.2e} > {bound:.2e} (SDPA {sdpa_error:.2e})"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(STANDARD_CASES))
@pytest.mark.parametrize("backend", ["triton", "flex", "batched", "grouped"])
def test_cuda_backend_matches_float64_reference(backend, case, dtype):
    check_backend(backend, make_problem(**STANDARD_CASES[case], seed=77), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_triton_on_a_wan_shaped_problem(dtype):
    """21 frames x 1560 tokens, 12 heads x 128, 6 prompts of ~120 tokens plus pad rows."""
    lengths = [97, 120, 131, 88, 140, 115]
    routing = [[i * 6 // 21 for i in range(21)]]
    problem = make_problem(lengths, [512 - n for n in lengths], routing, tokens_per_frame=1560, heads=12,
                           head_dim=128, seed=3)
    check_backend("triton", problem, dtype)


def test_auto_picks_triton_on_cuda():
    dispatch.clear_cache()
    assert dispatch.auto_backend("cuda", torch.bfloat16) == "triton"


@pytest.mark.parametrize("backend", ["triton", "flex", "batched"])
def test_cuda_gradients_match_reference(backend):
    problem = make_problem(**STANDARD_CASES["cond_uncond"], seed=8)
    upstream = torch.randn(problem.q.shape, dtype=torch.float64)
    grads = {}
    for name, dtype, device in (("reference", torch.float64, "cpu"), (backend, torch.float32, "cuda")):
        q, k, v, *tables = problem.args(dtype, device, requires_grad=True)
        out = frame_cross_attention(q, k, v, *tables, **problem.kwargs(device), backend=name)
        (out * upstream.to(device, dtype)).sum().backward()
        grads[name] = [t.grad.double().cpu() for t in (q, k, v)]
    for label, got, expected in zip("qkv", grads[backend], grads["reference"], strict=True):
        assert float((got - expected).norm() / expected.norm()) < 1e-4, f"d{label}"
