"""Trainer exports loaded by real ComfyUI: every LoRA key matched, full weights through UNETLoader's path."""

import logging

import comfy_support as cs
import pytest
import torch

pytestmark = pytest.mark.comfyui


def trained_lora_model(seed=0, **overrides):
    from comfyui_framelevel.training.lora import LoraConfig, inject_lora, lora_modules
    model = cs.tiny_dit(seed=seed, **overrides)
    inject_lora(model, LoraConfig(rank=4, alpha=8))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():                    # stands in for training: non-zero adapters
        for module in lora_modules(model).values():
            for adapter in (module.lora_A, module.lora_B):
                adapter.weight.copy_(torch.randn(adapter.weight.shape, generator=generator) * 0.2)
    return model.eval()


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_exported_lora_loads_with_every_key_and_matches_the_trainer(fmt, tmp_path, caplog):
    comfy = cs.import_comfy()
    from comfyui_framelevel.training.export import export_lora
    from safetensors.torch import load_file
    trained = trained_lora_model()
    base = cs.tiny_dit(seed=0)                                  # the frozen weights the LoRA was trained on
    model = cs.comfy_wan_from_dit(base)
    lora = load_file(str(export_lora(trained, tmp_path / "lora.safetensors", fmt, dtype="fp32")))
    key_map = comfy.lora.model_lora_keys_unet(model.model)
    patches = comfy.lora.load_lora(lora, key_map, log_missing=True)
    with caplog.at_level(logging.WARNING):
        patched = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)[0]
    assert "lora key not loaded" not in caplog.text
    assert len(patches) == len([k for k in lora if k.endswith((".lora_A.weight", ".lora_down.weight"))])
    x, t = torch.randn(1, 16, 3, 4, 4), torch.tensor([600.0])
    context = cs.padded_context(None, 7, 32).unsqueeze(0)
    comfy.model_management.load_models_gpu([patched])
    with torch.no_grad():
        theirs = patched.model.diffusion_model(x, t, context)
        ours = trained(x, t, context)
        plain = base(x, t, context)
    assert (theirs - ours).abs().max() <= 1e-4 * ours.abs().max()
    assert (ours - plain).abs().max() > 1e-2                  # the LoRA really changes the output


def test_exported_full_weights_load_through_unet_loader(tmp_path):
    comfy = cs.import_comfy()
    from comfyui_framelevel.training.export import export_full
    # ComfyUI's detection needs dim = 128 x heads and text_dim 4096: the smallest such Wan.
    trained = trained_lora_model(seed=2, dim=128, num_heads=1, num_layers=1, ffn_dim=256, text_dim=4096)
    path = export_full(trained, tmp_path / "wan_full.safetensors", dtype="fp32")
    model = comfy.sd.load_diffusion_model(str(path), model_options={"dtype": torch.float32})
    comfy.model_management.load_models_gpu([model])
    x, t = torch.randn(1, 16, 3, 4, 4), torch.tensor([[800.0, 500.0, 100.0]])
    context = torch.randn(1, 10, 4096)
    with torch.no_grad():
        theirs = model.model.diffusion_model(x, t, context)
        ours = trained(x, t, context)
    assert (theirs - ours).abs().max() <= 1e-4 * ours.abs().max()
