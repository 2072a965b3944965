"""Random ragged frame-attention problems and error metrics, shared by tests, self-check and bench.

Problems are built the way Wan produces them: every prompt has real key rows and, if it was
padded, ONE pad row (the projection of a zero token: the same vector for every prompt) whose score
gets the bias ln(pad count). `literal_padded_keys` rebuilds the literal Wan context (the pad row
repeated pad-count times) for checks that must not rely on the pad-row trick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .reference import frame_cross_attention_reference

# Hard caps on the relative error per frame and head (kernels.md §6.3).
HARD_CAP = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float64: 1e-12}
# Below this, "2x SDPA's error" is noise in the last bits: a quarter of the dtype's epsilon.
NOISE_FLOOR = {dtype: torch.finfo(dtype).eps / 4 for dtype in HARD_CAP}


@dataclass
class Problem:
    """q [B, F*LF, H*D], k/v [T, H*D] in float64; routing tables on the CPU; pad counts per prompt."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    frame_prompt: torch.Tensor
    seg_start: torch.Tensor
    seg_len: torch.Tensor
    key_bias: torch.Tensor
    pad_counts: list[int]
    heads: int
    tokens_per_frame: int

    def args(self, dtype=torch.float64, device="cpu", requires_grad=False):
        """Positional args for a backend: q/k/v rounded to `dtype`, tables as they are."""
        tensors = [t.to(device=device, dtype=dtype, copy=True).requires_grad_(requires_grad)
                   for t in (self.q, self.k, self.v)]
        tables = [t.to(device) for t in (self.frame_prompt, self.seg_start, self.seg_len)]
        return (*tensors, *tables)

    def kwargs(self, device="cpu"):
        return dict(heads=self.heads, tokens_per_frame=self.tokens_per_frame, key_bias=self.key_bias.to(device))

    def exact_key_bias(self) -> torch.Tensor:
        """[T] float64 ln(pad count) on pad rows (key_bias itself is float32, as packed for the model)."""
        bias = torch.zeros(self.k.shape[0], dtype=torch.float64)
        for prompt, pads in enumerate(self.pad_counts):
            if pads:
                bias[int(self.seg_start[prompt] + self.seg_len[prompt]) - 1] = math.log(pads)
        return bias

    def rounded_reference(self, dtype):
        """Float64 reference on the inputs already rounded to `dtype` (isolates the kernel's error)."""
        q, k, v = (t.to(dtype).double() for t in (self.q, self.k, self.v))
        return frame_cross_attention_reference(q, k, v, self.frame_prompt, self.seg_start, self.seg_len,
                                               **{**self.kwargs(), "key_bias": self.key_bias.double()})


def make_problem(real_lengths, pad_counts, frame_prompt, *, tokens_per_frame=20, heads=2, head_dim=32,
                 seed=0, q_scale=1.0) -> Problem:
    """Build a problem: prompt i has real_lengths[i] real rows plus one pad row if pad_counts[i] > 0.

    frame_prompt: [B, F] nested list of prompt ids.
    """
    generator = torch.Generator().manual_seed(seed)
    channels = heads * head_dim
    frame_prompt = torch.as_tensor(frame_prompt, dtype=torch.long)
    pad_k = torch.randn(1, channels, generator=generator, dtype=torch.float64)
    pad_v = torch.randn(1, channels, generator=generator, dtype=torch.float64)
    ks, vs, biases, starts, lengths = [], [], [], [], []
    offset = 0
    for real, pads in zip(real_lengths, pad_counts, strict=True):
        k_rows = [torch.randn(real, channels, generator=generator, dtype=torch.float64)]
        v_rows = [torch.randn(real, channels, generator=generator, dtype=torch.float64)]
        bias = [torch.zeros(real)]
        if pads:
            k_rows.append(pad_k)
            v_rows.append(pad_v)
            bias.append(torch.tensor([math.log(pads)]))
        ks += k_rows
        vs += v_rows
        biases += bias
        size = real + (1 if pads else 0)
        starts.append(offset)
        lengths.append(size)
        offset += size
    batch, frames = frame_prompt.shape
    q = q_scale * torch.randn(batch, frames * tokens_per_frame, channels, generator=generator, dtype=torch.float64)
    return Problem(q, torch.cat(ks), torch.cat(vs), frame_prompt, torch.tensor(starts), torch.tensor(lengths),
                   torch.cat(biases).float(), list(pad_counts), heads, tokens_per_frame)


