"""The float64 reference and the pad-row trick, checked against Wan's literal padded attention."""

from __future__ import annotations

import math

import pytest
import torch
from comfyui_framelevel.kernels import pack_prompts
from comfyui_framelevel.kernels.reference import frame_cross_attention_reference
from comfyui_framelevel.kernels.testing import STANDARD_CASES, literal_padded_keys, make_problem


def literal_per_frame_softmax(problem):
    """Wan's own computation, in float64: softmax over the prompt with every pad token present."""
    q = problem.q
    heads, tokens = problem.heads, problem.tokens_per_frame
    head_dim = q.shape[-1] // heads
    out = torch.zeros_like(q)
    for z in range(q.shape[0]):
        for f in range(problem.frame_prompt.shape[1]):
            k, v = literal_padded_keys(problem, int(problem.frame_prompt[z, f]))
            if k.shape[0] == 0:
                continue
            rows = slice(f * tokens, (f + 1) * tokens)
            for h in range(heads):
                cols = slice(h * head_dim, (h + 1) * head_dim)
                weights = torch.softmax(q[z, rows, cols] @ k[:, cols].T / math.sqrt(head_dim), dim=-1)
                out[z, rows, cols] = weights @ v[:, cols]
    return out


@pytest.mark.parametrize("case", sorted(STANDARD_CASES))
def test_pad_row_with_log_bias_equals_literal_padding(case):
    problem = make_problem(**STANDARD_CASES[case], seed=21)
    q, k, v, *tables = problem.args(torch.float64)
    packed = frame_cross_attention_reference(q, k, v, *tables, **{**problem.kwargs(),
                                                                  "key_bias": problem.exact_key_bias()})
    torch.testing.assert_close(packed, literal_per_frame_softmax(problem), rtol=1e-12, atol=1e-12)


def test_dropping_the_pad_row_would_change_the_result():
    """Guards the test above against passing trivially: without the bias the answer differs."""
    problem = make_problem(**STANDARD_CASES["one_prompt"], seed=4)
    q, k, v, *tables = problem.args(torch.float64)
    unbiased = frame_cross_attention_reference(q, k, v, *tables, heads=problem.heads,
                                               tokens_per_frame=problem.tokens_per_frame)
    difference = (unbiased - literal_per_frame_softmax(problem)).norm() / unbiased.norm()
    assert difference > 0.05


def test_pack_prompts_builds_segments_and_pad_bias():
    generator = torch.Generator().manual_seed(0)
    first = torch.cat([torch.randn(3, 8, generator=generator), torch.zeros(5, 8)])
    second = torch.randn(6, 8, generator=generator)  # no padding: no pad row
    packed = pack_prompts([first, second], torch.tensor([1, 0, 0]))
    assert packed.seg_start.tolist() == [0, 4] and packed.seg_len.tolist() == [4, 6]
    assert packed.rows.shape == (10, 8) and packed.rows[3].abs().sum() == 0
    assert packed.key_bias[3].item() == pytest.approx(math.log(5))
    assert packed.key_bias.sum().item() == pytest.approx(math.log(5))
    assert packed.frame_prompt.tolist() == [[1, 0, 0]]


def test_pack_prompts_rejects_unknown_prompt_ids():
    with pytest.raises(ValueError, match="prompt 2"):
        pack_prompts([torch.randn(2, 4), torch.randn(3, 4)], torch.tensor([0, 2]))


def test_packed_routing_helpers():
    packed = pack_prompts([torch.randn(2, 4), torch.randn(3, 4)], torch.tensor([[0, 1, 1, 0]]))
    assert packed.select_frames([1, 3]).frame_prompt.tolist() == [[1, 0]]
    doubled = packed.repeat_batch(2)
    assert doubled.frame_prompt.tolist() == [[0, 1, 1, 0]] * 2
    with pytest.raises(ValueError, match="batch 2 to batch 3"):
        doubled.repeat_batch(3)
