"""The pure logic of our model-call patches (nodes/model_calls.py), without ComfyUI."""

from __future__ import annotations

import functools
import types

import pytest
import torch
from comfyui_framelevel.nodes import model_calls as mc
from comfyui_framelevel.nodes.core.frame_text import FrameText
from comfyui_framelevel.nodes.core.windows import PMWDOptions, pmwd_windows
from comfyui_framelevel.nodes.validation import FrameLevelInputError


def frame_text(index, contexts=2):
    return FrameText(tuple(torch.full((3, 4), float(i)) for i in range(contexts)), tuple(index))


# -- cond batching ---------------------------------------------------------------------------------

def test_cond_frame_text_repeats_to_the_batch_and_concatenates_rows_in_order():
    a, b = frame_text([0, 1]), frame_text([1, 1])
    cond = mc.CONDFrameText([a]).process_cond(batch_size=2)
    assert cond.rows == [a, a] and cond.size() == [2]
    with pytest.raises(ValueError, match="cannot repeat 2"):
        cond.process_cond(batch_size=3)
    batch = cond.concat([mc.CONDFrameText([b])])
    assert isinstance(batch, mc.FrameTextBatch) and list(batch) == [a, a, b]
    assert cond.can_concat(mc.CONDFrameText([b])) and not cond.can_concat(object())


def test_frame_text_rows_fit_the_latent_and_turn_a_plain_prompt_into_one_prompt_per_frame():
    noise = torch.zeros(1, 16, 4, 2, 2)
    rows = mc.frame_text_rows({mc.FRAME_TEXT_KEY: frame_text([0, 1]), "noise": noise})
    assert rows[0].index == (0, 1, 1, 1)                 # the last prompt holds to the end
    plain = torch.randn(2, 5, 4)
    rows = mc.frame_text_rows({"cross_attn": plain, "noise": noise})
    assert [r.index for r in rows] == [(0,) * 4] * 2 and torch.equal(rows[1].contexts[0], plain[1])
    assert mc.frame_text_rows({"noise": noise}) is None
    with pytest.raises(FrameLevelInputError, match="frame prompts.*Fix: match FrameLevelPromptSchedule"):
        mc.frame_text_rows({mc.FRAME_TEXT_KEY: frame_text([0, 1, 1, 0, 1]), "noise": noise})


# -- frames and timesteps of one call ----------------------------------------------------------------

def context_window(index_list):
    return types.SimpleNamespace(dim=2, index_list=list(index_list))


def test_call_frames_from_our_index_a_context_window_or_the_whole_latent():
    index = torch.arange(8).repeat(2, 1)
    assert mc.call_frames({}, 5) == [0, 1, 2, 3, 4]
    assert mc.call_frames({"context_window": context_window([2, 3, 4])}, 3) == [2, 3, 4]
    assert torch.equal(mc.call_frames({mc.FRAME_INDEX_OPTION: index}, 8), index)
    cut = mc.call_frames({mc.FRAME_INDEX_OPTION: index, "context_window": context_window([4, 5])}, 2)
    assert cut.tolist() == [[4, 5], [4, 5]]


def test_call_timesteps_per_frame_cut_to_a_window_and_collapsed_when_level():
    x = torch.zeros(4, 16, 3, 2, 2)
    per_frame = torch.tensor([[900.0, 500.0, 100.0, 0.0, 0.0]])
    options = {mc.FRAME_TIMESTEPS_OPTION: per_frame, "context_window": context_window([0, 1, 2])}
    out = mc.call_timesteps(options, x, torch.tensor([1.0]))
    assert out.shape == (4, 3) and out[3].tolist() == [900.0, 500.0, 100.0]
    level = {mc.FRAME_TIMESTEPS_OPTION: torch.full((2, 3), 700.0)}
    assert mc.call_timesteps(level, x, torch.tensor([1.0])).tolist() == [700.0] * 4
    assert torch.equal(mc.call_timesteps({}, x, torch.tensor([3.0])), torch.tensor([3.0]))
    with pytest.raises(RuntimeError, match="do not fit"):
        mc.call_timesteps({mc.FRAME_TIMESTEPS_OPTION: torch.zeros(3, 3)}, x, torch.tensor([1.0]))


def test_tokens_per_frame_follow_the_latent_and_the_patch_size():
    assert mc.tokens_per_frame(torch.zeros(1, 16, 2, 60, 104), (1, 2, 2)) == 30 * 52
    assert mc.tokens_per_frame(torch.zeros(1, 48, 2, 5, 7), (1, 2, 2)) == 3 * 4   # Wan pads odd sizes


