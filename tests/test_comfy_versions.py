"""The version table of the ComfyUI glue (nodes/comfy_versions.py), without ComfyUI: each difference
on objects shaped as 0.3.64 and as 0.33 shape them (the comfyui tests run the same code under both)."""

import types

import torch
from comfyui_framelevel.nodes import comfy_versions as cv
from comfyui_framelevel.nodes import model_calls as mc


def window(index_list, anchor=None):
    w = types.SimpleNamespace(index_list=index_list, dim=2)
    if anchor is not None:
        w.causal_anchor_index = anchor
    return w


def test_context_window_frames_with_and_without_the_causal_anchor():
    assert cv.context_window_frames(window([4, 5, 6])) == [4, 5, 6]            # 0.3.64
    assert cv.context_window_frames(window([4, 5, 6], anchor=3)) == [3, 4, 5, 6]   # 0.33, fix on
    assert cv.context_window_frames(window([0, 1, 2], anchor=-1)) == [0, 1, 2]  # 0.33, first window


def test_per_frame_data_follows_the_anchor_frame():
    index = torch.arange(8)[None]
    options = {mc.FRAME_INDEX_OPTION: index, "context_window": window([4, 5, 6], anchor=3)}
    assert mc.call_frames(options, 4).tolist() == [[3, 4, 5, 6]]
    per_frame = torch.arange(8.0)[None] * 100
    options = {mc.FRAME_TIMESTEPS_OPTION: per_frame, "context_window": window([4, 5, 6], anchor=3)}
    x = torch.zeros(2, 16, 4, 2, 2)
    assert mc.call_timesteps(options, x, torch.zeros(2)).tolist() == [[300.0, 400.0, 500.0, 600.0]] * 2


def test_free_memory_asks_the_current_patcher_where_it_can():
    asked = []

    class Patcher:   # 0.33: ModelPatcher.get_free_memory (DynamicVRAM adds what it can give back)
        def get_free_memory(self, device):
            asked.append(("patcher", device))
            return 7 << 30

    def model_management(device):
        asked.append(("model_management", device))
        return 3 << 30
    assert cv.free_memory(types.SimpleNamespace(current_patcher=Patcher()), "cuda:0", model_management) == 7 << 30
    assert cv.free_memory(types.SimpleNamespace(), "cuda:0", model_management) == 3 << 30   # 0.3.64
    assert asked == [("patcher", "cuda:0"), ("model_management", "cuda:0")]


def test_extra_video_token_inputs_are_named_by_conditioning():
    conds = {"positive": [{"cross_attn": 1, "context_latents": [torch.zeros(1)]}],
             "negative": [{"cross_attn": 1, "reference_latents": [torch.zeros(1)]}]}
    assert cv.extra_video_token_inputs(conds, model_has_ref_conv=False) == [
        "positive: " + cv.EXTRA_VIDEO_TOKEN_KEYS["context_latents"]]
    assert len(cv.extra_video_token_inputs(conds, model_has_ref_conv=True)) == 2
    assert cv.extra_video_token_inputs({"positive": [{"cross_attn": 1}]}, True) == []


def test_share_sampling_state_mirrors_only_what_the_guider_passed():
    model = types.SimpleNamespace()
    cv.share_sampling_state(model, {})
    assert not hasattr(model, "latent_shapes")
    cv.share_sampling_state(model, {"latent_shapes": [(1, 16, 5, 4, 4)]})
    assert model.latent_shapes == [(1, 16, 5, 4, 4)]


def test_image_token_attention_prefers_the_modules_own_attention_only_where_comfyui_knows_it():
    newest = types.SimpleNamespace(ComfyAttention=object)
    older = types.SimpleNamespace()
    with_own = types.SimpleNamespace(comfy_attention="int8")
    assert cv.image_token_attention_options(newest, with_own) == {"low_precision_attention": False,
                                                                  "preferred_attention": "int8"}
    assert cv.image_token_attention_options(older, with_own) == {"low_precision_attention": False}
    assert cv.image_token_attention_options(newest, types.SimpleNamespace()) == {"low_precision_attention": False}
