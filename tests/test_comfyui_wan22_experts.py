"""Wan 2.2 A14B's two experts through ComfyUI: tiny experts built by ComfyUI's own loader, the
experts guider against the official two-KSamplerAdvanced route, the per-frame rule on real calls,
loading, and the checks on the pair."""

import comfy_support as cs
import pytest
import torch
from test_comfyui_diffusion_forcing import df_sampler

pytestmark = pytest.mark.comfyui
FRAMES, SIZE, STEPS = 8, 4, 6


@pytest.fixture(scope="module")
def experts():
    cs.import_comfy()
    high = cs.load_variant("wan22_t2v_a14b", seed=1)
    low = cs.load_variant("wan22_t2v_a14b", seed=2)
    contexts = [cs.padded_context(None, real, cs.TEXT_DIM, seed=seed) for seed, real in enumerate((5, 9, 3))]
    return high, low, contexts


def latent(channels=16, frames=FRAMES):
    return {"samples": torch.zeros(1, channels, frames, SIZE, SIZE)}


def guider(high, low, positive, negative, cfg_high=4.0, cfg_low=3.0, boundary=0.875, rule="per_frame"):
    from comfyui_framelevel.nodes.expert_nodes import FrameLevelWanExperts
    return FrameLevelWanExperts.execute(high, low, positive, negative, boundary, cfg_high, cfg_low, rule)[0]


def run_guided(guider_, sampler, sigmas, latent_, seed=0):
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise, SamplerCustomAdvanced
    out = SamplerCustomAdvanced().sample(Noise_RandomNoise(seed), guider_, sampler, sigmas, latent_)
    return out[0]["samples"] if isinstance(out, tuple) else out.result[0]["samples"]


def official_two_samplers(high, low, positive, negative, switch, cfg_high=4.0, cfg_low=3.0, seed=0):
    """The official template's route: KSamplerAdvanced(high, add noise, 0..switch, leftover noise) then
    KSamplerAdvanced(low, no noise, switch..end)."""
    import nodes as comfy_nodes
    first = comfy_nodes.KSamplerAdvanced().sample(high, "enable", seed, STEPS, cfg_high, "euler", "simple", positive,
                                                  negative, latent(), 0, switch, "enable")[0]
    return comfy_nodes.KSamplerAdvanced().sample(low, "disable", 0, STEPS, cfg_low, "euler", "simple", positive,
                                                 negative, first, switch, 10000, "disable")[0]["samples"]


def test_tiny_variants_are_detected_as_the_real_files_are():
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention, wan_diffusion_model
    for variant, (_, config_class, model_class) in cs.VARIANTS.items():
        model = cs.load_variant(variant)
        assert type(model.model.model_config).__name__ == config_class, variant
        assert type(model.model) is getattr(comfy.model_base, model_class), variant
        wan_diffusion_model(model)
        assert cs.latent_channels(model) == (48 if variant == "wan22_ti2v_5b" else 16)
        assert apply_frame_level_cross_attention(model) is not model


@pytest.mark.parametrize("patches", ["plain", "frame_prompts_and_pmwd_patch"])
def test_experts_guider_equals_the_official_two_sampler_route(experts, patches):
    """Synchronous schedule (Diffusion Forcing step 0 = Euler): the guider hands over at the step the
    boundary gives on the sigma schedule, like two KSamplerAdvanced split there, with each expert's
    own cfg, and with the frame-level cross-attention and the PMWD model patch on both experts."""
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention, calculate_sigmas
    from comfyui_framelevel.nodes.expert_nodes import FrameLevelExpertSwitchStep
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDModel
    high, low, contexts = experts
    positive, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[2])
    if patches != "plain":
        high, low = (FrameLevelPMWDModel.execute(apply_frame_level_cross_attention(m), 4, 3, 0, "flat", 0)[0]
                     for m in (high, low))
        positive = cs.frame_conditioning(contexts[:2], [0, 0, 0, 1, 1, 1, 1, 1])
    sigmas = calculate_sigmas(high, "simple", STEPS)
    switch = FrameLevelExpertSwitchStep.execute(sigmas, 0.875)[0]
    assert 0 < switch < STEPS and float(sigmas[switch - 1]) >= 0.875 > float(sigmas[switch])
    official = official_two_samplers(high, low, positive, negative, switch)
    ours = run_guided(guider(high, low, positive, negative), df_sampler(0.0), sigmas, latent())
    assert (ours - official).abs().max() <= 1e-5 * official.abs().max()
    single = official_two_samplers(high, high, positive, negative, switch)
    assert (single - official).abs().max() > 1e-2 * official.abs().max()   # the low-noise expert mattered