def test_options_for_call_adds_our_wrapper_without_touching_the_runs_options():
    wrapper = object()
    run = {"transformer_options": {"wrappers": {"diffusion_model": {"theirs": [1]}}, "keep": 1}}
    out = mc.options_for_call(run, torch.ones(1, 2), torch.arange(2)[None], "diffusion_model", "ours", wrapper)
    assert out["transformer_options"]["wrappers"]["diffusion_model"] == {"theirs": [1], "ours": [wrapper]}
    assert out["transformer_options"]["keep"] == 1
    assert run["transformer_options"]["wrappers"]["diffusion_model"] == {"theirs": [1]}
    assert mc.FRAME_TIMESTEPS_OPTION not in run["transformer_options"]


# -- PMWD window slicing -----------------------------------------------------------------------------

def test_window_slicing_cuts_per_latent_inputs_and_repeats_the_rest():
    rows, frames = 2, 8
    windows = pmwd_windows(frames, PMWDOptions(window=4, num_windows=3))
    per_latent = torch.arange(frames, dtype=torch.float32).view(1, 1, -1, 1, 1).expand(rows, 1, frames, 1, 1)
    cut = mc.window_value(per_latent, rows, frames, windows)
    assert cut.shape == (6, 1, 4, 1, 1) and cut[4, 0, :, 0, 0].tolist() == [4.0, 5.0, 6.0, 7.0]
    text = torch.randn(rows, 5, 3)
    assert torch.equal(mc.window_value(text, rows, frames, windows), torch.cat([text] * 3))
    assert list(mc.window_value(mc.FrameTextBatch(["c", "u"]), rows, frames, windows)) == ["c", "u"] * 3
    assert mc.window_value("other", rows, frames, windows) == "other"
    options = mc.window_transformer_options(
        {"cond_or_uncond": [0, 1], "sigmas": torch.tensor([0.5, 0.5]),
         mc.FRAME_TIMESTEPS_OPTION: torch.arange(frames, dtype=torch.float32)[None] * 10}, rows, frames, windows)
    assert options["cond_or_uncond"] == [0, 1] * 3 and options["sigmas"].shape == (6,)
    assert options[mc.FRAME_INDEX_OPTION][2].tolist() == [2, 3, 4, 5]
    assert options[mc.FRAME_TIMESTEPS_OPTION][5].tolist() == [40.0, 50.0, 60.0, 70.0]


def test_pmwd_checks_name_what_cannot_be_windowed():
    with pytest.raises(FrameLevelInputError, match="context windows"):
        mc.check_pmwd_call({"context_window": object()}, None, {})
    with pytest.raises(FrameLevelInputError, match="ControlNet"):
        mc.check_pmwd_call({}, {"middle": []}, {})
    with pytest.raises(FrameLevelInputError, match="time_dim_concat"):
        mc.check_pmwd_call({}, None, {"time_dim_concat": torch.zeros(1)})
    mc.check_pmwd_call({}, None, {})
    assert "3 windows of 4 (starts 0 2 4" in mc.check_pmwd_layout((1, 16, 8, 4, 4), PMWDOptions(4, 3), 5)
    with pytest.raises(FrameLevelInputError, match="window / num_windows / overlap = '3 latent frames'"):
        mc.check_pmwd_layout((1, 16, 3, 4, 4), PMWDOptions(4, 3), 5)
    with pytest.raises(FrameLevelInputError, match="video latent"):
        mc.check_pmwd_layout((1, 16, 4, 4), PMWDOptions(4, 3), 5)


def test_progress_reporter_counts_sampler_steps():
    seen = []
    report = mc.progress_reporter(seen.append, steps=10)
    for i in range(20):
        report(i, 20, "x", "x0")
    assert [s["i"] for s in seen][-1] == 9 and seen[0]["denoised"] == "x0"
    assert mc.progress_reporter(None, 10) is None


# -- living beside other packs' patches ------------------------------------------------------------

def test_a_patch_reaches_ours_through_methods_closures_partials_and_wrapped():
    @mc.mark_ours
    def ours(self, x):
        return x

    bound = types.MethodType(ours, object())
    assert mc.is_ours(bound) and mc.reaches_ours(bound)

    def closure_wrapper(self, x):
        return bound(x) + 1

    assert mc.reaches_ours(types.MethodType(closure_wrapper, object()))
    assert mc.reaches_ours(functools.partial(lambda found, x: found(x), bound))

    @functools.wraps(ours)
    def decorated(*args):
        return ours(*args)

    assert mc.reaches_ours(decorated)

    def default_arg(x, previous=bound):
        return previous(x)

    assert mc.reaches_ours(default_arg)

    def replacing(self, x):
        return x * 2

    assert not mc.reaches_ours(types.MethodType(replacing, object()))
    found = mc.foreign_patch({"a": bound, "b": types.MethodType(replacing, object())}, ["a", "b"])
    assert found[0] == "b" and "replacing" in mc.describe_patch(found[1])
    assert mc.foreign_patch({"a": bound}, ["a"]) is None
    assert mc.foreign_patch({}, ["a"]) == ("a", None)     # our patch was removed
