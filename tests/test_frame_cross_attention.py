"""Frame-level cross-attention semantics at the level the Wan patch uses them (issue: foundation)."""

import math

import torch
import torch.nn.functional as F
from comfyui_framelevel.kernels import frame_cross_attention, pack_prompts
from comfyui_framelevel.kernels.frame_attention import frame_cross_attention_reference

HEADS, HEAD_DIM, TPF = 2, 8, 6


def padded(real, length=16, channels=HEADS * HEAD_DIM, seed=0):
    context = torch.zeros(length, channels, dtype=torch.float64)
    context[:real] = torch.randn(real, channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return context


def wan_attention(q, context):
    """Wan's own cross-attention over one padded context (pads take part in the softmax)."""
    b, n, c = q.shape
    qh = q.reshape(b, n, HEADS, HEAD_DIM).transpose(1, 2)
    kh = context.reshape(1, -1, HEADS, HEAD_DIM).transpose(1, 2).expand(b, -1, -1, -1)
    return F.scaled_dot_product_attention(qh, kh, kh).transpose(1, 2).reshape(b, n, c)


def literal_per_frame(q, contexts, index):
    """Float64 loop: frame f attends to its whole padded context, literally (no pad-row trick)."""
    out = torch.empty_like(q)
    for f, prompt in enumerate(index):
        rows = slice(f * TPF, (f + 1) * TPF)
        out[:, rows] = wan_attention(q[:, rows], contexts[prompt])
    return out


def run(q, contexts, index, backend="auto"):
    packed = pack_prompts(contexts, torch.tensor([index])).repeat_batch(q.shape[0])
    return frame_cross_attention(q, packed.rows, packed.rows, packed.frame_prompt, packed.seg_start,
                                 packed.seg_len, heads=HEADS, tokens_per_frame=TPF, key_bias=packed.key_bias,
                                 backend=backend)


def test_matches_float64_literal_loop_on_ragged_prompts():
    contexts = [padded(real, seed=i) for i, real in enumerate((1, 7, 16, 11))]  # 16 = no padding at all
    index = [3, 0, 0, 2, 1, 3, 2]
    q = torch.randn(1, len(index) * TPF, HEADS * HEAD_DIM, dtype=torch.float64)
    expected = literal_per_frame(q, contexts, index)
    for backend in ("reference", "auto"):
        # key_bias is float32 by design (ln(n_pad) rounded to ~6e-8 relative): the only non-fp64 term
        assert (run(q, contexts, index, backend) - expected).abs().max() < 1e-6


def test_identical_prompts_equal_plain_cross_attention_fp32():
    context = padded(9).float()
    q = torch.randn(2, 5 * TPF, HEADS * HEAD_DIM)
    plain = wan_attention(q, context)
    assert (run(q, [context], [0] * 5) - plain).abs().max() <= 1e-5


def test_changing_one_frame_prompt_leaves_other_frames_unchanged():
    contexts = [padded(real, seed=i) for i, real in enumerate((4, 8, 12))]
    q = torch.randn(1, 6 * TPF, HEADS * HEAD_DIM, dtype=torch.float64)
    before = run(q, contexts, [0, 0, 1, 1, 2, 2])
    after = run(q, contexts, [0, 0, 2, 1, 2, 2])        # frame 2: prompt 1 -> prompt 2
    frames_before = before.reshape(6, TPF, -1)
    frames_after = after.reshape(6, TPF, -1)
    for f in range(6):
        if f == 2:
            assert not torch.allclose(frames_before[f], frames_after[f])
        else:
            assert torch.equal(frames_before[f], frames_after[f])


def test_pad_row_bias_is_log_of_pad_count():
    packed = pack_prompts([padded(5), padded(16)], torch.tensor([[0, 1]]))
    assert packed.seg_len.tolist() == [6, 16]              # 5 real + 1 pad row; no pad row when unpadded
    assert math.isclose(float(packed.key_bias[5]), math.log(11), rel_tol=1e-7)
    assert torch.count_nonzero(packed.key_bias) == 1


def test_reference_equals_literal_loop_for_cond_uncond_batch():
    contexts = [padded(real, seed=i) for i, real in enumerate((3, 10, 6))]
    q = torch.randn(2, 3 * TPF, HEADS * HEAD_DIM, dtype=torch.float64)
    index = [[0, 1, 1], [2, 2, 2]]                        # cond: frame prompts; uncond: one global prompt
    packed = pack_prompts(contexts, torch.tensor(index))
    out = frame_cross_attention_reference(q, packed.rows, packed.rows, packed.frame_prompt, packed.seg_start,
                                          packed.seg_len, heads=HEADS, tokens_per_frame=TPF,
                                          key_bias=packed.key_bias)
    for z in range(2):
        assert (out[z:z + 1] - literal_per_frame(q[z:z + 1], contexts, index[z])).abs().max() < 1e-6
