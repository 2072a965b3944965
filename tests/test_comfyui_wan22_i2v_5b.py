"""Wan 2.2 TI2V 5B (48-channel latents, WAN22.process_timestep) and image-to-video models (c_concat,
CLIP vision) with the pack's samplers, on tiny models built by ComfyUI's own loader, conditioned by
ComfyUI's own nodes (Wan22ImageToVideoLatent, WanImageToVideo) with a stand-in VAE."""

import comfy_support as cs
import pytest
import torch
from test_comfyui_diffusion_forcing import df_sampler, run_custom, sigmas_for

pytestmark = pytest.mark.comfyui
PIXELS, LENGTH = 64, 29          # 29 pixel frames = 8 latent frames


class FakeVAE:
    """Encodes pixels [n, H, W, 3] the way a Wan VAE lays latents out (latent 0 = pixel frame 0,
    latent i = pixel frames 4i-3..4i): each latent frame holds its pixel frames' mean plus the channel."""

    def __init__(self, channels, scale):
        self.latent_channels, self.scale = channels, scale

    def spacial_compression_encode(self):
        return self.scale

    def encode(self, pixels):
        groups = [pixels[:1]] + [pixels[i:i + 4] for i in range(1, pixels.shape[0], 4)]
        means = torch.stack([g.mean() for g in groups])
        latent = means.view(1, 1, -1, 1, 1) + 0.1 * torch.arange(self.latent_channels).view(1, -1, 1, 1, 1)
        return latent.expand(1, -1, -1, pixels.shape[1] // self.scale, pixels.shape[2] // self.scale).clone()


def node_output(out, index=0):
    return out[index] if isinstance(out, tuple) else out.result[index]


def start_image():
    return torch.full((1, PIXELS, PIXELS, 3), 0.9)


def contexts():
    return [cs.padded_context(None, real, cs.TEXT_DIM, seed=seed) for seed, real in enumerate((5, 9, 3))]


def forward_recorder(model):
    """A clone whose WanModel.forward_orig records (x, per-frame timesteps, transformer_options, kwargs)."""
    probe = model.clone()
    original = probe.get_model_object("diffusion_model.forward_orig")
    calls = []

    def record(x, t, context, *args, transformer_options=None, **kwargs):
        calls.append((x, t.clone(), transformer_options, kwargs))
        return original(x, t, context, *args, transformer_options=transformer_options, **kwargs)
    probe.add_object_patch("diffusion_model.forward_orig", record)
    return probe, calls


# ------------------------------------------------------------------------------------- TI2V 5B


@pytest.fixture(scope="module")
def five_b():
    cs.import_comfy()
    from comfy_extras.nodes_wan import Wan22ImageToVideoLatent
    model = cs.load_variant("wan22_ti2v_5b", seed=3)
    latent = node_output(Wan22ImageToVideoLatent.execute(FakeVAE(48, 16), PIXELS, PIXELS, LENGTH, 1, start_image()))
    return model, latent


def test_5b_start_image_latent_is_an_anchor_at_timestep_zero_as_in_comfyui(five_b):
    """ComfyUI's own route (stock Euler, the noise mask turned into per-frame timesteps by
    WAN22.process_timestep) and our Diffusion Forcing sampler (the masked latent an anchor held at
    sigma 0) feed the model the same per-frame timesteps, call by call, and give the same video."""
    comfy = cs.import_comfy()
    model, latent = five_b
    assert latent["samples"].shape == (1, 48, 8, 4, 4) and latent["noise_mask"][0, 0, :, 0, 0].tolist()[:2] == [0, 1]
    text = contexts()
    positive, negative = cs.conditioning(text[0]), cs.conditioning(text[2])
    sigmas = sigmas_for(model, 4)
    theirs_model, theirs_calls = forward_recorder(model)
    theirs = run_custom(theirs_model, comfy.samplers.sampler_object("euler"), positive, negative, latent, sigmas)
    ours_model, ours_calls = forward_recorder(model)
    ours = run_custom(ours_model, df_sampler(0.0), positive, negative, latent, sigmas)
    assert len(ours_calls) == len(theirs_calls) == 4
    for (_, mine, _, _), (_, comfy_t, _, _) in zip(ours_calls, theirs_calls):
        assert mine.shape == comfy_t.shape == (2, 8)
        assert torch.equal(mine[:, 0], torch.zeros(2)) and torch.allclose(mine, comfy_t, atol=1e-3)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


@pytest.mark.parametrize("loop", ["df_staircase", "pmwd", "sliding", "fifo"])
def test_5b_loops_route_frame_prompts_by_the_latents_tokens_and_keep_the_start_image(five_b, loop):
    from comfyui_framelevel.nodes.comfy_adapter import PACKED_TEXT_OPTION, apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.long_video_nodes import (
        FrameLevelFIFOSampler,
        FrameLevelPMWDSampler,
        FrameLevelSlidingWindowSampler,
    )
    model, latent = five_b
    samplers = {"df_staircase": lambda: df_sampler(1.0),
                "pmwd": lambda: FrameLevelPMWDSampler.execute(4, 3, 0, "flat", "euler", 0)[0],
                "sliding": lambda: FrameLevelSlidingWindowSampler.execute(4, 2, 0.0, "euler", 0)[0],
                "fifo": lambda: FrameLevelFIFOSampler.execute(4, 1, False, "euler", 0)[0]}
    probe = apply_frame_level_cross_attention(model).clone()
    original = probe.get_model_object("diffusion_model.blocks.0.cross_attn.forward")
    tokens = []

    def record(x, context, transformer_options=None, **kwargs):
        tokens.append((transformer_options[PACKED_TEXT_OPTION][1], x.shape[1]))
        return original(x, context, transformer_options=transformer_options, **kwargs)
    probe.add_object_patch("diffusion_model.blocks.0.cross_attn.forward", record)
    text = contexts()
    out = run_custom(probe, samplers[loop](), cs.frame_conditioning(text[:2], [0, 0, 0, 0, 1, 1, 1, 1]),
                     cs.conditioning(text[2]), latent, sigmas_for(model, 4))
    assert (out[:, :, 0] - latent["samples"][:, :, 0]).abs().max() <= 1e-5
    assert torch.isfinite(out).all() and (out[:, :, 1:] - latent["samples"][:, :, 1:]).abs().max() > 1e-2
    per_frame = (latent["samples"].shape[3] // 2) * (latent["samples"].shape[4] // 2)   # 48-ch latent, patch 2x2
    assert tokens and all(n == per_frame and seq % per_frame == 0 for n, seq in tokens)


# ------------------------------------------------------------------------------ image to video


@pytest.fixture(scope="module")
def i2v():
    cs.import_comfy()
    from comfy_extras.nodes_wan import WanImageToVideo
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    model = apply_frame_level_cross_attention(cs.load_variant("wan22_i2v_a14b", seed=4))
    text = contexts()
    positive, negative = cs.frame_conditioning(text[:2], [0, 0, 0, 1, 1, 1, 1, 1]), cs.conditioning(text[2])
    out = WanImageToVideo.execute(positive, negative, FakeVAE(16, 8), PIXELS, PIXELS, LENGTH, 1, start_image())
    return model, node_output(out, 0), node_output(out, 1), node_output(out, 2)


def pmwd_routes():
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDModel, FrameLevelPMWDSampler
    comfy = cs.import_comfy()
    return {"sampler": lambda model: (model, FrameLevelPMWDSampler.execute(4, 3, 0, "flat", "euler", 0)[0]),
            "model_patch": lambda model: (FrameLevelPMWDModel.execute(model, 4, 3, 0, "flat", 0)[0],
                                          comfy.samplers.sampler_object("euler"))}


@pytest.mark.parametrize("route", ["sampler", "model_patch"])
def test_only_the_window_holding_latent_0_sees_the_start_image(i2v, route):
    """The I2V conditioning (mask + image latent channels) reaches each window cut at that window's
    own latents: windows without latent 0 see no known frame and the gray frames' latents."""
    from comfyui_framelevel.nodes.model_calls import FRAME_INDEX_OPTION
    model, positive, negative, latent = i2v
    probe, calls = forward_recorder(model)
    probe, sampler = pmwd_routes()[route](probe)
    run_custom(probe, sampler, positive, negative, latent, sigmas_for(model, 2))
    image = model.model.process_latent_in(positive[0][1]["concat_latent_image"])[0]
    windows = set()
    for x, _, options, _ in calls:
        index = options[FRAME_INDEX_OPTION]
        index = index.repeat(x.shape[0] // index.shape[0], 1)
        for row in range(x.shape[0]):
            frames = index[row].tolist()
            windows.add(tuple(frames))
            known = torch.tensor([1.0 if f == 0 else 0.0 for f in frames]).view(1, -1, 1, 1).expand(4, -1, *x.shape[-2:])
            assert torch.equal(x[row, 16:20], known)
            assert torch.allclose(x[row, 20:36], image[:, frames], atol=1e-6)
    assert windows == {(0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7)}


def test_i2v_pmwd_sampler_equals_the_pmwd_patch_with_frame_prompts(i2v):
    model, positive, negative, latent = i2v
    runs = [run_custom(*pmwd_routes()[route](model), positive, negative, latent, sigmas_for(model, 3))
            for route in ("sampler", "model_patch")]
    assert (runs[0] - runs[1]).abs().max() <= 1e-5 * runs[1].abs().max()


def test_wan21_i2v_with_clip_vision_frame_prompts_anchor_and_pmwd():
    """Wan 2.1 I2V 14B (img_emb): CLIP-vision tokens reach every window, frame prompts are routed,
    the start latent is held clean as an anchor while c_concat conditions window 0."""
    cs.import_comfy()
    import comfy.clip_vision
    from comfy_extras.nodes_wan import WanImageToVideo
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.df_nodes import FrameLevelAnchorFrames
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDSampler
    model = apply_frame_level_cross_attention(cs.load_variant("wan21_i2v_14b", seed=5))
    vision = comfy.clip_vision.Output()
    vision.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(6))
    text = contexts()
    positive, negative, latent = (node_output(WanImageToVideo.execute(
        cs.frame_conditioning(text[:2], [0, 0, 0, 1, 1, 1, 1, 1]), cs.conditioning(text[2]), FakeVAE(16, 8), PIXELS,
        PIXELS, LENGTH, 1, start_image(), vision), i) for i in range(3))
    latent = FrameLevelAnchorFrames.execute(FakeVAE(16, 8), latent, start_image=start_image())[0]
    probe, calls = forward_recorder(model)
    out = run_custom(probe, FrameLevelPMWDSampler.execute(4, 3, 0, "flat", "euler", 0)[0], positive, negative,
                     latent, sigmas_for(model, 2))
    assert (out[:, :, 0] - latent["samples"][:, :, 0]).abs().max() <= 1e-5
    assert torch.isfinite(out).all() and len(calls) == 2 * 3
    assert all(kwargs.get("clip_fea") is not None and kwargs["clip_fea"].shape[1] == 257 for _, _, _, kwargs in calls)


def end_image():
    return torch.full((1, PIXELS, PIXELS, 3), 0.2)


def test_wan21_flf2v_start_and_end_images_reach_their_windows_and_stay_anchored():
    """Wan 2.1 FLF2V 14B (img_emb.emb_pos) conditioned by ComfyUI's WanFirstLastFrameToVideo: both
    images' CLIP-vision tokens (2 x 257, position-embedded) reach every window, the window holding
    the last latent sees the end image in its mask and image channels, frame prompts are routed, and
    both anchor latents come back clean."""
    cs.import_comfy()
    import comfy.clip_vision
    from comfy_extras.nodes_wan import WanFirstLastFrameToVideo
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention, wan_diffusion_model
    from comfyui_framelevel.nodes.df_nodes import FrameLevelAnchorFrames
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDSampler
    from comfyui_framelevel.nodes.model_calls import FRAME_INDEX_OPTION
    model = apply_frame_level_cross_attention(cs.load_variant("wan21_flf2v_14b", seed=7))
    assert tuple(wan_diffusion_model(model).img_emb.emb_pos.shape) == cs.FLF2V_POSITIONS
    visions = []
    for seed in (8, 9):
        vision = comfy.clip_vision.Output()
        vision.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(seed))
        visions.append(vision)
    text = contexts()
    positive, negative, latent = (node_output(WanFirstLastFrameToVideo.execute(
        cs.frame_conditioning(text[:2], [0, 0, 0, 0, 1, 1, 1, 1]), cs.conditioning(text[2]), FakeVAE(16, 8), PIXELS,
        PIXELS, LENGTH, 1, start_image(), end_image(), *visions), i) for i in range(3))
    latent = FrameLevelAnchorFrames.execute(FakeVAE(16, 8), latent, start_image=start_image(),
                                            end_image=end_image())[0]
    probe, calls = forward_recorder(model)
    out = run_custom(probe, FrameLevelPMWDSampler.execute(4, 3, 0, "flat", "euler", 0)[0], positive, negative,
                     latent, sigmas_for(model, 2))
    last = latent["samples"].shape[2] - 1
    for anchor in (0, last):
        assert (out[:, :, anchor] - latent["samples"][:, :, anchor]).abs().max() <= 1e-5
    assert torch.isfinite(out).all() and (out[:, :, 1:last] - latent["samples"][:, :, 1:last]).abs().max() > 1e-2
    assert len(calls) == 2 * 3 and all(kwargs["clip_fea"].shape[1] == 2 * 257 for _, _, _, kwargs in calls)
    image = model.model.process_latent_in(positive[0][1]["concat_latent_image"])[0]
    seen_end = False
    for x, _, options, _ in calls:
        index = options[FRAME_INDEX_OPTION]
        index = index.repeat(x.shape[0] // index.shape[0], 1)
        for row in range(x.shape[0]):
            frames = index[row].tolist()
            # 4 mask channels = the 4 pixel frames of a latent: latent 0 holds the start image in all
            # four, the last latent holds the end image only in its last pixel frame
            known = torch.tensor([[1.0] * 4 if f == 0 else [0.0, 0.0, 0.0, 1.0] if f == last else [0.0] * 4
                                  for f in frames]).T.reshape(4, -1, 1, 1)
            assert torch.equal(x[row, 16:20], known.expand(-1, -1, *x.shape[-2:]))
            assert torch.allclose(x[row, 20:36], image[:, frames], atol=1e-6)
            seen_end |= last in frames
    assert seen_end
    assert (image[:, last] - image[:, 0]).abs().max() > 0.1   # the end image differs from the start image
