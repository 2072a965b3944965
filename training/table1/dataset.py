"""Write what the trainer's CLI reads: a dataset folder in the documented layout (training/README.md
section 1), a tiny UMT5 folder for `cli.py cache --text-encoder`, initial DiT weights and the TOML.

Two datasets share the same latents and differ only in their captions:
- "frame": one caption per latent frame (the scene showing in it), the paper's JSON format;
- "video": one video-level caption per clip naming its scenes in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...nodes.core.files import save_safetensors_atomic, write_text_atomic  # noqa: TID252 - package-relative
from ...nodes.core.frames import pixel_count  # noqa: TID252
from ...nodes.core.prompts import paper_json  # noqa: TID252
from ..testing import tiny_umt5_encoder, to_toml
from ..wan import WanConfig, WanDiT, random_init
from .domain import SCENES, ClipSpec, render, video_caption, vocabulary

KINDS = ("frame", "video")
TEXT_DIM = 4096  # ComfyUI's Wan detection fixes the text width at 4096 (and heads at dim // 128)


def write_caption_file(path: Path, frame_captions: list[str]) -> Path:
    """THE writer of caption files: one caption per latent frame (0-based list) -> the story format the
    whole pack reads (the paper's JSON object, 1-based latent-frame keys where a caption starts)."""
    if not frame_captions:
        raise ValueError("need at least one latent frame caption")
    return write_text_atomic(path, paper_json(frame_captions))


def clip_captions(spec: ClipSpec, kind: str) -> list[str]:
    """Per-latent-frame captions of a clip: its scenes' captions ("frame") or its one video caption."""
    if kind == "frame":
        return [SCENES[s].caption for s in spec.caption_scenes()]
    if kind == "video":
        return [video_caption(spec.scenes)] * spec.frames
    raise ValueError(f"caption kind {kind!r} is unknown; use one of {KINDS}")


def write_dataset(folder: Path, clips: list[ClipSpec], kind: str, size: int = 8, seed: int = 0) -> Path:
    """<name>.latent.safetensors ("latent" [16, F, size, size], metadata pixel_frames) + <name>.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(clips):
        name = f"clip{i:05d}"
        latent = render(spec, size, seed=seed * 1_000_003 + i)
        save_safetensors_atomic({"latent": latent}, folder / f"{name}.latent.safetensors",
                                {"pixel_frames": str(pixel_count(spec.frames))})
        write_caption_file(folder / f"{name}.json", clip_captions(spec, kind))
    return folder


def distinct_captions(clips: list[ClipSpec], kind: str) -> set[str]:
    return {text for spec in clips for text in clip_captions(spec, kind)}


def save_text_encoder(folder: Path, max_length: int, width: int = TEXT_DIM) -> Path:
    """A tiny random UMT5 (a real transformers UMT5EncoderModel, width 4096 = Wan's text width) with
    a word-level tokenizer over the domain's words, saved where `cli.py cache --text-encoder` reads it."""
    encoder = tiny_umt5_encoder(vocabulary(), d_model=width, max_length=max_length)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.tokenizer.save_pretrained(str(folder))
    encoder.encoder.save_pretrained(str(folder))
    return folder


@dataclass(frozen=True)
class ModelShape:
    """The tiny Wan DiT. ComfyUI's loader reads heads as dim // 128, so dim is a multiple of 128."""

    dim: int = 128
    ffn_dim: int = 256
    num_layers: int = 3

    def wan_config(self) -> WanConfig:
        return WanConfig(dim=self.dim, ffn_dim=self.ffn_dim, num_layers=self.num_layers,
                         num_heads=self.dim // 128, text_dim=TEXT_DIM)


def write_initial_weights(path: Path, shape: ModelShape, seed: int = 0) -> Path:
    """Original-named random weights: the `[model] weights` both runs start from."""
    from ..export import export_full

    torch.manual_seed(seed)
    model = random_init(WanDiT(shape.wan_config()), seed)
    return export_full(model, path, "fp32")


@dataclass(frozen=True)
class TrainSettings:
    """What the two runs share (same budget), and what differs: DF noise for frame-level captions,
    synchronous noise for the video-level baseline."""

    max_steps: int = 1500
    batch: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    shift: float = 2.0
    df_ratio: float = 0.7
    df_step: float = 0.15
    clean_prefix_ratio: float = 0.3
    max_clean_frames: int = 4
    seed: int = 0


def training_toml(kind: str, work: Path, frames: int, size: int, text_len: int, settings: TrainSettings) -> dict:
    """The TOML (as a dict) of one run; `kind` "frame" = DF + frame captions, "video" = synchronous."""
    df = kind == "frame"
    return {
        "model": {"weights": str(work / "init.safetensors"), "gradient_checkpointing": False},
        "data": {"dataset_dir": str(work / f"data_{kind}"), "cache_dir": str(work / f"cache_{kind}"),
                 "resolutions": [[8 * size, 8 * size]], "frame_buckets": [pixel_count(frames)],
                 "text_len": text_len},
        "objective": {"shift": settings.shift, "df_ratio": settings.df_ratio if df else 0.0,
                      "df_step": settings.df_step,
                      "clean_prefix_ratio": settings.clean_prefix_ratio if df else 0.0,
                      "max_clean_frames": settings.max_clean_frames},
        "optim": {"learning_rate": settings.learning_rate, "warmup_steps": settings.warmup_steps,
                  "weight_decay": 0.0, "max_grad_norm": 1.0},
        "train": {"output_dir": str(work / f"run_{kind}"), "max_steps": settings.max_steps,
                  "global_batch_size": settings.batch, "mixed_precision": "no", "seed": settings.seed,
                  "checkpoint_every": settings.max_steps, "keep_checkpoints": 1, "log_every": 100,
                  "tensorboard": False, "progress_bar": False, "export_dtype": "fp32"},
    }


def write_config(path: Path, raw: dict) -> Path:
    return write_text_atomic(path, to_toml(raw))
