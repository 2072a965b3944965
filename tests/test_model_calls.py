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


def test_options_for_call_adds_our_wrappers_and_frame_data_without_touching_the_runs_options():
    timestep_wrapper, conditioning_wrapper = object(), object()
    run = {"transformer_options": {"wrappers": {"diffusion_model": {"theirs": [1]}}, "keep": 1}}
    frame_data = {mc.FRAME_TIMESTEPS_OPTION: torch.ones(1, 2), mc.FRAME_INDEX_OPTION: torch.arange(2)[None],
                  mc.FRAME_COUNT_OPTION: 2}
    out = mc.options_for_call(run, frame_data, {"diffusion_model": {"ours": timestep_wrapper},
                                                "apply_model": {"ours": conditioning_wrapper}})
    assert out["transformer_options"]["wrappers"]["diffusion_model"] == {"theirs": [1], "ours": [timestep_wrapper]}
    assert out["transformer_options"]["wrappers"]["apply_model"] == {"ours": [conditioning_wrapper]}
    assert out["transformer_options"]["keep"] == 1 and out["transformer_options"][mc.FRAME_COUNT_OPTION] == 2
    assert run["transformer_options"]["wrappers"] == {"diffusion_model": {"theirs": [1]}}
    assert mc.FRAME_TIMESTEPS_OPTION not in run["transformer_options"]


# -- per-latent conditioning, levels, a second model's options ---------------------------------------

def _per_latent(rows, channels, frames, offset=0.0):
    """[rows, channels, frames, 2, 2] whose value at (row r, frame f) is offset + 100 r + f."""
    value = torch.arange(frames, dtype=torch.float32).view(1, 1, -1, 1, 1) + offset
    value = value + 100 * torch.arange(rows, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    return value.expand(rows, channels, frames, 2, 2).clone()


def test_call_conditioning_cuts_per_latent_inputs_row_by_row_to_the_calls_frames():
    frames = 8
    index = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])          # two windows of one video
    options = {mc.FRAME_INDEX_OPTION: index, mc.FRAME_COUNT_OPTION: frames}
    x = torch.zeros(4, 16, 4, 2, 2)                                # cond and uncond rows of both windows
    concat = _per_latent(4, 20, frames)
    cut = mc.call_conditioning(concat, options, x)
    assert cut.shape == (4, 20, 4, 2, 2)
    assert cut[:, 0, :, 0, 0].tolist() == [[0, 1, 2, 3], [104, 105, 106, 107], [200, 201, 202, 203],
                                           [304, 305, 306, 307]]
    assert mc.call_conditioning(concat[:, :, :4], options, x) is not None   # not full length: left alone
    assert mc.call_conditioning(torch.ones(4, 7), options, x).shape == (4, 7)
    whole = {mc.FRAME_INDEX_OPTION: torch.arange(frames)[None], mc.FRAME_COUNT_OPTION: frames}
    assert mc.call_conditioning(concat, whole, torch.zeros(4, 16, frames, 2, 2)) is concat
    assert mc.call_conditioning(concat, {}, x) is concat                    # not one of our samplers' calls


def test_call_conditioning_follows_a_comfyui_context_window_inside_our_index():
    class Window:
        dim, index_list = 2, [2, 3, 4]
    options = {mc.FRAME_INDEX_OPTION: torch.arange(6)[None], mc.FRAME_COUNT_OPTION: 6, "context_window": Window()}
    cut = mc.call_conditioning(_per_latent(2, 4, 6), options, torch.zeros(2, 16, 3, 2, 2))
    assert cut[:, 0, :, 0, 0].tolist() == [[2, 3, 4], [102, 103, 104]]


def test_call_levels_from_our_per_frame_sigmas_or_the_rows_sigma():
    x = torch.zeros(4, 16, 3, 2, 2)
    ours = {mc.FRAME_SIGMAS_OPTION: torch.tensor([[1.0, 0.9, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64)}
    levels = mc.call_levels(ours, x, torch.full((4,), 0.3))
    assert levels.tolist() == [[1.0, 0.9, 0.0], [0.5, 0.5, 0.5]] * 2
    assert mc.call_levels({}, x, torch.tensor([0.25, 0.25, 0.75, 0.75])).tolist() == [[0.25] * 3] * 2 + [[0.75] * 3] * 2
    with pytest.raises(RuntimeError, match="do not fit"):
        mc.call_levels({mc.FRAME_SIGMAS_OPTION: torch.zeros(3, 3)}, x, torch.zeros(4))


def test_rebase_options_gives_the_second_model_the_calls_additions_over_its_own_options():
    hi_wrapper, lo_wrapper, per_call, post_cfg, lo_post = (lambda: None for _ in range(5))
    sigmas = torch.ones(3)
    base = {"transformer_options": {"wrappers": {"diffusion_model": {"hi": [hi_wrapper]}}, "patches": {"p": [1]}},
            "sampler_post_cfg_function": [], "model_function_wrapper": hi_wrapper}
    onto = {"transformer_options": {"wrappers": {"diffusion_model": {"lo": [lo_wrapper]}}, "patches": {"p": [2]}},
            "sampler_post_cfg_function": [lo_post]}
    call = {"transformer_options": {"wrappers": {"diffusion_model": {"hi": [hi_wrapper], "ours": [per_call]}},
                                    "patches": {"p": [1]}, "sample_sigmas": sigmas, mc.FRAME_COUNT_OPTION: 5},
            "sampler_post_cfg_function": [post_cfg], "model_function_wrapper": hi_wrapper}
    out = mc.rebase_options(call, base, onto)
    assert out["transformer_options"]["wrappers"]["diffusion_model"] == {"lo": [lo_wrapper], "ours": [per_call]}
    assert out["transformer_options"]["patches"] == {"p": [2]}         # the second model's own patches
    assert out["transformer_options"]["sample_sigmas"] is sigmas and out["transformer_options"][mc.FRAME_COUNT_OPTION] == 5
    assert out["sampler_post_cfg_function"] == [lo_post, post_cfg]    # its own, plus what the sampler added
    assert "model_function_wrapper" not in out                        # the first model's, untouched by the call
    assert onto["transformer_options"]["wrappers"]["diffusion_model"] == {"lo": [lo_wrapper]}   # not mutated
    assert mc.rebase_options(base, base, onto) == onto


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
