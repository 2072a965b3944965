"""LoRA: fresh adapters change nothing, merging equals running, exports load under ComfyUI's key rules."""

from __future__ import annotations

import torch
from comfyui_framelevel.training.export import check_lora_keys, export_full, export_lora, lora_state_dict
from comfyui_framelevel.training.lora import (
    LoraConfig,
    inject_lora,
    lora_modules,
    merge_lora,
    original_state_dict,
)
from comfyui_framelevel.training.wan import WanDiT, random_init, tiny_config
from safetensors.torch import load_file


def model_and_inputs(seed=0):
    model = random_init(WanDiT(tiny_config()), seed).eval()
    g = torch.Generator().manual_seed(1)
    return model, (torch.randn(1, 16, 2, 4, 4, generator=g), torch.tensor([400.0]), torch.randn(1, 6, 32, generator=g))


def randomise_adapters(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in lora_modules(model).values():
            module.lora_B.weight.copy_(torch.randn(module.lora_B.weight.shape, generator=g) * 0.1)


def test_fresh_lora_is_a_no_op_and_only_adapters_train():
    model, args = model_and_inputs()
    before = model(*args)
    paths = inject_lora(model, LoraConfig(rank=4, alpha=8))
    assert len(paths) == 2 * 10 and "blocks.1.cross_attn.o" in paths
    torch.testing.assert_close(model(*args), before, atol=0, rtol=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert "blocks.0.self_attn.q.weight" in model.state_dict()  # base names unchanged


def test_merging_equals_running_and_original_state_dict_matches():
    model, args = model_and_inputs()
    inject_lora(model, LoraConfig(rank=4, alpha=2, target_modules=("self_attn.q", "ffn.2")))
    randomise_adapters(model)
    running = model(*args)
    merged_state = original_state_dict(model)
    merge_lora(model)
    torch.testing.assert_close(model(*args), running, atol=1e-5, rtol=0)
    fresh = WanDiT(tiny_config()).eval()
    fresh.load_state_dict(merged_state)
    torch.testing.assert_close(fresh(*args), running, atol=1e-5, rtol=0)


def test_lora_exports_in_both_comfy_styles_match_every_key(tmp_path):
    model, _ = model_and_inputs()
    inject_lora(model, LoraConfig(rank=4, alpha=8))
    base_keys = original_state_dict(model).keys()
    diffusers = lora_state_dict(model, "diffusers")
    kohya = lora_state_dict(model, "kohya")
    assert "diffusion_model.blocks.0.self_attn.q.lora_A.weight" in diffusers
    assert diffusers["diffusion_model.blocks.0.self_attn.q.lora_B.weight"].shape == (64, 4)
    assert float(diffusers["diffusion_model.blocks.0.self_attn.q.alpha"]) == 8.0
    assert "lora_unet_blocks_1_ffn_2.lora_down.weight" in kohya and "lora_unet_blocks_1_ffn_2.alpha" in kohya
    assert check_lora_keys(diffusers, base_keys) == [] and check_lora_keys(kohya, base_keys) == []
    assert check_lora_keys({"blocks.0.self_attn.q.lora_A.weight": 0}, base_keys)  # bare keys are not loaded
    path = export_lora(model, tmp_path / "lora.safetensors", "kohya")
    assert set(load_file(str(path))) == set(kohya)


def test_full_export_has_original_keys_and_reloads(tmp_path):
    model, args = model_and_inputs()
    inject_lora(model, LoraConfig(rank=2, alpha=2))
    randomise_adapters(model)
    expected = model(*args)
    state = load_file(str(export_full(model, tmp_path / "model.safetensors", dtype="fp32")))
    assert set(state) == set(WanDiT(tiny_config()).state_dict())
    reloaded = WanDiT.from_state_dict(state, tiny_config()).eval()
    torch.testing.assert_close(reloaded(*args), expected, atol=1e-5, rtol=0)