def test_stock_samplers_run_through_the_experts_guider(experts):
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    from comfyui_framelevel.nodes.core.experts import switch_step
    high, low, contexts = experts
    positive, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[2])
    sigmas = calculate_sigmas(high, "simple", STEPS)
    g = guider(high, low, positive, negative)
    stock = run_guided(g, comfy.samplers.sampler_object("euler"), sigmas, latent())
    switch = switch_step(sigmas, 0.875)
    assert dict(g.calls) == {"high": switch, "low": STEPS - switch}
    ours = run_guided(g, df_sampler(0.0), sigmas, latent())
    assert (ours - stock).abs().max() <= 1e-5 * stock.abs().max()


def _flow_denoised(x, velocity, sigma):
    return x - velocity * sigma.view(-1, 1, 1, 1, 1)


@pytest.mark.parametrize("rule", ["per_frame", "per_call"])
def test_no_frame_is_predicted_by_the_wrong_expert_on_real_calls(experts, rule):
    """A Diffusion Forcing staircase with an anchor: record every call's per-frame sigmas, each
    expert's raw output and the guider's answer; frame by frame the answer is the flow prediction
    of the expert the rule names (cfg 1: one model evaluation per expert)."""
    import comfy.patcher_extension as pe
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    from comfyui_framelevel.nodes.core.experts import ExpertSettings, choose_experts
    from comfyui_framelevel.nodes.model_calls import FRAME_SIGMAS_OPTION
    high, low, contexts = experts
    seen = {"high": [], "low": []}
    answers = []

    def recorder(name):
        def wrapper(executor, x, timestep, context, *args, **kwargs):
            out = executor(x, timestep, context, *args, **kwargs)
            seen[name].append(out.float())
            return out
        return wrapper

    def predict_probe(executor, x, timestep, model_options, seed):
        out = executor(x, timestep, model_options, seed)
        answers.append((x, timestep, model_options["transformer_options"][FRAME_SIGMAS_OPTION], out))
        return out
    probes = []
    for name, model in (("high", high), ("low", low)):
        probe = model.clone()
        probe.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "probe", recorder(name))
        probes.append(probe)
    probes[0].add_wrapper_with_key(pe.WrappersMP.PREDICT_NOISE, "probe", predict_probe)
    start = latent()
    start["samples"][:, :, 0] = torch.randn(1, 16, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    start["noise_mask"] = torch.ones(1, 1, FRAMES, SIZE, SIZE)
    start["noise_mask"][:, :, 0] = 0
    g = guider(probes[0], probes[1], cs.conditioning(contexts[0]), cs.conditioning(contexts[2]), 1.0, 1.0, rule=rule)
    out = run_guided(g, df_sampler(2.0), calculate_sigmas(high, "simple", STEPS), start)
    assert (out[:, :, 0] - start["samples"][:, :, 0]).abs().max() <= 1e-5   # the anchor (latent-format round trip)
    settings, mixed = ExpertSettings(rule=rule), 0
    outputs = {name: iter(values) for name, values in seen.items()}
    for x, sigma_ref, levels, answer in answers:
        choice = choose_experts(levels, settings)
        mixed += choice.mixed
        high_out = _flow_denoised(x, next(outputs["high"]), sigma_ref) if choice.run_high else None
        low_out = _flow_denoised(x, next(outputs["low"]), sigma_ref) if choice.run_low else None
        live = (levels > 0).view(levels.shape[0], 1, -1, 1, 1).expand_as(answer)
        if rule == "per_frame":
            wanted = high_out if not choice.run_low else low_out if not choice.run_high else torch.where(
                (levels >= 0.875).view(levels.shape[0], 1, -1, 1, 1), high_out, low_out)
        else:
            wanted = high_out if bool(levels[levels > 0].max() >= 0.875) else low_out
        assert torch.allclose(answer[live], wanted[live], atol=1e-6, rtol=1e-5)
    assert all(next(it, None) is None for it in outputs.values())   # no expert ran more often than needed
    assert (mixed > 0) == (rule == "per_frame") and g.calls["mixed"] == mixed


def test_each_expert_is_loaded_when_a_call_first_needs_it(experts, monkeypatch):
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    high, low, contexts = experts
    loads = []
    real = comfy.model_management.load_models_gpu

    def recording(models, *args, **kwargs):
        loads.append(tuple("high" if m.model is high.model else "low" if m.model is low.model else "other"
                           for m in models))
        return real(models, *args, **kwargs)
    monkeypatch.setattr(comfy.model_management, "load_models_gpu", recording)
    sigmas = calculate_sigmas(high, "simple", STEPS)
    g = guider(high, low, cs.conditioning(contexts[0]), cs.conditioning(contexts[2]))
    run_guided(g, df_sampler(0.0), sigmas, latent())
    assert loads == [("high",), ("low",)]          # prepare_sampling, then the hand-over: one after the other
    loads.clear()
    run_guided(g, df_sampler(2.0), sigmas, latent())
    assert loads[0] == ("high",) and ("high", "low") in loads and g.calls["mixed"] > 0


def test_the_pair_is_checked_before_sampling(experts):
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDModel
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    high, low, contexts = experts
    positive, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[2])
    with pytest.raises(FrameLevelInputError, match="model_low_noise.*both T2V or both I2V"):
        guider(high, cs.load_variant("wan22_i2v_a14b"), positive, negative)
    with pytest.raises(FrameLevelInputError, match="apply FrameLevelCrossAttention to both experts"):
        guider(apply_frame_level_cross_attention(high), low, positive, negative)
    with pytest.raises(FrameLevelInputError, match="FrameLevelPMWDModel with the same settings"):
        guider(high, FrameLevelPMWDModel.execute(low, 4, 3, 0, "flat", 0)[0], positive, negative)
    with pytest.raises(FrameLevelInputError, match="boundary"):
        guider(high, low, positive, negative, boundary=1.0)


