"""Every plain-torch backend against the float64 reference on fresh random ragged problems.

Errors are relative per batch item, frame and head; the bound is 2x torch SDPA's own error in the
same dtype (SDPA over Wan's literal 512-padded prompt), capped by a hard limit per dtype.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from comfyui_framelevel.kernels import dispatch
from comfyui_framelevel.kernels.flex import frame_cross_attention_flex
from comfyui_framelevel.kernels.testing import (
    STANDARD_CASES,
    allowed_error,
    error_per_frame_head,
    make_problem,
)

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def flex_eager(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "flex_attention called without torch.compile()"
        return frame_cross_attention_flex(*args, compiled=False, **kwargs)


BACKEND_FUNCTIONS = {
    "grouped": lambda *a, **k: dispatch.backend_function("grouped")(*a, **k),
    "batched": lambda *a, **k: dispatch.backend_function("batched")(*a, **k),
    "flex_eager": flex_eager,
}


@functools.cache
def problem_and_bound(case, dtype):
    """One fresh random problem per case and dtype, shared by the backends (the bound is costly)."""
    problem = make_problem(**STANDARD_CASES[case], seed=DTYPES.index(dtype) * 100 + sorted(STANDARD_CASES).index(case))
    return problem, allowed_error(problem, dtype)


def max_error(problem, out, dtype):
    frames = problem.frame_prompt.shape[1]
    errors = error_per_frame_head(out, problem.rounded_reference(dtype), frames, problem.heads)
    assert torch.isfinite(errors).all()
    return float(errors.max())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(STANDARD_CASES))
@pytest.mark.parametrize("backend", sorted(BACKEND_FUNCTIONS))
def test_backend_matches_float64_reference(backend, case, dtype):
    problem, (bound, sdpa_error) = problem_and_bound(case, dtype)
    out = BACKEND_FUNCTIONS[backend](*problem.args(dtype), **problem.kwargs())
    assert out.dtype == dtype and out.shape == problem.q.shape
    error = max_error(problem, out, dtype)
    assert error <= bound, f"{backend} error {error:.2e} > bound {bound:.2e} (SDPA's own: {sdpa_error:.2e})"


@pytest.mark.parametrize("case", sorted(STANDARD_CASES))
def test_reference_backend_in_float32(case):
    """The reference runs an explicit softmax in the input dtype; it is meant for fp32/fp64 only."""
    problem = make_problem(**STANDARD_CASES[case], seed=7)
    out = dispatch.backend_function("reference")(*problem.args(torch.float32), **problem.kwargs())
    bound, _ = allowed_error(problem, torch.float32)
    assert max_error(problem, out, torch.float32) <= bound


@pytest.mark.parametrize("case", ["cond_uncond", "scattered"])
@pytest.mark.parametrize("backend", ["grouped", "batched"])  # flex has no CPU backward (torch 2.13)
def test_gradients_match_reference_in_float64(backend, case):
    problem = make_problem(**STANDARD_CASES[case], seed=11)
    upstream = torch.randn(problem.q.shape, dtype=torch.float64)
    grads = {}
    for name, function in (("reference", dispatch.backend_function("reference")),
                           (backend, BACKEND_FUNCTIONS[backend])):
        q, k, v, *tables = problem.args(torch.float64, requires_grad=True)
        kwargs = {**problem.kwargs(), "key_bias": problem.key_bias.double()}
        (function(q, k, v, *tables, **kwargs) * upstream).sum().backward()
        grads[name] = (q.grad, k.grad, v.grad)
    for label, got, expected in zip("qkv", grads[backend], grads["reference"], strict=True):
        relative = float((got - expected).norm() / expected.norm())
        assert relative < 1e-10, f"d{label}: relative error {relative:.2e}"


def test_scale_override_and_large_queries():
    """A custom scale and x10 queries (peaked softmax) stay exact in fp32."""
    problem = make_problem(**STANDARD_CASES["ragged"], seed=3, q_scale=10.0)
    kwargs = {**problem.kwargs(), "scale": 0.3}
    for name in ("grouped", "batched"):
        out = dispatch.backend_function(name)(*problem.args(torch.float32), **kwargs)
        q, k, v, *tables = problem.args(torch.float64)
        expected = dispatch.backend_function("reference")(q, k, v, *tables,
                                                           **{**kwargs, "key_bias": problem.key_bias.double()})
        assert float(error_per_frame_head(out, expected, 5, problem.heads).max()) < 1e-5


def test_non_contiguous_query_view():
    problem = make_problem(**STANDARD_CASES["shared_runs"], seed=5)
    q, k, v, *tables = problem.args(torch.float32)
    wide = torch.cat([q, torch.zeros_like(q)], dim=-1)
    view = wide[..., : q.shape[-1]]
    assert not view.is_contiguous()
    for name in ("grouped", "batched"):
        out = dispatch.backend_function(name)(view, k, v, *tables, **problem.kwargs())
        torch.testing.assert_close(out, dispatch.backend_function("reference")(q, k, v, *tables, **problem.kwargs()),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["grouped", "batched"])
def test_float64_forward_is_exact(backend):
    """float64 inputs must stay float64 end to end (a float32 key mask would lose precision)."""
    problem = make_problem(**STANDARD_CASES["ragged"], seed=13)
    q, k, v, *tables = problem.args(torch.float64)
    kwargs = {**problem.kwargs(), "key_bias": problem.exact_key_bias()}
    out = dispatch.backend_function(backend)(q, k, v, *tables, **kwargs)
    expected = dispatch.backend_function("reference")(q, k, v, *tables, **kwargs)
    assert float(error_per_frame_head(out, expected, 5, problem.heads).max()) < 1e-12


def test_grouped_reads_scenes_as_runs_and_scatters_the_rest():
    from comfyui_framelevel.kernels.sdpa import MAX_SLICED_RUNS, consecutive_runs, prompt_row_groups

    assert consecutive_runs([0, 1, 2, 21, 22, 40]) == [slice(0, 3), slice(21, 23), slice(40, 41)]
    assert consecutive_runs([5]) == [slice(5, 6)]
    assert prompt_row_groups([2, 2, 0, 2]) == {2: [0, 1, 3], 0: [2]}
    scattered = STANDARD_CASES["scattered"]["frame_prompt"][0]
    runs = [len(consecutive_runs(rows)) for rows in prompt_row_groups(scattered).values()]
    assert min(runs) > MAX_SLICED_RUNS  # the case really takes the gather/scatter path
