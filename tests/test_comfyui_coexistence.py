"""Our patches beside another pack's patches of the same Wan blocks, and under ComfyUI's own
context windows (real ComfyUI, tiny random Wan, CPU)."""

import comfy_support as cs
import pytest
import torch
from test_comfyui_diffusion_forcing import run_custom, sigmas_for

pytestmark = pytest.mark.comfyui
FRAMES, HEIGHT, WIDTH = 8, 4, 4
FIRST_BLOCK = "diffusion_model.blocks.0.cross_attn.forward"


@pytest.fixture(scope="module")
def setup():
    cs.import_comfy()
    model = cs.comfy_wan_from_dit(cs.tiny_dit(seed=6))
    contexts = [cs.padded_context(None, real, 32, seed=seed) for seed, real in enumerate((5, 9, 3))]
    return model, contexts


def latent():
    return {"samples": torch.zeros(1, 16, FRAMES, HEIGHT, WIDTH)}


def other_pack_patch(model, chain: bool, calls: list):
    """What another pack typically does: an object patch of block 0's cross_attn.forward, either
    wrapping the forward it finds (chain=True) or replacing it with its own attention."""
    import types
    patched = model.clone()
    found = patched.get_model_object(FIRST_BLOCK)
    block = patched.get_model_object("diffusion_model.blocks.0.cross_attn")

    def wrapping(self, x, context, **kwargs):
        calls.append("wrapping")
        return found(x, context, **kwargs)

    def replacing(self, x, context, transformer_options=None, **kwargs):
        calls.append("replacing")
        return self.o(self.q(x))

    patched.add_object_patch(FIRST_BLOCK, types.MethodType(wrapping if chain else replacing, block))
    return patched


def counting(model, calls: list):
    probe = model.clone()
    probe.set_model_unet_function_wrapper(
        lambda apply, args: calls.append(1) or apply(args["input"], args["timestep"], **args["c"]))
    return probe


def frame_prompts(contexts):
    return cs.frame_conditioning(contexts, [0, 0, 1, 1, 1, 2, 2, 2]), cs.conditioning(contexts[2])


def test_a_patch_that_wraps_ours_works_and_sees_every_call(setup):
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    model, contexts = setup
    ours = apply_frame_level_cross_attention(model)
    calls = []
    both = other_pack_patch(ours, chain=True, calls=calls)
    positive, negative = frame_prompts(contexts)
    sigmas = sigmas_for(model, 2)
    alone = run_custom(ours, _euler(), positive, negative, latent(), sigmas)
    together = run_custom(both, _euler(), positive, negative, latent(), sigmas)
    assert torch.equal(together, alone)        # frame routing intact under the other pack's wrapper
    assert calls and set(calls) == {"wrapping"}


def test_a_patch_that_replaces_ours_stops_sampling_before_the_first_step(setup):
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    model, contexts = setup
    calls, model_calls = [], []
    replaced = counting(other_pack_patch(apply_frame_level_cross_attention(model), False, calls), model_calls)
    positive, negative = frame_prompts(contexts)
    with pytest.raises(FrameLevelInputError, match=r"blocks\.0\.cross_attn\.forward.*replacing.*frame-level prompts "
                                                   r"would be silently lost") as error:
        run_custom(replaced, _euler(), positive, negative, latent(), sigmas_for(model, 2))
    assert "FrameLevelCrossAttention" in str(error.value)
    assert calls == [] and model_calls == []


@pytest.mark.parametrize("chain", [True, False])
def test_ours_over_another_packs_cross_attention_patch_is_refused_naming_both(setup, chain):
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    model, _ = setup
    theirs = other_pack_patch(model, chain, [])
    name = "wrapping" if chain else "replacing"
    with pytest.raises(FrameLevelInputError, match=rf"already patched by .*{name}.*FrameLevelCrossAttention"):
        apply_frame_level_cross_attention(theirs)


