"""Backend registry and selection for frame-level cross-attention.

Backends (all share one contract, see `frame_attention.frame_cross_attention`):

=========  ===========================================================  ===================
name       what it is                                                   autograd
=========  ===========================================================  ===================
triton     our Triton kernel (CUDA; CPU only under TRITON_INTERPRET=1)  recompute via torch
flex       FlexAttention, torch.compile'd (CUDA, CPU with a C++ comp.)  native
batched    SDPA with frames in the batch dim + key mask (any device)    native
grouped    one SDPA per distinct prompt (any device)                    native
reference  literal per-frame loop with explicit softmax (tests/debug)   native
=========  ===========================================================  ===================

`auto` walks a per-device preference list (fastest first, as measured by
`bench_frame_attention`) and takes the first backend that is available and passes a one-time
self-check against a float64 reference on that device and dtype; the choice is cached per
(device, dtype). A forced backend that is unavailable raises `BackendUnavailable` with the reason
and the fix; it never falls back silently. `FRAMELEVEL_ATTENTION_BACKEND` overrides `auto`.
Triton and FlexAttention are imported only here, lazily.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil

import torch

log = logging.getLogger(__name__)

ENV_VAR = "FRAMELEVEL_ATTENTION_BACKEND"
BACKENDS = ("triton", "flex", "batched", "grouped", "reference")
AUTO_ORDER = {
    "cuda": ("triton", "flex", "batched", "grouped"),
    # On CPU the interpreter and eager/compiled flex are far slower than plain SDPA, and grouped
    # (scenes read as slices of consecutive frames) takes 0.5-0.7x batched's time at the 1.3B and
    # 14B shapes, fp32 and bf16; see the benchmark.
    "cpu": ("grouped", "batched"),
}
DEFAULT_AUTO_ORDER = ("batched", "grouped")
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2, torch.float64: 1e-10}

_AUTO_CHOICE: dict[tuple, str] = {}
_REJECTED: dict[tuple, str] = {}


class BackendUnavailable(RuntimeError):
    """A forced frame-attention backend cannot run here; the message says why and how to fix it."""


def _load(module: str, name: str):
    return getattr(importlib.import_module(f".{module}", __package__), name)


def _triton_reason(device: torch.device) -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError as error:
        return f"triton is not importable ({error}); fix: pip install --no-deps triton"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        interpret = _load("triton_frame_attn", "interpreting")()
        if interpret:
            return None
        return ("Triton kernels need CUDA tensors (got cpu); fix: move the tensors to a GPU, set "
                "TRITON_INTERPRET=1 before triton is first imported to use the (very slow) CPU "
                "interpreter, or use backend='batched'")
    return f"Triton kernels need CUDA tensors (got {device.type}); fix: use backend='batched'"


def _flex_reason(device: torch.device) -> str | None:
    try:
        _load("flex", "flex_module")()
    except ImportError as error:
        return f"torch {torch.__version__} has no FlexAttention ({error}); fix: upgrade to torch >= 2.5"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        if os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            return None
        return "compiled FlexAttention on CPU needs a C++ compiler; fix: install g++ or set CXX"
    return f"FlexAttention is not supported on {device.type}; fix: use backend='batched'"


def unavailable_reason(name: str, device: torch.device | str) -> str | None:
    """None if backend `name` can run on `device`, else why not and how to fix it."""
    device = torch.device(device)
    if name == "triton":
        return _triton_reason(device)
    if name == "flex":
        return _flex_reason(device)
    if name in BACKENDS:
        return None
    raise ValueError(f"unknown frame-attention backend {name!r}; choose one of {['auto', *BACKENDS]}")


def backend_function(name: str):
    """The callable implementing backend `name` (imports its module on first use)."""
    if name == "triton":
        return _load("triton_frame_attn", "triton_frame_cross_attention")
    if name == "flex":
        return _load("flex", "frame_cross_attention_flex")
    if name == "batched":
        return _load("sdpa", "frame_cross_attention_batched")
    if name == "grouped":
        return _load("sdpa", "frame_cross_attention_grouped")
    if name == "reference":
        return _load("reference", "frame_cross_attention_reference")
    raise ValueError(f"unknown frame-attention backend {name!r}; choose one of {['auto', *BACKENDS]}")


def self_check_problem(device, dtype, seed: int = 1234):
    """Small ragged problem: 2 batch items x 3 frames x 24 tokens, 2 heads x 32, 3 segments
    (one with a pad row biased by ln(300), one of 70 keys, one empty). Returns (args, kwargs)."""
    generator = torch.Generator().manual_seed(seed)
    heads, head_dim, tokens = 2, 32, 24
    seg_len = torch.tensor([6, 70, 0])
    seg_start = torch.tensor([0, 6, 76])
    rows = int(seg_len.sum())
    q = torch.randn(2, 3 * tokens, heads * head_dim, generator=generator)
    k = torch.randn(rows, heads * head_dim, generator=generator)
    v = torch.randn(rows, heads * head_dim, generator=generator)
    key_bias = torch.zeros(rows)
    key_bias[5] = 5.7
    frame_prompt = torch.tensor([[0, 1, 1], [1, 2, 0]])
    tensors = [t.to(device=device, dtype=dtype) for t in (q, k, v)]
    tables = [t.to(device) for t in (frame_prompt, seg_start, seg_len)]
    return (*tensors, *tables), dict(heads=heads, tokens_per_frame=tokens, key_bias=key_bias.to(device))


def self_check(name: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Run backend `name` on the self-check problem; None if it matches float64, else what failed."""
    args, kwargs = self_check_problem(device, dtype)
    as64 = [t.detach().cpu().double() if t.is_floating_point() else t.cpu() for t in args]
    bias64 = kwargs["key_bias"].cpu().double()
    expected = backend_function("reference")(*as64, **{**kwargs, "key_bias": bias64})
    try:
        with torch.no_grad():
            got = backend_function(name)(*args, **kwargs)
    except Exception as error:  # any failure means: not usable here
        return f"raised {type(error).__name__}: {error}"
    error = float((got.detach().cpu().double() - expected).norm() / expected.norm())
    limit = SELF_CHECK_TOLERANCE.get(dtype, 3e-2)
    return None if error <= limit else f"relative error {error:.2e} > {limit:.0e} against float64"


