"""Backend selection: auto on CPU, forced backends, the environment override, self-check fallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from comfyui_framelevel.kernels import BackendUnavailable, dispatch, frame_cross_attention
from comfyui_framelevel.kernels.testing import STANDARD_CASES, error_per_frame_head, make_problem


@pytest.fixture(autouse=True)
def fresh_dispatch(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    dispatch.clear_cache()
    yield
    dispatch.clear_cache()


def problem():
    return make_problem(**STANDARD_CASES["cond_uncond"], seed=99)


def interpreting():
    return "triton" in sys.modules and dispatch.unavailable_reason("triton", "cpu") is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_auto_on_cpu_picks_plain_torch_and_is_correct(dtype):
    assert dispatch.auto_backend("cpu", dtype) in ("grouped", "batched")
    case = problem()
    out = frame_cross_attention(*case.args(dtype), **case.kwargs())
    errors = error_per_frame_head(out, case.rounded_reference(dtype), 4, case.heads)
    assert float(errors.max()) < (1e-5 if dtype == torch.float32 else 8e-3)


def test_forcing_triton_on_cpu_is_a_clear_error():
    if interpreting():
        pytest.skip("TRITON_INTERPRET=1 makes triton runnable on CPU")
    case = problem()
    with pytest.raises(BackendUnavailable, match="'triton'.*unavailable.*fix"):
        frame_cross_attention(*case.args(torch.float32), **case.kwargs(), backend="triton")


def test_unknown_backend_is_a_value_error():
    case = problem()
    with pytest.raises(ValueError, match="unknown frame-attention backend 'fast'"):
        frame_cross_attention(*case.args(torch.float32), **case.kwargs(), backend="fast")


def test_environment_variable_overrides_auto(monkeypatch):
    used = []
    original = dispatch.backend_function
    monkeypatch.setattr(dispatch, "backend_function", lambda name: used.append(name) or original(name))
    monkeypatch.setenv(dispatch.ENV_VAR, "reference")
    case = problem()
    frame_cross_attention(*case.args(torch.float32), **case.kwargs())
    assert used == ["reference"]
    monkeypatch.setenv(dispatch.ENV_VAR, "nonsense")
    with pytest.raises(ValueError, match=dispatch.ENV_VAR):
        frame_cross_attention(*case.args(torch.float32), **case.kwargs())


def test_auto_skips_a_backend_that_fails_its_self_check(monkeypatch, caplog):
    original = dispatch.backend_function

    def broken_batched(name):
        if name == "batched":
            return lambda q, *args, **kwargs: torch.zeros_like(q)
        return original(name)

    monkeypatch.setattr(dispatch, "backend_function", broken_batched)
    monkeypatch.setitem(dispatch.AUTO_ORDER, "cpu", ("batched", "grouped"))
    assert dispatch.auto_backend("cpu", torch.float32) == "grouped"
    assert "failed its self-check" in caplog.text


def test_auto_moves_on_when_the_chosen_backend_raises(monkeypatch, caplog):
    original = dispatch.backend_function

    def raising_batched(name):
        if name == "batched":
            def fail(*args, **kwargs):
                if kwargs["tokens_per_frame"] != 24:  # passes the self-check, fails on real shapes
                    raise RuntimeError("no kernel for this shape")
                return original(name)(*args, **kwargs)
            return fail
        return original(name)

    monkeypatch.setattr(dispatch, "backend_function", raising_batched)
    monkeypatch.setitem(dispatch.AUTO_ORDER, "cpu", ("batched", "grouped"))
    case = problem()
    out = frame_cross_attention(*case.args(torch.float32), **case.kwargs())
    assert dispatch.auto_backend("cpu", torch.float32) == "grouped"
    assert "no kernel for this shape" in caplog.text
    assert float(error_per_frame_head(out, case.rounded_reference(torch.float32), 4, 2).max()) < 1e-5


def test_invalid_routing_is_rejected_before_any_backend_runs():
    case = problem()
    q, k, v, frame_prompt, seg_start, seg_len = case.args(torch.float32)
    with pytest.raises(ValueError, match="segments exist"):
        frame_cross_attention(q, k, v, frame_prompt + 10, seg_start, seg_len, **case.kwargs())
    with pytest.raises(ValueError, match="tokens per frame"):
        frame_cross_attention(q, k, v, frame_prompt, seg_start, seg_len, heads=2, tokens_per_frame=7)


def test_importing_kernels_imports_no_triton_or_flex():
    root = Path(__file__).resolve().parents[1]
    code = (
        "import importlib.util, sys, types\n"
        "pack = types.ModuleType('comfyui_framelevel'); pack.__path__ = [sys.argv[1]]\n"
        "sys.modules['comfyui_framelevel'] = pack\n"
        "import comfyui_framelevel.kernels as k\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] == 'triton' or m == 'torch.nn.attention.flex_attention' "
        "or m.startswith('torch._inductor') or m.split('.')[0] == 'comfy']\n"
        "print(heavy); sys.exit(1 if heavy else 0)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
