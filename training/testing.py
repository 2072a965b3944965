"""Tiny stand-ins for tests, smoke runs and benchmarks: no weights, no downloads.

- `WordHashTextEncoder`: one deterministic random row per word (a UMT5 stand-in, counts its inputs).
- `PatchMeanVAE`: a fixed random linear map of 8x8 patches, grouping frames 1 + 4k like Wan's VAE.
- `tiny_umt5_encoder`: a real transformers UMT5EncoderModel built from a small config, with a
  word-level tokenizer built in memory.
- `write_latent_dataset`: a folder of random latents with frame-level caption files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..nodes.core import frames as fm  # noqa: TID252 - package-relative
from ..nodes.core.files import save_safetensors_atomic, write_json_atomic
from .data.encoders import UMT5TextEncoder


class WordHashTextEncoder:
    def __init__(self, dim: int = 32):
        self.dim, self.seen = dim, []

    def encode(self, texts):
        self.seen += list(texts)
        out = []
        for text in texts:
            rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(
                int(hashlib.sha1(w.encode()).hexdigest()[:8], 16))) for w in text.split()]
            out.append(torch.stack(rows))
        return out


class PatchMeanVAE:
    """[B, 3, F, H, W] -> [B, 16, (F-1)//4+1, H/8, W/8]; frame 0 alone, then groups of 4 averaged."""

    def __init__(self, seed: int = 0):
        self.proj = torch.randn(16, 3 * 64, generator=torch.Generator().manual_seed(seed)) / 8

    def encode(self, pixels):
        first, rest = pixels[:, :, :1], pixels[:, :, 1:]
        groups = [first] + ([rest.unflatten(2, (-1, 4)).mean(3)] if rest.shape[2] else [])
        video = torch.cat(groups, dim=2)  # [B, 3, F', H, W]
        b, c, f, h, w = video.shape
        patches = video.reshape(b, c, f, h // 8, 8, w // 8, 8).permute(0, 2, 3, 5, 1, 4, 6)
        latent = patches.reshape(b, f, h // 8, w // 8, c * 64) @ self.proj.T
        return latent.permute(0, 4, 1, 2, 3)


def tiny_umt5_encoder(vocabulary: list[str], d_model: int = 32, max_length: int = 16) -> UMT5TextEncoder:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(sorted(set(vocabulary)))}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    config = UMT5Config(vocab_size=len(vocab), d_model=d_model, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8, dropout_rate=0.0)
    torch.manual_seed(0)
    return UMT5TextEncoder(tokenizer, UMT5EncoderModel(config), max_length=max_length)


def write_latent_dataset(folder, clips: list[dict], frames: int = 3, height: int = 4, width: int = 4,
                         seed: int = 0) -> Path:
    """clips: [{"name": ..., "captions": {"1": ...}}]; writes <name>.latent.safetensors + <name>.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for clip in clips:
        latent = torch.randn(16, clip.get("frames", frames), height, width, generator=generator)
        save_safetensors_atomic({"latent": latent}, folder / f"{clip['name']}.latent.safetensors")
        write_json_atomic(folder / f"{clip['name']}.json", clip["captions"])
    return folder


def tiny_run_config(tmp, **sections) -> dict:
    """A raw config dict (TOML-shaped) for a tiny random Wan on CPU."""
    raw = {
        "model": {"size": "tiny", "gradient_checkpointing": False, "init_seed": 0},
        "data": {"dataset_dir": str(Path(tmp) / "data"), "cache_dir": str(Path(tmp) / "cache"), "text_len": 16,
                 "resolutions": [[32, 32]], "frame_buckets": [9]},
        "objective": {"df_ratio": 0.5, "df_step": 0.2},
        "optim": {"learning_rate": 1e-3, "weight_decay": 0.0},
        "train": {"output_dir": str(Path(tmp) / "out"), "max_steps": 4, "global_batch_size": 2,
                  "mixed_precision": "no", "checkpoint_every": 2, "tensorboard": False, "progress_bar": False},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def to_toml(raw: dict) -> str:
    """Write a TOML-shaped dict of scalar/list values (enough for configs)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines = []
    for section, table in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value(v)}" for key, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def prepare_tiny_run(tmp, clips: int = 4, latent_frames: int = 3, latent_size: int = 4, **sections) -> dict:
    """Dataset + cache + raw config for a tiny CPU run under `tmp`; returns the raw config.

    Clips are latents of [16, latent_frames, latent_size, latent_size] (pixel frames 4k+1, pixels x8)."""
    from .config import config_from_dict
    from .data.cache import build_cache

    write_latent_dataset(Path(tmp) / "data", [
        {"name": f"clip{i}", "captions": {"1": f"scene {i} opens", str(latent_frames): f"scene {i} closes quietly"}}
        for i in range(clips)], frames=latent_frames, height=latent_size, width=latent_size)
    size = {"resolutions": [[8 * latent_size, 8 * latent_size]], "frame_buckets": [fm.pixel_count(latent_frames)]}
    raw = tiny_run_config(tmp, **{**sections, "data": {**size, **sections.get("data", {})}})
    build_cache(config_from_dict(raw).data, WordHashTextEncoder(32))
    return raw