def test_comfyui_context_windows_on_our_patched_model_equal_our_pmwd_sampler(setup):
    """ComfyUI's context windows route frame prompts by global latent index on our patched model:
    standard_static windows [0..3] [2..5] [4..7] with flat fusion and stock euler equal our PMWD
    sampler with the same three windows and flat fusion."""
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDSampler
    model, contexts = setup
    patched = apply_frame_level_cross_attention(model)
    windowed = cs.context_windows(patched, 4, 2, causal_window_fix=comparable_windows())
    positive, negative = frame_prompts(contexts)
    sigmas = sigmas_for(model, 3)
    theirs = run_custom(windowed, comfy.samplers.sampler_object("euler"), positive, negative, latent(), sigmas)
    pmwd = FrameLevelPMWDSampler.execute(4, 3, 0, "flat", "euler", 0)[0]
    ours = run_custom(patched, pmwd, positive, negative, latent(), sigmas)
    single_prompt = run_custom(windowed, comfy.samplers.sampler_object("euler"), cs.conditioning(contexts[0]),
                               negative, latent(), sigmas)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()
    assert (theirs - single_prompt).abs().max() > 1e-3   # the frame prompts did reach the windows


def comparable_windows():
    """causal_window_fix off where the running ComfyUI has it (0.33+): only then are core's windows
    the plain PMWD windows (the fix feeds every later window one extra anchor latent)."""
    return False if cs.has_causal_window_fix() else None


def window_settings():
    """Every causal_window_fix setting the running ComfyUI offers: its default, and on 0.33+ on and off."""
    return [None, True, False] if cs.has_causal_window_fix() else [None]


def test_comfyui_context_windows_route_prompts_by_the_frames_each_call_holds(setup):
    """Frame prompts inside core's context windows, with the causal window fix on and off (0.33+):
    every call's routing follows the latents it holds, the fix's prepended anchor latent included."""
    from comfyui_framelevel.nodes.comfy_adapter import PACKED_TEXT_OPTION, apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.comfy_versions import context_window_frames
    model, contexts = setup
    schedule = [0, 0, 1, 1, 1, 2, 2, 2]
    positive = cs.frame_conditioning(contexts, schedule)
    for fix in window_settings():
        probe = cs.context_windows(apply_frame_level_cross_attention(model), 4, 2, causal_window_fix=fix)
        original = probe.get_model_object(FIRST_BLOCK)
        seen = []

        def record(x, context, transformer_options=None, original=original, seen=seen, fix=fix, **kwargs):
            frames = context_window_frames(transformer_options["context_window"])
            packed, per_frame = transformer_options[PACKED_TEXT_OPTION]
            assert x.shape[1] == len(frames) * per_frame, (fix, frames, tuple(x.shape))
            chunk = transformer_options["cond_or_uncond"].index(0)
            seen.append((tuple(frames), packed.frame_prompt[chunk].tolist()))
            return original(x, context, transformer_options=transformer_options, **kwargs)
        probe.add_object_patch(FIRST_BLOCK, record)
        out = run_custom(probe, _euler(), positive, cs.conditioning(contexts[2]), latent(), sigmas_for(model, 2))
        assert torch.isfinite(out).all()
        windows = {frames for frames, _ in seen}
        plain = {(0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7)}
        anchored = {(0, 1, 2, 3), (1, 2, 3, 4, 5), (3, 4, 5, 6, 7)}
        assert windows == (anchored if fix or (fix is None and cs.has_causal_window_fix()) else plain), (fix, windows)
        for frames, routing in seen:
            for a in range(len(frames)):
                for b in range(len(frames)):
                    assert (schedule[frames[a]] == schedule[frames[b]]) == (routing[a] == routing[b]), (fix, frames)


