"""Triton kernel for frame-level cross-attention (forward), plus its autograd wrapper.

Import this module only through the dispatcher: it imports triton at module level, and whether
the kernel runs compiled or in the CPU interpreter (TRITON_INTERPRET=1) is fixed when it is first
imported.

Layout: q/out [B, F*LF, H*D] exactly as the model holds them (head h = columns [h*D, (h+1)*D));
k/v [T, H*D] packed prompt segments; frame_prompt [B*F]; seg_start/seg_len [P]; key_bias [T] fp32.
Grid (cdiv(LF, BLOCK_M), H, B*F): one program owns BLOCK_M query rows of one frame and one head,
looks up the frame's prompt segment and streams only those keys with an online softmax (exp2
with log2(e) folded into the scale). Programs of one frame and head are adjacent in the grid, so
the few K/V tiles they share stay in L2.

Backward: `TritonFrameAttention.backward` recomputes the attention with the differentiable
grouped-SDPA path and differentiates that (no Triton backward kernel). Training is correct but
pays a second forward in torch; inference pays nothing.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def frame_attention_fwd_kernel(
    Q, K, V, Bias, Out, FramePrompt, SegStart, SegLen,
    stride_qb, stride_qt, stride_kt, stride_vt, stride_ob, stride_ot,
    qk_scale_log2, tokens_per_frame, frames,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr, IEEE_FP32: tl.constexpr,
):
    block_m = tl.program_id(0)
    head = tl.program_id(1)
    frame_id = tl.program_id(2)
    batch = frame_id // frames
    frame = frame_id % frames
    prompt = tl.load(FramePrompt + frame_id)
    seg_start = tl.load(SegStart + prompt)
    seg_len = tl.load(SegLen + prompt)

    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    row_ok = rows < tokens_per_frame
    col_ok = cols < HEAD_DIM
    token = (frame * tokens_per_frame + rows).to(tl.int64)
    q_ptrs = Q + batch.to(tl.int64) * stride_qb + token[:, None] * stride_qt + head * HEAD_DIM + cols[None, :]
    q = tl.load(q_ptrs, mask=row_ok[:, None] & col_ok[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for key0 in range(0, seg_len, BLOCK_N):
        keys = key0 + tl.arange(0, BLOCK_N)
        key_ok = keys < seg_len
        key_row = (seg_start + keys).to(tl.int64)
        k = tl.load(K + key_row[None, :] * stride_kt + head * HEAD_DIM + cols[:, None],
                    mask=key_ok[None, :] & col_ok[:, None], other=0.0)
        v = tl.load(V + key_row[:, None] * stride_vt + head * HEAD_DIM + cols[None, :],
                    mask=key_ok[:, None] & col_ok[None, :], other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        if IEEE_FP32:
            scores = tl.dot(q, k, input_precision="ieee")
        else:
            scores = tl.dot(q, k)
        scores = scores * qk_scale_log2
        if HAS_BIAS:
            bias = tl.load(Bias + seg_start + keys, mask=key_ok, other=0.0)
            scores += bias[None, :] * 1.4426950408889634
        scores = tl.where(key_ok[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if IEEE_FP32:
            acc += tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            acc += tl.dot(p.to(v.dtype), v)
        m_i = m_new

    safe_l = tl.where(l_i > 0, l_i, 1.0)
    out = tl.where(l_i[:, None] > 0, acc / safe_l[:, None], 0.0)
    o_ptrs = Out + batch.to(tl.int64) * stride_ob + token[:, None] * stride_ot + head * HEAD_DIM + cols[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def interpreting() -> bool:
    """True when the kernel above was built for the CPU interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(frame_attention_fwd_kernel, triton.runtime.jit.JITFunction)


