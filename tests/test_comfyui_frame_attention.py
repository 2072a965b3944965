"""Frame-level cross-attention on ComfyUI's own Wan classes (tiny random model, CPU)."""

import comfy_support as cs
import pytest
import torch

pytestmark = pytest.mark.comfyui

FRAMES, HEIGHT, WIDTH = 3, 4, 6


@pytest.fixture(scope="module")
def setup():
    cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    dit = cs.tiny_dit(seed=1)
    model = cs.comfy_wan_from_dit(dit)
    contexts = [cs.padded_context(None, real, 32, seed=seed) for seed, real in enumerate((5, 9, 3))]
    return dit, model, apply_frame_level_cross_attention(model), contexts


def noise_for(seed=0):
    return torch.randn(1, 16, FRAMES, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))


def dit_denoised(dit, x, sigma, contexts=None, index=None, context=None):
    """x0 = x - sigma * v from our own DiT (frame-level when `index` is given)."""
    from comfyui_framelevel.kernels import pack_prompts
    t = torch.tensor([sigma * 1000.0])
    with torch.no_grad():
        if index is None:
            v = dit(x, t, context.unsqueeze(0))
        else:
            v = dit(x, t, frame_text=pack_prompts(contexts, torch.tensor([index])))
    return x - sigma * v


def one_step(model, noise, positive, negative, sigma=0.7, cfg=1.0):
    """ComfyUI Euler from sigma to 0 on an empty latent: returns process_out(x0)."""
    comfy = cs.import_comfy()
    sigmas = torch.tensor([sigma, 0.0])
    return comfy.sample.sample(model, noise, 1, cfg, "euler", "simple", positive, negative,
                               torch.zeros_like(noise), sigmas=sigmas, disable_pbar=True, seed=0)


def test_our_dit_equals_comfyui_wanmodel(setup):
    dit, model, _, contexts = setup
    x = noise_for(3)
    for t in (torch.tensor([700.0]), torch.tensor([[900.0, 500.0, 0.0]])):
        with torch.no_grad():
            ours = dit(x, t, contexts[0].unsqueeze(0))
            theirs = model.model.diffusion_model(x, t, contexts[0].unsqueeze(0))
        assert (ours - theirs).abs().max() <= 1e-5 * max(1.0, theirs.abs().max())


def test_identical_prompts_equal_unpatched(setup):
    _, model, patched, contexts = setup
    noise = noise_for()
    base = cs.sample(model, noise, cs.conditioning(contexts[0]), cs.conditioning(contexts[1]), cfg=4.0)
    same = cs.sample(patched, noise, cs.frame_conditioning([contexts[0]], [0] * FRAMES),
                     cs.conditioning(contexts[1]), cfg=4.0)
    plain_on_patched = cs.sample(patched, noise, cs.conditioning(contexts[0]), cs.conditioning(contexts[1]),
                                 cfg=4.0)
    assert (base - same).abs().max() <= 1e-5 * base.abs().max()      # fp32, relative to the output scale
    assert (base - plain_on_patched).abs().max() <= 1e-5 * base.abs().max()


def test_distinct_prompts_equal_our_dit(setup):
    dit, model, patched, contexts = setup
    noise, sigma, index = noise_for(), 0.7, [0, 1, 2]
    out = one_step(patched, noise, cs.frame_conditioning(contexts, index), cs.conditioning(contexts[1]), sigma)
    expected = model.model.process_latent_out(dit_denoised(dit, noise * sigma, sigma, contexts, index))
    assert (out - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max())
    unpatched = one_step(model, noise, cs.conditioning(contexts[0]), cs.conditioning(contexts[1]), sigma)
    assert (out - unpatched).abs().max() > 1e-2      # the prompts really change the result


