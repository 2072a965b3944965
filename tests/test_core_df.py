"""Diffusion Forcing schedules: golden plans written by hand from the rule, two independent
oracles (SkyReels-V2's row recursion and the DF paper's pyramid formula) and property tests."""

from __future__ import annotations

import math

import pytest
import torch
from comfyui_framelevel.nodes.core.df_schedule import (
    DFSchedule,
    df_iterations,
    df_plan,
    df_progress,
    df_sigma_matrix,
    from_skyreels,
)
from comfyui_framelevel.nodes.core.plan import window_evaluations
from comfyui_framelevel.nodes.core.sigmas import check_base_sigmas, flow_shift, flow_sigmas
from hypothesis import given, settings
from hypothesis import strategies as st


def rows(text: str) -> torch.Tensor:
    """'000 / 100' -> [[0,0,0],[1,0,0]]: progress (steps taken) per latent, one row per iteration."""
    return torch.tensor([[int(c) for c in r.strip()] for r in text.split("/")])


# --- sigmas -------------------------------------------------------------------------------------

def test_flow_sigmas_match_comfyui_simple_shift_8():
    # reference/comfyui.md §6.2: 4 simple steps at shift 8 give 1.0, 0.96, 0.889, 0.727, 0
    got = flow_sigmas(4, shift=8.0)
    assert torch.allclose(got, torch.tensor([1.0, 0.96, 8 / 9, 8 / 11, 0.0], dtype=torch.float64))
    assert flow_shift(0.5, 1.0) == 0.5


@pytest.mark.parametrize("bad, word", [([1.0, 0.5], "end at 0"), ([0.5, 0.7, 0.0], "descending"),
                                       ([2.0, 0.0], "[0, 1]"), ([0.0], "at least 2")])
def test_bad_base_sigmas_are_named(bad, word):
    with pytest.raises(ValueError, match="base_sigmas") as err:
        check_base_sigmas(torch.tensor(bad), "base_sigmas")
    assert word in str(err.value)


# --- golden plans (hand-written from the rule, T = steps) ---------------------------------------

GOLDEN = [
    # name, frames, steps, schedule, expected progress rows
    ("sync", 3, 3, DFSchedule(0.0), "000/111/222/333"),
    ("step1", 3, 3, DFSchedule(1.0), "000/100/210/321/332/333"),
    ("step2", 3, 3, DFSchedule(2.0), "000/100/200/310/320/331/332/333"),
    ("half", 4, 2, DFSchedule(0.5), "0000/1100/2211/2222"),
    ("block2", 5, 2, DFSchedule(1.0, causal_block_size=2), "00000/11000/22110/22221/22222"),
    ("anchor_first", 4, 2, DFSchedule(1.0, anchors=(0,)), "2000/2100/2210/2221/2222"),
    ("anchor_last", 4, 2, DFSchedule(1.0, anchors=(3,)), "0002/1002/2102/2212/2222"),
    ("anchor_middle", 4, 2, DFSchedule(1.0, anchors=(1,)), "0200/1200/2210/2221/2222"),
    ("anchor_in_block", 4, 2, DFSchedule(1.0, causal_block_size=2, anchors=(1,)), "0200/1200/2211/2222"),
    ("step_above_T", 2, 2, DFSchedule(5.0), "00/10/20/21/22"),
    ("sync_first_last", 4, 2, DFSchedule(0.0, anchors=(0, 3)), "2002/2112/2222"),
]