def test_diffusion_forcing_anchors_hold_inside_comfyui_context_windows(setup):
    """Our DF sampler's per-frame timesteps and first/last anchors inside core's context windows, with
    the causal window fix on and off (0.33+): the anchor latents come out exactly as given, the rest
    is denoised."""
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcingSampler
    model, contexts = setup
    given = torch.randn(1, 16, FRAMES, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(1, 1, FRAMES, HEIGHT, WIDTH)
    mask[:, :, [0, FRAMES - 1]] = 0
    sampler = FrameLevelDiffusionForcingSampler.execute(1.0, 1, "euler", 0)[0]
    for fix in window_settings():
        windowed = cs.context_windows(apply_frame_level_cross_attention(model), 4, 2, causal_window_fix=fix)
        out = run_custom(windowed, sampler, cs.frame_conditioning(contexts, [0, 0, 1, 1, 1, 2, 2, 2]),
                         cs.conditioning(contexts[2]), {"samples": given.clone(), "noise_mask": mask},
                         sigmas_for(model, 3))
        for index in (0, FRAMES - 1):
            assert (out[:, :, index] - given[:, :, index]).abs().max() <= 1e-5, (fix, index)
        assert torch.isfinite(out).all() and (out[:, :, 3] - given[:, :, 3]).abs().max() > 1e-2, fix


def _euler():
    comfy = cs.import_comfy()
    return comfy.samplers.sampler_object("euler")


def test_extra_video_tokens_are_refused_before_the_first_step(setup):
    """In-context reference latents (0.33+: appended video tokens) belong to no latent frame: the
    frame-level patched model stops before any model call, naming the input in one line."""
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    model, contexts = setup
    calls = []
    patched = counting(apply_frame_level_cross_attention(model), calls)
    positive = [[contexts[0].unsqueeze(0), {"pooled_output": None,
                                            "context_latents": [torch.zeros(1, 16, 1, HEIGHT, WIDTH)]}]]
    with pytest.raises(FrameLevelInputError) as refused:
        run_custom(patched, _euler(), positive, cs.conditioning(contexts[1]), latent(), sigmas_for(model, 2))
    message = str(refused.value)
    assert "positive" in message and "in-context reference" in message and "\n" not in message.strip()
    assert calls == []


def prompt_relay_patch(model, calls: list):
    """What Prompt Relay's PromptRelayEncode does to a Wan model: every block's cross_attn.forward
    replaced by its own region-masked forward (it never wraps a forward it finds)."""
    import types
    patched = model.clone()
    for index in range(len(patched.model.diffusion_model.blocks)):
        key = f"diffusion_model.blocks.{index}.cross_attn.forward"
        block = patched.get_model_object(f"diffusion_model.blocks.{index}.cross_attn")

        def forward(self, x, context, transformer_options=None, **kwargs):
            calls.append("prompt relay")
            return self.o(self.q(x))
        forward.__module__ = "ComfyUI-PromptRelay.patches"
        forward.__qualname__ = "_CrossAttnPatch.forward"
        patched.add_object_patch(key, types.MethodType(forward, block))
    return patched


def test_prompt_relay_and_ours_on_one_model_stop_before_sampling_naming_both_and_the_way_out(setup):
    """Either order stops before any model call, in one sentence naming Prompt Relay, our node and
    the migration (our schedule node reads Prompt Relay stories)."""
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    model, contexts = setup
    with pytest.raises(FrameLevelInputError) as first:
        apply_frame_level_cross_attention(prompt_relay_patch(model, []))
    calls, model_calls = [], []
    relay_after_ours = counting(prompt_relay_patch(apply_frame_level_cross_attention(model), calls), model_calls)
    positive, negative = frame_prompts(contexts)
    with pytest.raises(FrameLevelInputError) as second:
        run_custom(relay_after_ours, _euler(), positive, negative, latent(), sigmas_for(model, 2))
    for refused in (first, second):
        message = str(refused.value)
        assert "Prompt Relay" in message and "FrameLevelCrossAttention" in message, message
        assert "FrameLevelPromptSchedule" in message and "\n" not in message, message
    assert calls == [] and model_calls == []