@pytest.mark.parametrize("negative_kind", ["global", "frame"])
def test_cfg_with_global_or_frame_level_negative(setup, negative_kind):
    dit, model, patched, contexts = setup
    noise, sigma, cfg = noise_for(1), 0.6, 3.0
    x = noise * sigma
    cond = dit_denoised(dit, x, sigma, contexts[:2], [0, 1, 1])
    if negative_kind == "global":
        negative = cs.conditioning(contexts[2])
        uncond = dit_denoised(dit, x, sigma, context=contexts[2])
    else:
        negative = cs.frame_conditioning([contexts[2], contexts[0]], [0, 0, 1])
        uncond = dit_denoised(dit, x, sigma, [contexts[2], contexts[0]], [0, 0, 1])
    out = one_step(patched, noise, cs.frame_conditioning(contexts[:2], [0, 1, 1]), negative, sigma, cfg)
    expected = model.model.process_latent_out(uncond + cfg * (cond - uncond))
    assert (out - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max())


def test_latent_longer_than_schedule_holds_last_prompt(setup):
    _, _, patched, contexts = setup
    noise = noise_for(2)
    short = one_step(patched, noise, cs.frame_conditioning(contexts[:2], [0, 1]), cs.conditioning(contexts[2]))
    explicit = one_step(patched, noise, cs.frame_conditioning(contexts[:2], [0, 1, 1]),
                        cs.conditioning(contexts[2]))
    assert torch.equal(short, explicit)


def test_latent_shorter_than_schedule_is_refused_before_sampling(setup):
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    _, model, patched, contexts = setup
    calls = []
    counting = patched.clone()
    counting.set_model_unet_function_wrapper(lambda apply, args: calls.append(1) or apply(args["input"],
                                             args["timestep"], **args["c"]))
    with pytest.raises(FrameLevelInputError, match="would be lost"):
        one_step(counting, noise_for(), cs.frame_conditioning(contexts, [0, 1, 2, 2]),
                 cs.conditioning(contexts[2]))
    assert calls == []


def _random_lora(dit, rank=2, seed=5):
    generator = torch.Generator().manual_seed(seed)
    lora, merged = {}, {k: v.clone() for k, v in dit.state_dict().items()}
    for path in ("blocks.0.cross_attn.q", "blocks.1.cross_attn.k", "blocks.0.cross_attn.v", "blocks.1.ffn.0",
                 "text_embedding.0"):
        weight = merged[f"{path}.weight"]
        down = torch.randn(rank, weight.shape[1], generator=generator) * 0.3
        up = torch.randn(weight.shape[0], rank, generator=generator) * 0.3
        lora[f"diffusion_model.{path}.lora_A.weight"] = down
        lora[f"diffusion_model.{path}.lora_B.weight"] = up
        lora[f"diffusion_model.{path}.alpha"] = torch.tensor(4.0)
        merged[f"{path}.weight"] = weight + (4.0 / rank) * up @ down
    return lora, merged


def test_lora_before_and_after_the_patch(setup):
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    dit, model, patched, contexts = setup
    lora, merged = _random_lora(dit)
    lora_then_patch = apply_frame_level_cross_attention(comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)[0])
    patch_then_lora = comfy.sd.load_lora_for_models(patched, None, lora, 1.0, 0)[0]
    noise, sigma, index = noise_for(4), 0.8, [2, 0, 1]
    positive, negative = cs.frame_conditioning(contexts, index), cs.conditioning(contexts[0])
    a = one_step(lora_then_patch, noise, positive, negative, sigma)
    b = one_step(patch_then_lora, noise, positive, negative, sigma)
    merged_dit = cs.tiny_dit(seed=1)
    merged_dit.load_state_dict(merged)
    expected = model.model.process_latent_out(dit_denoised(merged_dit, noise * sigma, sigma, contexts, index))
    assert (a - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max())
    assert (b - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max())
    without_lora = one_step(patched, noise, positive, negative, sigma)
    assert (a - without_lora).abs().max() > 1e-3


def test_base_model_bit_identical_after_patched_run(setup):
    _, model, patched, contexts = setup
    noise = noise_for(6)
    before = cs.sample(model, noise, cs.conditioning(contexts[0]), cs.conditioning(contexts[1]))
    cs.sample(patched, noise, cs.frame_conditioning(contexts, [0, 1, 2]), cs.conditioning(contexts[1]))
    after = cs.sample(model, noise, cs.conditioning(contexts[0]), cs.conditioning(contexts[1]))
    assert torch.equal(before, after)
    assert not any("cross_attn.forward" in name for name in model.object_patches)


