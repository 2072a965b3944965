"""A tiny Wan text encoder (UMT5) made of ComfyUI's own classes, for tests and CPU experiments.

Random seeded weights and a sentencepiece vocabulary trained here from a few sentences, so nothing is
downloaded. The encoder is ComfyUI's `comfy.text_encoders.wan` model and tokenizer inside a
`comfy.sd.CLIP`, set up as the Wan branch of `comfy.sd.load_text_encoder_state_dicts` sets it up, with
ComfyUI's umt5-xxl config narrowed by `model_options` (`umt5xxl_model_config`). Its output has Wan's
layout: [1, 512, width] with zero rows after the prompt. The default width, 32, is the `text_dim` of
the tiny Wan DiT in `comfy_support`, so the two make a complete tiny Wan text-to-video stack.

- `tiny_wan_clip(spec)`: the CLIP object.
- `write_text_encoder(path, spec)`: the same encoder as a text-encoder `.safetensors` in the
  Comfy-Org layout (`encoder.block.N....`, `shared.weight`, the vocabulary as `spiece_model`) for
  `models/text_encoders`; its metadata holds the small config.
- `install_in_clip_loader()` / `tiny_files_load_in_clip_loader()`: ComfyUI picks the text-encoder kind
  from weight shapes (a 4096-wide 24-block T5 is "umt5-xxl") and builds Wan's from its fixed config
  file, so a stock `CLIPLoader` cannot load a tiny file by itself. Installed in a ComfyUI process (a
  test, or a test-only custom node for a server run), `CLIPLoader` with type wan loads a file written
  here as this encoder; every other file loads as before.

Needs `COMFYUI_PATH` (through `comfy_support.import_comfy`) and `sentencepiece` (one of ComfyUI's
requirements).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from comfy_support import import_comfy

MODEL_NAME = "umt5xxl"               # ComfyUI's name for the Wan text encoder inside its CLIP
CONFIG_METADATA_KEY = "framelevel_tiny_umt5"

SENTENCES = (
    "a red fox runs through the snowy forest at dawn",
    "the camera pans slowly over a quiet harbour at night",
    "a woman opens the door and walks into the bright kitchen",
    "two children fly a kite on a windy beach",
    "rain falls on the city street while cars pass by",
    "an old man reads a letter by the window",
)


@dataclass(frozen=True)
class TinyUMT5:
    """Sizes of the tiny encoder (ComfyUI's umt5-xxl: width 4096, 24 layers, 64 heads of 64, ff 10240)."""

    width: int = 32
    layers: int = 2
    heads: int = 2
    head_dim: int = 8
    ff: int = 64
    seed: int = 0

    def config_overrides(self, vocab_size: int) -> dict:
        return {"d_model": self.width, "num_layers": self.layers, "num_heads": self.heads,
                "d_kv": self.head_dim, "d_ff": self.ff, "vocab_size": vocab_size}


def train_vocabulary(sentences=SENTENCES, vocab_size: int = 64) -> bytes:
    """A sentencepiece unigram model (serialized proto) trained in memory with T5's special ids:
    pad 0, end 1, unknown 2, no start token."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, num_threads=1, minloglevel=2,
        normalization_rule_name="identity")
    return model.getvalue()


def _umt5_config(overrides: dict) -> dict:
    """ComfyUI's umt5-xxl config file with `overrides`: what its Wan text encoder will be built from."""
    import_comfy()
    import comfy.text_encoders.wan

    path = Path(comfy.text_encoders.wan.__file__).with_name("umt5_config_xxl.json")
    return {**json.loads(path.read_text()), **overrides}


def tiny_umt5_state_dict(spec: TinyUMT5 = TinyUMT5()) -> dict[str, torch.Tensor]:
    """Seeded weights in the text-encoder file layout, plus the vocabulary as `spiece_model`."""
    import sentencepiece

    import_comfy()
    import comfy.ops
    import comfy.text_encoders.t5

    vocabulary = train_vocabulary()
    vocab_size = sentencepiece.SentencePieceProcessor(model_proto=vocabulary).get_piece_size()
    config = _umt5_config(spec.config_overrides(vocab_size))
    shapes = comfy.text_encoders.t5.T5(config, torch.float32, "meta", comfy.ops.manual_cast).state_dict()
    generator = torch.Generator().manual_seed(spec.seed)
    state = {}
    for name, meta in sorted(shapes.items()):
        if "layer_norm" in name:
            state[name] = torch.ones(meta.shape)
        elif name == "shared.weight":
            state[name] = torch.randn(meta.shape, generator=generator)
        else:
            state[name] = torch.randn(meta.shape, generator=generator) / meta.shape[-1] ** 0.5
    state["spiece_model"] = torch.frombuffer(bytearray(vocabulary), dtype=torch.uint8)
    return state


def load_tiny_text_encoder(state: dict, spec: TinyUMT5, model_options: dict | None = None):
    """A `comfy.sd.CLIP` of type wan holding `state` (weights + `spiece_model`), built from ComfyUI's
    Wan text-encoder classes with the tiny config."""
    import_comfy()
    import comfy.sd
    import comfy.text_encoders.wan
    import comfy.utils

    vocab_size = int(state["shared.weight"].shape[0])
    options = {**(model_options or {}), f"{MODEL_NAME}_model_config": spec.config_overrides(vocab_size)}

    class Target:
        params: dict = {}
        clip = comfy.text_encoders.wan.te()
        tokenizer = comfy.text_encoders.wan.WanT5Tokenizer

    clip = comfy.sd.CLIP(Target(), parameters=comfy.utils.calculate_parameters(state),
                         tokenizer_data={"spiece_model": state["spiece_model"]}, model_options=options)
    missing, _ = clip.load_sd(state)
    if missing:
        raise RuntimeError(f"tiny UMT5: weights missing from the state dict: {missing}")
    return clip


def tiny_wan_clip(spec: TinyUMT5 = TinyUMT5()):
    """A ComfyUI CLIP (type wan) holding the tiny encoder with seeded weights."""
    return load_tiny_text_encoder(tiny_umt5_state_dict(spec), spec)


def write_text_encoder(path, spec: TinyUMT5 = TinyUMT5()) -> Path:
    """Write the tiny encoder as a text-encoder .safetensors; the metadata names its sizes."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in tiny_umt5_state_dict(spec).items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={CONFIG_METADATA_KEY: json.dumps(asdict(spec))})
    return path


def spec_of_file(path) -> TinyUMT5 | None:
    """The sizes of a file written by `write_text_encoder`; None for any other file."""
    from safetensors import safe_open

    if not str(path).endswith(".safetensors"):
        return None
    with safe_open(str(path), framework="pt") as handle:
        sizes = (handle.metadata() or {}).get(CONFIG_METADATA_KEY)
    return None if sizes is None else TinyUMT5(**json.loads(sizes))


def install_in_clip_loader():
    """Make `comfy.sd.load_clip` (what `CLIPLoader` calls) load a single tiny file of type wan as the
    tiny encoder; other files load as before. Returns the function that undoes it."""
    import_comfy()
    import comfy.sd
    import comfy.utils

    original = comfy.sd.load_clip

    def load_clip(ckpt_paths, embedding_directory=None, clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                  model_options={}):  # noqa: B006  (ComfyUI's own signature)
        spec = spec_of_file(ckpt_paths[0]) if len(ckpt_paths) == 1 else None
        if spec is None:
            return original(ckpt_paths, embedding_directory=embedding_directory, clip_type=clip_type,
                            model_options=model_options)
        if clip_type != comfy.sd.CLIPType.WAN:
            raise ValueError(f"{ckpt_paths[0]} is a tiny Wan text encoder: load it with type wan, not {clip_type}")
        state = comfy.utils.load_torch_file(ckpt_paths[0], safe_load=True)
        return load_tiny_text_encoder(state, spec, model_options)

    comfy.sd.load_clip = load_clip

    def undo():
        comfy.sd.load_clip = original

    return undo


@contextlib.contextmanager
def tiny_files_load_in_clip_loader():
    undo = install_in_clip_loader()
    try:
        yield
    finally:
        undo()
