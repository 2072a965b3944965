"""Diffusion Forcing through ComfyUI's own sampling stack on a tiny random Wan (CPU)."""

import comfy_support as cs
import pytest
import torch

pytestmark = pytest.mark.comfyui
FRAMES, HEIGHT, WIDTH = 5, 4, 4


@pytest.fixture(scope="module")
def setup():
    cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    dit = cs.tiny_dit(seed=3)
    model = cs.comfy_wan_from_dit(dit)
    contexts = [cs.padded_context(None, real, 32, seed=seed) for seed, real in enumerate((5, 9, 3))]
    return model, apply_frame_level_cross_attention(model), contexts


def df_sampler(step_size=0.0, block=1, solver="euler", window=0):
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcingSampler
    return FrameLevelDiffusionForcingSampler.execute(step_size, block, solver, window)[0]


def run_custom(model, sampler, positive, negative, latent, sigmas, cfg=4.0, seed=0):
    comfy = cs.import_comfy()
    from comfy_extras.nodes_custom_sampler import CFGGuider, Noise_RandomNoise, SamplerCustomAdvanced
    guider = CFGGuider.execute(model, positive, negative, cfg)[0] if hasattr(CFGGuider, "execute") else None
    if guider is None or isinstance(guider, tuple):
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
    out = SamplerCustomAdvanced().sample(Noise_RandomNoise(seed), guider, sampler, sigmas, latent)
    return out[0]["samples"] if isinstance(out, tuple) else out.result[0]["samples"]


def sigmas_for(model, steps=4):
    from comfyui_framelevel.nodes.comfy_adapter import calculate_sigmas
    return calculate_sigmas(model, "simple", steps)


def empty_latent():
    return {"samples": torch.zeros(1, 16, FRAMES, HEIGHT, WIDTH)}


def test_step_size_zero_equals_stock_euler(setup):
    comfy = cs.import_comfy()
    model, patched, contexts = setup
    positive = cs.frame_conditioning(contexts[:2], [0, 0, 1, 1, 1])
    negative = cs.conditioning(contexts[2])
    sigmas = sigmas_for(patched)
    ours = run_custom(patched, df_sampler(0.0), positive, negative, empty_latent(), sigmas)
    stock = run_custom(patched, comfy.samplers.sampler_object("euler"), positive, negative, empty_latent(), sigmas)
    assert (ours - stock).abs().max() <= 1e-5 * stock.abs().max()


def test_per_frame_timesteps_reach_the_model(setup):
    model, _, contexts = setup
    seen = []
    probe = model.clone()

    original = probe.get_model_object("diffusion_model.forward_orig")

    def record(x, t, *args, **kwargs):          # the timesteps WanModel.forward_orig really gets
        seen.append(t.detach().clone())
        return original(x, t, *args, **kwargs)
    probe.add_object_patch("diffusion_model.forward_orig", record)
    sigmas = sigmas_for(probe, 3)
    run_custom(probe, df_sampler(step_size=1.0), cs.conditioning(contexts[0]), cs.conditioning(contexts[1]),
               empty_latent(), sigmas)
    # rows whose frames share one level take Wan's [B] path; the others must arrive as [B, F]
    assert seen and all(t.ndim == 1 or t.shape[1] == FRAMES for t in seen)
    assert any(t.ndim == 2 for t in seen)
    seen = [t if t.ndim == 2 else t[:, None].expand(-1, FRAMES) for t in seen]
    from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_sigma_matrix
    expected = df_sigma_matrix(sigmas.double(), FRAMES, DFSchedule(step_size=1.0))[:-1] * 1000
    got = torch.stack([t[0].double() for t in seen])
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-2)


def test_anchors_unchanged_through_sampler_custom_advanced(setup):
    model, patched, contexts = setup
    from comfyui_framelevel.nodes.df_nodes import FrameLevelAnchorFrames

    class FakeVAE:                       # encodes an image to a known latent frame
        def encode(self, image):
            value = float(image.mean())
            return torch.full((1, 16, 1, HEIGHT, WIDTH), value) + torch.arange(16.0).view(1, 16, 1, 1, 1)

    start, end = torch.full((1, 32, 32, 3), 0.25), torch.full((1, 32, 32, 3), 0.75)
    latent = FrameLevelAnchorFrames.execute(FakeVAE(), empty_latent(), start_image=start, end_image=end)[0]
    out = run_custom(patched, df_sampler(step_size=1.0, solver="dpmpp_2m"),
                     cs.frame_conditioning(contexts[:2], [0, 1, 1, 1, 1]), cs.conditioning(contexts[2]),
                     latent, sigmas_for(patched, 4))
    for index in (0, FRAMES - 1):
        assert (out[:, :, index] - latent["samples"][:, :, index]).abs().max() <= 1e-5
    assert (out[:, :, 2] - latent["samples"][:, :, 2]).abs().max() > 1e-2


def test_works_inside_comfyui_context_windows(setup):
    _, patched, contexts = setup
    windowed = cs.context_windows(patched, 3, 1)   # the running ComfyUI's defaults (0.33: causal window fix on)
    positive = cs.frame_conditioning(contexts[:2], [0, 0, 1, 1, 1])
    out = run_custom(windowed, df_sampler(step_size=1.0), positive, cs.conditioning(contexts[2]),
                     empty_latent(), sigmas_for(windowed, 3))
    assert torch.isfinite(out).all() and out.shape == (1, 16, FRAMES, HEIGHT, WIDTH)


def test_partial_mask_is_refused_before_sampling(setup):
    _, patched, contexts = setup
    latent = empty_latent()
    mask = torch.ones(1, 1, FRAMES, HEIGHT, WIDTH)
    mask[:, :, 1, :2] = 0
    latent["noise_mask"] = mask
    with pytest.raises(ValueError, match="partly masked"):
        run_custom(patched, df_sampler(), cs.conditioning(contexts[0]), cs.conditioning(contexts[1]), latent,
                   sigmas_for(patched, 2))


def test_all_in_one_node_matches_sampler(setup):
    _, patched, contexts = setup
    from comfyui_framelevel.nodes.df_nodes import FrameLevelDiffusionForcing
    positive, negative = cs.frame_conditioning(contexts[:2], [0, 1, 1, 1, 1]), cs.conditioning(contexts[2])
    node_out = FrameLevelDiffusionForcing.execute(patched, positive, negative, empty_latent(), 7, 3, 4.0,
                                                   "simple", 2.0, 1, "euler")[0]["samples"]
    direct = run_custom(patched, df_sampler(2.0), positive, negative, empty_latent(), sigmas_for(patched, 3), seed=7)
    assert torch.allclose(node_out, direct, atol=1e-6)
