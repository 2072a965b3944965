"""One pass that writes normalised latents per clip and one text embedding per distinct caption.

    cache/
      index.json                 clips: latent file, shape, caption keys, per-latent prompt index
      latents/<name>.safetensors "latent" [16, F, h, w] float32, normalised as Wan expects
      text/<sha1>.safetensors    "context" [L, text_dim], the caption's real rows (trimmed)

Re-running only encodes what is missing; a caption shared by many clips is encoded once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...nodes.core.files import save_safetensors_atomic, write_json_atomic  # noqa: TID252 - package-relative
from ...nodes.core.frames import latent_count, pixel_count  # noqa: TID252 - package-relative
from .captions import distinct_frame_prompts, load_captions
from .encoders import TextEncoder, VideoEncoder, normalize_wan21
from .layout import ClipSource, find_clips, pick_frame_count, pick_resolution, prepare_pixels, read_pixels


@dataclass(frozen=True)
class DataConfig:
    """[data] section of the training TOML."""

    dataset_dir: str = ""
    cache_dir: str = ""
    resolutions: tuple[tuple[int, int], ...] = ((480, 832),)  # pixel (height, width) buckets, multiples of 16
    frame_buckets: tuple[int, ...] = (81,)  # pixel frame counts, each 4k+1
    text_len: int = 512  # Wan pads every prompt to 512 rows
    validation_captions: tuple[str, ...] = ()  # caption JSON files used for validation samples


@dataclass
class CacheReport:
    clips: int = 0
    latents_encoded: int = 0
    captions_encoded: int = 0
    captions_reused: int = 0
    skipped: list[str] = field(default_factory=list)


def caption_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_tensor(path: Path, key: str) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path))[key]


def _encode_latent(clip: ClipSource, config: DataConfig, vae: VideoEncoder | None):
    """(latent [16, F, h, w], pixel frames) or None when the clip fits no frame bucket."""
    if clip.is_latent:
        from safetensors import safe_open

        with safe_open(str(clip.media), "pt") as handle:
            latent = handle.get_tensor("latent").float()
            pixels = int((handle.metadata() or {}).get("pixel_frames", pixel_count(latent.shape[1])))
        return latent, pixels
    if vae is None:
        raise ValueError(f"{clip.media} is a pixel clip but no VAE was given; pass --vae or provide "
                         f"{clip.name}.latent.safetensors")
    pixels = read_pixels(clip.media)
    frames = pick_frame_count(pixels.shape[0], config.frame_buckets)
    if frames is None:
        return None
    size = pick_resolution(pixels.shape[1], pixels.shape[2], config.resolutions)
    latent = normalize_wan21(vae.encode(prepare_pixels(pixels, frames, size)))[0]
    if latent.shape[1] != latent_count(frames):
        raise RuntimeError(f"VAE returned {latent.shape[1]} latent frames for {frames} pixel frames")
    return latent.float(), frames


def _cache_clip(clip: ClipSource, config: DataConfig, vae, cache: Path, report: CacheReport):
    target = cache / "latents" / f"{clip.name}.safetensors"
    if target.exists():
        latent = load_tensor(target, "latent")
        from safetensors import safe_open

        with safe_open(str(target), "pt") as handle:
            pixels = int(handle.metadata()["pixel_frames"])
    else:
        encoded = _encode_latent(clip, config, vae)
        if encoded is None:
            report.skipped.append(f"{clip.name}: shorter than every frame bucket {config.frame_buckets}")
            return None
        latent, pixels = encoded
        save_safetensors_atomic({"latent": latent}, target, {"pixel_frames": str(pixels)})
        report.latents_encoded += 1
    texts, routing = distinct_frame_prompts(load_captions(clip.captions), latent.shape[1], str(clip.captions))
    record = {"name": clip.name, "latent": f"latents/{clip.name}.safetensors",
              "frames": latent.shape[1], "height": latent.shape[2], "width": latent.shape[3],
              "pixel_frames": pixels, "captions": [caption_key(t) for t in texts], "frame_prompt": routing}
    return record, texts


def encode_captions(texts: list[str], encoder: TextEncoder, cache: Path, report: CacheReport,
                    batch_size: int = 8) -> None:
    """Encode every distinct caption whose embedding is not cached yet, each exactly once."""
    distinct = list(dict.fromkeys(texts))
    missing = [t for t in distinct if not (cache / "text" / f"{caption_key(t)}.safetensors").exists()]
    report.captions_reused += len(distinct) - len(missing)
    for start in range(0, len(missing), batch_size):
        chunk = missing[start:start + batch_size]
        for text, context in zip(chunk, encoder.encode(chunk), strict=True):
            save_safetensors_atomic({"context": context.float()}, cache / "text" / f"{caption_key(text)}.safetensors",
                         {"caption": text})
        report.captions_encoded += len(chunk)


def _validation_records(config: DataConfig) -> tuple[list[dict], list[str]]:
    records, texts = [], []
    for path in config.validation_captions:
        frames = latent_count(max(config.frame_buckets))
        distinct, routing = distinct_frame_prompts(load_captions(Path(path)), frames, str(path))
        records.append({"name": Path(path).stem, "frames": frames, "captions": [caption_key(t) for t in distinct],
                        "frame_prompt": routing})
        texts += distinct
    return records, texts


def build_cache(config: DataConfig, text_encoder: TextEncoder, vae: VideoEncoder | None = None,
                progress: bool = False) -> CacheReport:
    cache = Path(config.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    report, records, texts = CacheReport(), [], []
    clips = find_clips(Path(config.dataset_dir))
    if progress:
        from tqdm.auto import tqdm

        clips = tqdm(clips, desc="latents")
    for clip in clips:
        result = _cache_clip(clip, config, vae, cache, report)
        if result is not None:
            records.append(result[0])
            texts += result[1]
    validation, validation_texts = _validation_records(config)
    encode_captions(texts + validation_texts, text_encoder, cache, report)
    report.clips = len(records)
    write_json_atomic(cache / "index.json", {"version": 1, "items": records, "validation": validation}, indent=1)
    return report
