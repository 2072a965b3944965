"""The trainer's Wan 2.1 DiT: shapes, key names, per-frame timesteps, frame-level cross-attention,
and (with a ComfyUI checkout) numerical equality with ComfyUI's WanModel on the same weights."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from comfyui_framelevel.kernels import pack_prompts
from comfyui_framelevel.training.wan import WanConfig, WanDiT, random_init, tiny_config

TEXT_LEN = 12  # tiny stand-in for Wan's 512 padded text rows


def tiny_model(seed=0, **overrides):
    return random_init(WanDiT(tiny_config(**overrides)), seed).eval()


def padded_prompt(real_rows, seed, text_dim=32, length=TEXT_LEN):
    """A umt5-style context: `real_rows` random rows followed by exact-zero pad rows."""
    context = torch.zeros(length, text_dim)
    context[:real_rows] = torch.randn(real_rows, text_dim, generator=torch.Generator().manual_seed(seed))
    return context


def inputs(batch=2, frames=3, height=4, width=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 16, frames, height, width, generator=g)


def expected_keys(config: WanConfig) -> list[str]:
    keys = ["patch_embedding.weight", "patch_embedding.bias"]
    for name in ("text_embedding.0", "text_embedding.2", "time_embedding.0", "time_embedding.2",
                 "time_projection.1"):
        keys += [f"{name}.weight", f"{name}.bias"]
    for i in range(config.num_layers):
        b = f"blocks.{i}."
        keys.append(b + "modulation")
        for attn in ("self_attn", "cross_attn"):
            for lin in ("q", "k", "v", "o"):
                keys += [f"{b}{attn}.{lin}.weight", f"{b}{attn}.{lin}.bias"]
            keys += [f"{b}{attn}.norm_q.weight", f"{b}{attn}.norm_k.weight"]
        if config.model_type == "i2v":
            keys += [f"{b}cross_attn.k_img.weight", f"{b}cross_attn.k_img.bias",
                     f"{b}cross_attn.v_img.weight", f"{b}cross_attn.v_img.bias",
                     f"{b}cross_attn.norm_k_img.weight"]
        keys += [f"{b}norm3.weight", f"{b}norm3.bias", f"{b}ffn.0.weight", f"{b}ffn.0.bias",
                 f"{b}ffn.2.weight", f"{b}ffn.2.bias"]
    keys += ["head.modulation", "head.head.weight", "head.head.bias"]
    if config.model_type == "i2v":
        for i in (0, 1, 3, 4):
            keys += [f"img_emb.proj.{i}.weight", f"img_emb.proj.{i}.bias"]
    return keys


@pytest.mark.parametrize("model_type", ["t2v", "i2v"])
def test_state_dict_keys_and_shapes_are_the_original_ones(model_type):
    config = tiny_config(model_type=model_type, num_layers=3)
    state = WanDiT(config).state_dict()
    assert sorted(state) == sorted(expected_keys(config))
    assert state["patch_embedding.weight"].shape == (64, 16, 1, 2, 2)
    assert state["blocks.2.modulation"].shape == (1, 6, 64)
    assert state["head.modulation"].shape == (1, 2, 64)
    assert state["head.head.weight"].shape == (16 * 4, 64)
    assert state["text_embedding.0.weight"].shape == (64, 32)
    assert WanConfig.from_state_dict(state, num_heads=2, text_dim=32) == config


def test_output_shape_and_odd_sizes_are_cropped_back():
    model = tiny_model()
    x = inputs(height=5, width=7)
    out = model(x, torch.tensor([900.0, 10.0]), torch.randn(2, TEXT_LEN, 32))
    assert out.shape == x.shape
    assert torch.isfinite(out).all() and out.std() > 0.1


def test_per_frame_timesteps_equal_scalar_when_constant():
    model = tiny_model()
    x, context = inputs(), torch.randn(2, TEXT_LEN, 32)
    scalar = model(x, torch.tensor([700.0, 300.0]), context)
    per_frame = model(x, torch.tensor([[700.0] * 3, [300.0] * 3]), context)
    torch.testing.assert_close(per_frame, scalar, atol=1e-5, rtol=0)


def test_per_frame_timesteps_change_the_output():
    model = tiny_model()
    x, context = inputs(), torch.randn(2, TEXT_LEN, 32)
    a = model(x, torch.tensor([[700.0, 700.0, 700.0]] * 2), context)
    b = model(x, torch.tensor([[0.0, 700.0, 999.0]] * 2), context)
    assert (a - b).abs().max() > 1e-3


def test_frame_level_with_identical_prompts_equals_global_context():
    model = tiny_model()
    x, t = inputs(), torch.tensor([[100.0, 500.0, 900.0], [50.0, 60.0, 70.0]])
    prompt = padded_prompt(5, seed=3)
    global_out = model(x, t, prompt.expand(2, -1, -1))
    packed = pack_prompts([prompt], torch.zeros(2, 3, dtype=torch.long))
    frame_out = model(x, t, frame_text=packed)
    torch.testing.assert_close(frame_out, global_out, atol=1e-5, rtol=0)


def test_frame_level_with_duplicate_segments_equals_global_context():
    model = tiny_model()
    x, t = inputs(), torch.tensor([400.0, 600.0])
    prompt = padded_prompt(4, seed=5)
    packed = pack_prompts([prompt, prompt.clone()], torch.tensor([[0, 1, 0], [1, 1, 0]]))
    torch.testing.assert_close(model(x, t, frame_text=packed), model(x, t, prompt.expand(2, -1, -1)),
                               atol=1e-5, rtol=0)


def test_changing_one_frames_prompt_leaves_other_frames_cross_attention_untouched():
    """Without self-attention mixing (one block, probe the first cross-attention) other frames are exact."""
    model = tiny_model(num_layers=1)
    x, t = inputs(batch=1), torch.tensor([500.0])
    prompts = [padded_prompt(4, seed=s) for s in (1, 2, 3)]
    captured = []
    hook = model.blocks[0].cross_attn.register_forward_hook(lambda m, a, out: captured.append(out))
    model(x, t, frame_text=pack_prompts(prompts, torch.tensor([[0, 1, 0]])))
    model(x, t, frame_text=pack_prompts(prompts, torch.tensor([[0, 2, 0]])))
    hook.remove()
    before, after = (c.reshape(1, 3, -1, 64) for c in captured)
    torch.testing.assert_close(after[:, [0, 2]], before[:, [0, 2]], atol=0, rtol=0)
    assert (after[:, 1] - before[:, 1]).abs().max() > 1e-3


def test_gradient_checkpointing_gives_same_output_and_gradients():
    x, t, context = inputs(), torch.tensor([300.0, 800.0]), torch.randn(2, TEXT_LEN, 32)
    grads = []
    for flag in (False, True):
        model = tiny_model().train()
        model.gradient_checkpointing = flag
        model(x, t, context).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    model = tiny_model()
    x, t, context = inputs(), torch.tensor([300.0, 800.0]), torch.randn(2, TEXT_LEN, 32)
    reference = model(x, t, context)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, t, context)
    assert low.dtype == torch.float32  # the velocity comes back in the input's dtype
    assert (low.float() - reference).abs().mean() < 0.05 * reference.abs().mean()


def test_bf16_weights_forward_and_backward():
    model = tiny_model().to(torch.bfloat16).train()
    x = inputs().to(torch.bfloat16)
    packed = pack_prompts([padded_prompt(3, 1), padded_prompt(6, 2)], torch.tensor([0, 0, 1]))
    out = model(x, torch.tensor([[10.0, 500.0, 999.0]] * 2), frame_text=packed)
    out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(model.blocks[0].cross_attn.k.weight.grad).all()


# ---------------------------------------------------------------------------------------------
def _comfy_wan_model(config: WanConfig):
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    import comfy.cli_args  # noqa: TID251 - parity test against the real ComfyUI implementation

    comfy.cli_args.args.cpu = True
    import comfy.ldm.wan.model  # noqa: TID251
    import comfy.ops  # noqa: TID251

    return comfy.ldm.wan.model.WanModel(
        model_type=config.model_type, dim=config.dim, ffn_dim=config.ffn_dim, freq_dim=config.freq_dim,
        text_dim=config.text_dim, num_heads=config.num_heads, num_layers=config.num_layers,
        operations=comfy.ops.disable_weight_init, dtype=torch.float32)


@pytest.mark.comfyui
@pytest.mark.parametrize("per_frame", [False, True])
def test_numerically_equal_to_comfyui_wanmodel(per_frame):
    config = tiny_config()
    ours = tiny_model(seed=7)
    theirs = _comfy_wan_model(config).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x, context = inputs(seed=11), torch.cat([padded_prompt(5, 1)[None], padded_prompt(9, 2)[None]])
    t = torch.tensor([[0.0, 400.0, 999.0], [250.0, 250.0, 600.0]]) if per_frame else torch.tensor([999.0, 1.0])
    with torch.no_grad():
        expected = theirs(x, t, context)
        got = ours(x, t, context)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