@pytest.mark.parametrize("name, frames, steps, schedule, expected", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_df_schedules(name, frames, steps, schedule, expected):
    want = rows(expected)
    assert torch.equal(df_progress(frames, steps, schedule), want)
    base = flow_sigmas(steps, shift=3.0)
    assert torch.equal(df_sigma_matrix(base, frames, schedule), base[want])
    assert df_iterations(frames, steps, schedule) == want.shape[0] - 1
    plan = df_plan(base, frames, schedule)
    assert window_evaluations(plan) == want.shape[0] - 1


# --- oracle 1: SkyReels-V2 generate_timestep_matrix, re-implemented from its published rule -----

def skyreels_index_rows(num_blocks: int, steps: int, ar_step: int, pre_ready_blocks: int) -> list[list[int]]:
    """Rows of template indices: 0 = not started, k = evaluated at the k-th timestep, T+1 = done.
    Block 0 (or a block whose predecessor reached >= T in the previous row) advances by one;
    any other block takes its predecessor's new value minus ar_step; clamp to [0, T+1]."""
    done = steps + 1
    prev = [done if b < pre_ready_blocks else 0 for b in range(num_blocks)]
    out = []
    while not all(v >= steps for v in prev):
        new = [0] * num_blocks
        for b in range(num_blocks):
            if b == 0 or prev[b - 1] >= steps:
                new[b] = prev[b] + 1
            else:
                new[b] = new[b - 1] - ar_step
        new = [min(max(v, 0), done) for v in new]
        out.append(new)
        prev = new
    return out


def skyreels_state_matrix(base, num_blocks, block, steps, ar_step, pre_ready_blocks):
    """Our state convention from SkyReels rows: row r (0-based) = base[clamp(index - 1, 0, T)],
    plus a final all-zero row; blocks expanded to frames."""
    idx_rows = skyreels_index_rows(num_blocks, steps, ar_step, pre_ready_blocks)
    state = [[float(base[min(max(v - 1, 0), steps)]) for v in r] for r in idx_rows]
    state.append([0.0] * num_blocks)
    return torch.tensor(state, dtype=torch.float64).repeat_interleave(block, dim=1)


@pytest.mark.parametrize("steps", [1, 2, 3, 5])
@pytest.mark.parametrize("ar_step", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("block", [1, 2, 3])
def test_matches_skyreels_rule(steps, ar_step, block):
    base = flow_sigmas(steps, shift=5.0)
    for num_blocks in (1, 2, 4):
        for pre in range(min(2, num_blocks)):
            want = skyreels_state_matrix(base, num_blocks, block, steps, ar_step, pre)
            got = df_sigma_matrix(base, num_blocks * block, from_skyreels(ar_step, block, pre * block))
            assert torch.equal(got, want), (num_blocks, pre)
            if ar_step <= steps and pre == 0:  # SkyReels' documented row count
                assert got.shape[0] - 1 == steps + (num_blocks - 1) * ar_step


def test_skyreels_readme_example_rows():
    # reference §2.4, T = 4, 4 blocks, ar_step 1: 1000/2100/3210/4321/5432/5543/5554
    assert skyreels_index_rows(4, 4, 1, 0) == [[1, 0, 0, 0], [2, 1, 0, 0], [3, 2, 1, 0], [4, 3, 2, 1],
                                               [5, 4, 3, 2], [5, 5, 4, 3], [5, 5, 5, 4]]


# --- oracle 2: Diffusion Forcing paper pyramid ---------------------------------------------------

@pytest.mark.parametrize("u", [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("frames", [1, 4, 7])
def test_matches_df_paper_pyramid(u, frames):
    K = 3
    base = flow_sigmas(K, shift=2.0)
    m_rows = K + math.floor((frames - 1) * u) + 1
    level = torch.tensor([[min(max(K + math.floor(t * u) - m, 0), K) for t in range(frames)]
                          for m in range(m_rows)])
    assert torch.equal(df_sigma_matrix(base, frames, DFSchedule(u)), base[K - level])


# --- properties ----------------------------------------------------------------------------------

@st.composite
def schedules(draw):
    frames = draw(st.integers(1, 12))
    steps = draw(st.integers(1, 6))
    step = draw(st.integers(0, 32)) / 4
    block = draw(st.integers(1, 4))
    anchors = draw(st.sets(st.integers(0, frames - 1), max_size=frames - 1))
    return frames, steps, DFSchedule(step, block, tuple(anchors))


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_df_invariants(case):
    frames, steps, sch = case
    base = flow_sigmas(steps, shift=4.0)
    sig = df_sigma_matrix(base, frames, sch)
    free = [f for f in range(frames) if f not in sch.anchors]
    assert torch.all(sig[0, free] == 1.0)
    assert torch.all(sig[:, list(sch.anchors)] == 0.0)
    assert torch.all(sig[-1] == 0.0)
    assert torch.all(sig[1:] <= sig[:-1])
    assert sig.shape[0] - 1 == df_iterations(frames, steps, sch)
    moved = (sig[1:] != sig[:-1])
    assert torch.all(moved.any(dim=1)), "no idle iterations"
    assert torch.all(moved.sum(dim=0)[free] == steps), "every free latent takes every step once"
    prog = df_progress(frames, steps, sch)
    block_of = [f // sch.causal_block_size for f in range(frames)]
    for a, b in zip(free, free[1:], strict=False):  # neighbouring free latents differ by at most ceil(s) steps
        if block_of[a] != block_of[b]:
            assert torch.all((prog[:, a] - prog[:, b]).abs() <= math.ceil(min(sch.step_size, steps)))
        else:
            assert torch.equal(prog[:, a], prog[:, b])
    plan = df_plan(base, frames, sch)
    assert window_evaluations(plan) == sig.shape[0] - 1


# --- windowed DF and validation ------------------------------------------------------------------

def test_moving_window_follows_the_front():
    base = flow_sigmas(2)
    plan = df_plan(base, 6, DFSchedule(2.0), window=3)
    spans = [(ws[0].frames[0], ws[0].frames[-1]) for ws in plan.windows]
    # latent j moves in iterations 2j, 2j+1; the window ends one past the newest started latent
    assert spans == [(0, 2)] * 6 + [(1, 3), (1, 3), (2, 4), (2, 4), (3, 5), (3, 5)]


def test_moving_window_too_short_names_step_size():
    with pytest.raises(ValueError, match="step_size"):
        df_plan(flow_sigmas(4), 6, DFSchedule(0.0), window=3)


@pytest.mark.parametrize("schedule, word", [
    (DFSchedule(-1.0), "step_size"), (DFSchedule(0.0, 0), "causal_block_size"),
    (DFSchedule(0.0, anchors=(7,)), "anchor latent 7"), (DFSchedule(0.0, anchors=(0, 1, 2, 3)), "every latent"),
])
def test_invalid_schedules(schedule, word):
    with pytest.raises(ValueError, match=word):
        df_plan(flow_sigmas(2), 4, schedule)