def choose_tiles(head_dim: int, dtype: torch.dtype, interpret: bool, arch: int = 90) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, warps, stages) for compute capability `arch` (e.g. 80, 90).

    From the AOT register/spill report at D=128 (`aot_compile`): half precision on sm_90 uses
    128x64 / 8 warps (184 registers, no spills, wgmma); sm_80 spills at BLOCK_N=64, so 128x32 /
    8 warps (197 registers, no spills). IEEE fp32 dots run on FMA units and spill at larger tiles:
    32x16 / 4 warps. The interpreter gets small tiles (it is slow per element, not per program).
    """
    if interpret:
        return 16, 16, 1, 1
    if dtype == torch.float32:
        return 32, 16, 4, 2
    if head_dim > 128:
        return 64, 32, 4, 2
    return (128, 64, 8, 2) if arch >= 90 else (128, 32, 8, 2)


def device_arch(device: torch.device) -> int:
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def triton_frame_attention_forward(q, k, v, frame_prompt, seg_start, seg_len, *, heads, tokens_per_frame,
                                   key_bias=None, scale=None, tiles=None):
    """Launch the forward kernel. Shapes as in the module docstring; returns [B, F*LF, H*D] in q's dtype.

    In the interpreter, bf16 operands are upcast to fp32 inside the kernel and the output is written
    in fp32 and rounded by torch: the interpreter's bf16 `tl.dot` returns garbage and its fp32->bf16
    cast truncates instead of rounding.
    """
    batch, length, channels = q.shape
    frames = frame_prompt.shape[1]
    head_dim = channels // heads
    q = q if q.stride(-1) == 1 else q.contiguous()
    k = k if k.stride(-1) == 1 else k.contiguous()
    v = v if v.stride(-1) == 1 else v.contiguous()
    interpret = interpreting()
    upcast = interpret and q.dtype == torch.bfloat16
    out = torch.empty(q.shape, device=q.device, dtype=torch.float32 if upcast else q.dtype)
    arch = 90 if interpret else device_arch(q.device)
    block_m, block_n, warps, stages = tiles or choose_tiles(head_dim, q.dtype, interpret, arch)
    device = q.device
    routing = frame_prompt.reshape(-1).to(device=device, dtype=torch.int32)
    starts = seg_start.to(device=device, dtype=torch.int32)
    lengths = seg_len.to(device=device, dtype=torch.int32)
    bias = key_bias.to(device=device, dtype=torch.float32).contiguous() if key_bias is not None else starts
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    grid = (triton.cdiv(tokens_per_frame, block_m), heads, batch * frames)
    frame_attention_fwd_kernel[grid](
        q, k, v, bias, out, routing, starts, lengths,
        q.stride(0), q.stride(1), k.stride(0), v.stride(0), out.stride(0), out.stride(1),
        scale * LOG2E, tokens_per_frame, frames,
        HEAD_DIM=head_dim, BLOCK_D=max(16, triton.next_power_of_2(head_dim)), BLOCK_M=block_m,
        BLOCK_N=block_n, HAS_BIAS=key_bias is not None, UPCAST=upcast,
        IEEE_FP32=q.dtype == torch.float32, num_warps=warps, num_stages=stages,
    )
    return out.to(q.dtype) if upcast else out


class TritonFrameAttention(torch.autograd.Function):
    """Triton forward; backward by recomputing with the differentiable grouped-SDPA path."""

    @staticmethod
    def forward(ctx, q, k, v, key_bias, frame_prompt, seg_start, seg_len, heads, tokens_per_frame, scale):
        ctx.save_for_backward(q, k, v, key_bias, frame_prompt, seg_start, seg_len)
        ctx.options = (heads, tokens_per_frame, scale)
        return triton_frame_attention_forward(q, k, v, frame_prompt, seg_start, seg_len, heads=heads,
                                              tokens_per_frame=tokens_per_frame, key_bias=key_bias,
                                              scale=scale)

    @staticmethod
    def backward(ctx, grad_out):
        from .sdpa import frame_cross_attention_grouped

        q, k, v, key_bias, frame_prompt, seg_start, seg_len = ctx.saved_tensors
        heads, tokens_per_frame, scale = ctx.options
        inputs = [t.detach().requires_grad_(need) for t, need in zip((q, k, v), ctx.needs_input_grad[:3], strict=True)]
        with torch.enable_grad():
            out = frame_cross_attention_grouped(*inputs, frame_prompt, seg_start, seg_len, heads=heads,
                                                tokens_per_frame=tokens_per_frame, key_bias=key_bias,
                                                scale=scale)
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out)) if wanted else iter(())
        q_grad, k_grad, v_grad = (next(grads) if t.requires_grad else None for t in inputs)
        return q_grad, k_grad, v_grad, None, None, None, None, None, None, None


def triton_frame_cross_attention(q, k, v, frame_prompt, seg_start, seg_len, *, heads, tokens_per_frame,
                                 key_bias=None, scale=None):
    """Differentiable entry point of the Triton backend (same contract as the other backends)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return TritonFrameAttention.apply(q, k, v, key_bias, frame_prompt, seg_start, seg_len, heads,
                                          tokens_per_frame, scale)
    return triton_frame_attention_forward(q, k, v, frame_prompt, seg_start, seg_len, heads=heads,
                                          tokens_per_frame=tokens_per_frame, key_bias=key_bias, scale=scale)