def literal_padded_keys(problem: Problem, prompt: int, dtype=torch.float64):
    """(k, v) [L_real + pad_count, H*D] of one prompt with the pad row repeated as Wan has it."""
    start, size = int(problem.seg_start[prompt]), int(problem.seg_len[prompt])
    pads = problem.pad_counts[prompt]
    k, v = problem.k[start:start + size], problem.v[start:start + size]
    if pads:
        k = torch.cat([k[:-1], k[-1:].expand(pads, -1)])
        v = torch.cat([v[:-1], v[-1:].expand(pads, -1)])
    return k.to(dtype), v.to(dtype)


def wan_native_sdpa(problem: Problem, dtype, device="cpu") -> torch.Tensor:
    """What Wan computes natively: plain SDPA per frame over the literal padded prompt, in `dtype`.

    Its error against the float64 reference is "torch SDPA's own error in that dtype".
    """
    q = problem.q.to(device=device, dtype=dtype)
    batch, _, channels = q.shape
    heads, tokens = problem.heads, problem.tokens_per_frame
    out = torch.zeros_like(q)
    for z in range(batch):
        for f in range(problem.frame_prompt.shape[1]):
            prompt = int(problem.frame_prompt[z, f])
            k, v = (t.to(device) for t in literal_padded_keys(problem, prompt, dtype))
            if k.shape[0] == 0:
                continue
            rows = slice(f * tokens, (f + 1) * tokens)
            split = lambda t: t.reshape(1, t.shape[0], heads, channels // heads).transpose(1, 2)  # noqa: E731
            attended = F.scaled_dot_product_attention(split(q[z, rows]), split(k), split(v))
            out[z, rows] = attended.transpose(1, 2).reshape(tokens, channels)
    return out


def error_per_frame_head(out, expected, frames, heads) -> torch.Tensor:
    """Relative Frobenius error per (batch, frame, head): [B, F, H]. Zero expected rows (empty
    prompts) are compared in absolute terms."""
    batch = out.shape[0]
    shape = (batch, frames, -1, heads, out.shape[-1] // heads)
    diff = (out.detach().double().cpu() - expected.double()).reshape(shape)
    ref = expected.double().reshape(shape)
    return diff.norm(dim=(2, 4)) / ref.norm(dim=(2, 4)).clamp_min(1e-30).where(ref.norm(dim=(2, 4)) > 0, 1.0)


def allowed_error(problem: Problem, dtype, device="cpu") -> tuple[float, float]:
    """(bound, sdpa_error): a backend may err at most max(2x torch SDPA's own max error per frame
    and head in `dtype`, a quarter epsilon) and never above the hard cap of the dtype."""
    frames = problem.frame_prompt.shape[1]
    sdpa_error = float(error_per_frame_head(wan_native_sdpa(problem, dtype, device), problem.rounded_reference(dtype),
                                            frames, problem.heads).max())
    return min(max(2 * sdpa_error, NOISE_FLOOR[dtype]), HARD_CAP[dtype]), sdpa_error


# name -> make_problem arguments. Small enough for the Triton interpreter; together they cover
# ragged lengths, runs of frames sharing a prompt, one prompt for all frames, a single frame whose
# token count is not a tile multiple, prompts over 512 tokens, an empty prompt, and cond/uncond
# batches whose items use different numbers of prompts.
STANDARD_CASES = {
    "ragged": dict(real_lengths=[1, 17, 40], pad_counts=[511, 495, 0], frame_prompt=[[0, 1, 1, 2, 0]]),
    "shared_runs": dict(real_lengths=[9, 30], pad_counts=[503, 482], frame_prompt=[[0, 0, 0, 1, 1, 1]]),
    "one_prompt": dict(real_lengths=[25], pad_counts=[487], frame_prompt=[[0, 0, 0, 0]]),
    "single_frame": dict(real_lengths=[12], pad_counts=[500], frame_prompt=[[0]], tokens_per_frame=37),
    "long_prompts": dict(real_lengths=[600, 530], pad_counts=[0, 0], frame_prompt=[[0, 1, 0]],
                         tokens_per_frame=8, heads=1, head_dim=16),
    "cond_uncond": dict(real_lengths=[14, 33, 7, 20], pad_counts=[498, 479, 505, 492],
                        frame_prompt=[[0, 1, 2, 1], [3, 3, 3, 3]]),
    "empty_prompt": dict(real_lengths=[0, 5], pad_counts=[0, 507], frame_prompt=[[0, 1], [1, 0]]),
    # alternating prompts: more runs per prompt than the grouped backend reads as slices
    "scattered": dict(real_lengths=[11, 23], pad_counts=[501, 489], frame_prompt=[[0, 1] * 9 + [0]],
                      tokens_per_frame=6),
}