def tiny_i2v():
    """A tiny random Wan I2V DiT, its ComfyUI MODEL and the frame-level patched clone, two prompts and
    CLIP-vision features (257 image tokens)."""
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    dit = cs.tiny_dit(seed=2, model_type="i2v")
    model = cs.comfy_wan_from_dit(dit)
    contexts = [cs.padded_context(None, real, 32, seed=seed) for seed, real in enumerate((4, 6))]
    clip_fea = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(3))
    return dit, model, apply_frame_level_cross_attention(model), contexts, clip_fea


def test_i2v_image_tokens_stay_global():
    cs.import_comfy()
    import comfy.patcher_extension
    from comfyui_framelevel.kernels import pack_prompts
    from comfyui_framelevel.nodes.core.frame_text import FrameText
    from comfyui_framelevel.nodes.model_calls import FrameTextBatch
    dit, model, patched, contexts, clip_fea = tiny_i2v()
    x, t, index = noise_for(7), torch.tensor([600.0]), [1, 0, 1]
    options = {"wrappers": {k: dict(v) for k, v in patched.wrappers.items()}}
    assert comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL in options["wrappers"]
    patched.patch_model()
    try:
        with torch.no_grad():
            theirs = model.model.diffusion_model(
                x, t, contexts[0].unsqueeze(0), clip_fea=clip_fea, transformer_options=options,
                fl_frame_text=FrameTextBatch([FrameText(tuple(contexts), tuple(index))]))
    finally:
        patched.unpatch_model()
    with torch.no_grad():
        ours = dit(x, t, frame_text=pack_prompts(contexts, torch.tensor([index])), clip_fea=clip_fea)
    assert (ours - theirs).abs().max() <= 1e-5 * max(1.0, ours.abs().max())


def test_non_wan_model_is_refused():
    cs.import_comfy()
    import types

    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    fake = types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=torch.nn.Linear(2, 2)))
    with pytest.raises(FrameLevelInputError, match="model = 'Linear'.*Wan"):
        apply_frame_level_cross_attention(fake)


def test_i2v_image_tokens_follow_the_running_comfyuis_attention_choices():
    """The image (CLIP-vision) tokens stay with ComfyUI's own attention: an attention override
    (optimized_attention_override, as attention-switching nodes set it) sees our image-token call,
    with every keyword the running ComfyUI's own WanI2VCrossAttention passes there (0.33:
    low_precision_attention=False, since sage attention gives NaNs on those tokens)."""
    cs.import_comfy()
    from comfyui_framelevel.nodes.core.frame_text import FrameText
    from comfyui_framelevel.nodes.model_calls import FrameTextBatch
    dit, model, patched, contexts, clip_fea = tiny_i2v()
    x, t = noise_for(3), torch.tensor([600.0])

    def image_calls(patcher, **extra):
        calls = []

        def override(func, q, k, v, *args, **kwargs):
            if k.shape[1] == 257:   # the image tokens
                calls.append({key: value for key, value in kwargs.items()
                              if key not in ("transformer_options", "_inside_attn_wrapper")})
            return func(q, k, v, *args, **kwargs)
        options = {"wrappers": {kind: dict(v) for kind, v in patcher.wrappers.items()},
                   "optimized_attention_override": override}
        patcher.patch_model()
        try:
            with torch.no_grad():
                patcher.model.diffusion_model(x, t, contexts[0].unsqueeze(0), clip_fea=clip_fea,
                                              transformer_options=options, **extra)
        finally:
            patcher.unpatch_model()
        return calls
    theirs = image_calls(model)
    ours = image_calls(patched, fl_frame_text=FrameTextBatch([FrameText(tuple(contexts), (1, 0, 1))]))
    assert len(theirs) == len(ours) == len(dit.blocks)
    for own, core in zip(ours, theirs):
        assert {key: own.get(key) for key in core} == core, (own, core)