def test_the_low_noise_experts_own_outer_sample_wrappers_run(experts):
    """Each expert's OUTER_SAMPLE wrappers run, as they would under its own KSamplerAdvanced: the
    low-noise expert's see that expert as the guider's model, once per run, before the first call."""
    comfy = cs.import_comfy()
    high, low, contexts = experts
    seen = []
    low = low.clone()

    def outer(executor, *args, **kwargs):
        seen.append((executor.class_obj.model_patcher, sum(g.calls.values())))
        return executor(*args, **kwargs)
    low.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test", outer)
    g = guider(high, low, cs.conditioning(contexts[0]), cs.conditioning(contexts[2]))
    run_guided(g, comfy.samplers.sampler_object("euler"), comfy_sigmas(high), latent())
    assert len(seen) == 1 and seen[0] == (low, 0)
    assert sum(g.calls.values()) == STEPS


def test_a_patch_replacing_ours_on_the_low_noise_expert_stops_before_the_first_step(experts):
    """Frame prompts would be lost on the frames the low-noise expert predicts: refused, naming both."""
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    from test_comfyui_coexistence import other_pack_patch
    high, low, contexts = experts
    replaced = []
    low = other_pack_patch(apply_frame_level_cross_attention(low), False, replaced)
    positive = cs.frame_conditioning(contexts[:2], [0, 0, 0, 0, 1, 1, 1, 1])
    g = guider(apply_frame_level_cross_attention(high), low, positive, cs.conditioning(contexts[2]))
    with pytest.raises(FrameLevelInputError, match=r"blocks\.0\.cross_attn\.forward.*replacing.*silently lost"):
        run_guided(g, comfy.samplers.sampler_object("euler"), comfy_sigmas(high), latent())
    assert replaced == [] and sum(g.calls.values()) == 0


def comfy_sigmas(model):
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    return calculate_sigmas(model, "simple", STEPS)