def _device_key(device: torch.device, dtype: torch.dtype) -> tuple:
    return (device.type, device.index, dtype)


def auto_backend(device: torch.device | str, dtype: torch.dtype) -> str:
    """The fastest backend that is available and passes the self-check here (cached)."""
    device = torch.device(device)
    key = _device_key(device, dtype)
    if key in _AUTO_CHOICE:
        return _AUTO_CHOICE[key]
    for name in AUTO_ORDER.get(device.type, DEFAULT_AUTO_ORDER):
        if (key, name) in _REJECTED or unavailable_reason(name, device) is not None:
            continue
        problem = self_check(name, device, dtype)
        if problem is None:
            _AUTO_CHOICE[key] = name
            log.info("frame attention on %s/%s: using backend %r", device, dtype, name)
            return name
        _REJECTED[(key, name)] = problem
        log.warning("frame attention backend %r failed its self-check on %s/%s (%s); trying the next",
                    name, device, dtype, problem)
    _AUTO_CHOICE[key] = "grouped"
    return "grouped"


def reject_auto_choice(device: torch.device, dtype: torch.dtype, name: str, problem: str) -> None:
    """Forget a cached auto choice that failed at run time, so the next call picks the next backend."""
    key = _device_key(device, dtype)
    _REJECTED[(key, name)] = problem
    _AUTO_CHOICE.pop(key, None)
    log.warning("frame attention backend %r failed on %s/%s (%s); auto will use the next backend",
                name, device, dtype, problem)


def requested_backend(backend: str) -> tuple[str, str]:
    """(name, origin): resolve 'auto' through the environment override; validate the name."""
    origin = "backend argument"
    if backend == "auto":
        override = os.environ.get(ENV_VAR, "").strip().lower()
        if override and override != "auto":
            backend, origin = override, f"environment variable {ENV_VAR}"
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"unknown frame-attention backend {backend!r} (from the {origin}); "
                         f"choose one of {['auto', *BACKENDS]}")
    return backend, origin


def forced_backend(name: str, origin: str, device: torch.device):
    """The function of a forced backend, or BackendUnavailable naming it, the reason and the fix."""
    reason = unavailable_reason(name, device)
    if reason is not None:
        raise BackendUnavailable(f"frame-attention backend {name!r} (from the {origin}) is unavailable: "
                                 f"{reason}")
    return backend_function(name)


def clear_cache() -> None:
    """Forget auto choices and rejections (tests, or after changing the environment)."""
    _AUTO_CHOICE.clear()
    _REJECTED.clear()
