"""The Wan 2.2 expert rule (nodes/core/experts.py): which expert predicts which latent frame."""

from __future__ import annotations

import pytest
import torch
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_plan
from comfyui_framelevel.nodes.core.experts import (
    I2V_BOUNDARY,
    T2V_BOUNDARY,
    ExpertSettings,
    choose_experts,
    combine_predictions,
    switch_step,
)
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas
from comfyui_framelevel.nodes.core.windows import FIFOOptions, fifo_plan
from hypothesis import given, settings
from hypothesis import strategies as st

LEVELS = st.lists(st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.874, 0.875, 0.876, 0.9, 0.95, 1.0]),
                           min_size=1, max_size=6), min_size=1, max_size=3).filter(
    lambda rows: len({len(r) for r in rows}) == 1)


def predictions(levels):
    """Two experts' outputs [N, 2, L, 1, 1] that differ everywhere: high = +1 - level, low = -1 - level."""
    base = levels.view(levels.shape[0], 1, levels.shape[1], 1, 1).expand(-1, 2, -1, 1, 1)
    return 1.0 - base, -1.0 - base


@settings(max_examples=200, deadline=None)
@given(rows=LEVELS, boundary=st.sampled_from([T2V_BOUNDARY, I2V_BOUNDARY, 0.5]))
def test_per_frame_every_live_frame_gets_the_expert_of_its_own_level(rows, boundary):
    levels = torch.tensor(rows, dtype=torch.float64)
    choice = choose_experts(levels, ExpertSettings(boundary=boundary))
    live = levels > 0
    above, below = live & (levels >= boundary), live & (levels < boundary)
    if bool(live.any()):
        assert (choice.run_high, choice.run_low) == (bool(above.any()), bool(below.any()))
    else:   # nothing live: one evaluation, its output unused
        assert (choice.run_high, choice.run_low) == (False, True)
    high_out, low_out = predictions(levels)
    out = combine_predictions(choice, high_out if choice.run_high else None, low_out if choice.run_low else None)
    wanted = torch.where((levels >= boundary).view(*levels.shape[:1], 1, levels.shape[1], 1, 1), high_out, low_out)
    assert torch.equal(out[live.view(live.shape[0], 1, -1, 1, 1).expand_as(out)],
                       wanted[live.view(live.shape[0], 1, -1, 1, 1).expand_as(out)])


@settings(max_examples=200, deadline=None)
@given(rows=LEVELS)
def test_per_call_runs_one_expert_chosen_by_the_noisiest_live_frame(rows):
    levels = torch.tensor(rows, dtype=torch.float64)
    choice = choose_experts(levels, ExpertSettings(rule="per_call"))
    top = float(levels.max())
    assert not choice.mixed
    assert choice.run_high == (top >= T2V_BOUNDARY)
    assert bool(choice.high.all()) == choice.run_high and bool((~choice.high).all()) == choice.run_low


def test_clean_frames_never_make_a_call_mixed():
    anchors_and_noise = torch.tensor([[0.0, 1.0, 0.95, 0.0]])
    choice = choose_experts(anchors_and_noise, ExpertSettings())
    assert choice.run_high and not choice.run_low and bool(choice.high.all())
    finished_context = torch.tensor([[0.0, 0.0, 0.3]])
    assert choose_experts(finished_context, ExpertSettings()).run_low
    assert not choose_experts(finished_context, ExpertSettings()).run_high


def test_boundary_and_rule_are_checked():
    with pytest.raises(ValueError, match="boundary must be in"):
        ExpertSettings(boundary=1.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        ExpertSettings(rule="nearest")


def test_switch_step_is_where_the_schedule_crosses_the_boundary():
    sigmas = flow_sigmas(20, shift=8.0)
    step = switch_step(sigmas, T2V_BOUNDARY)
    assert float(sigmas[step - 1]) >= T2V_BOUNDARY > float(sigmas[step])
    assert step == 11        # shift 8: sigma 0.889 at step 10, 0.867 at step 11
    assert switch_step(flow_sigmas(4, shift=1.0), 0.9) == 1
    assert switch_step(torch.tensor([0.5, 0.2, 0.0]), 0.875) == 0
    assert switch_step(torch.tensor([1.0, 0.95, 0.0]), 0.875) == 2


@pytest.mark.parametrize("step_size", [0.0, 1.0, 3.0])
def test_a_df_staircase_predicts_every_moving_frame_with_its_own_expert(step_size):
    """Through a whole Diffusion Forcing plan: the frames each iteration moves come from the expert
    of their own level; synchronous plans never mix and switch at the template's step."""
    base = flow_sigmas(12, shift=5.0)
    plan = df_plan(base, 9, DFSchedule(step_size=step_size, causal_block_size=1, anchors=(0,)))
    boundary, mixed = T2V_BOUNDARY, 0
    first_low = None
    for i in range(plan.num_iterations):
        levels = plan.sigmas[i].unsqueeze(0)
        choice = choose_experts(levels, ExpertSettings(boundary=boundary))
        moving = plan.moving(i)
        assert torch.equal(choice.high[0, moving], levels[0, moving] >= boundary)
        mixed += choice.mixed
        if first_low is None and choice.run_low:
            first_low = i
    if step_size == 0:
        assert mixed == 0 and first_low == switch_step(base, boundary)
    else:
        assert mixed > 0


def test_fifo_mixes_on_every_call_once_the_queue_spans_the_boundary():
    base = flow_sigmas(8, shift=5.0)
    plan = fifo_plan(base, 12, FIFOOptions(window=8))
    spans = [bool(((plan.sigmas[i] >= T2V_BOUNDARY) & (plan.sigmas[i] > 0)).any()
                  and ((plan.sigmas[i] < T2V_BOUNDARY) & (plan.sigmas[i] > 0)).any())
             for i in range(plan.num_iterations)]
    mixed = [choose_experts(plan.sigmas[i].unsqueeze(0), ExpertSettings()).mixed for i in range(plan.num_iterations)]
    assert mixed == spans and sum(mixed) > plan.num_iterations // 2
