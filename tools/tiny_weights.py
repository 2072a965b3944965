"""Tiny random stand-ins for the Wan 2.1 text-to-video model files, made of ComfyUI's own classes.

They let a workflow run end to end in a real ComfyUI with nothing downloaded: the install check
(`tools/run_workflow.py --smoke`) and the tests. The output of such a run is noise; what it shows is
that the pack loads, the graph validates, every node runs and the video is written.

- `write_stand_ins(folder, unet=..., text_encoder=..., vae=...)`: the three files, under the names
  the workflow loads, in `folder/diffusion_models`, `folder/text_encoders` and `folder/vae`.
- Diffusion model: `tiny_wan21_dit_state_dict()`, ComfyUI's own `WanModel` at width 128 (one head of
  128) with seeded weights and the original key names, so the stock `UNETLoader` detects a Wan 2.1
  text-to-video model (its detection fixes num_heads = dim // 128 and text_dim = 4096).
- Text encoder (UMT5): ComfyUI's `comfy.text_encoders.wan` model and tokenizer inside a
  `comfy.sd.CLIP`, with ComfyUI's umt5-xxl config narrowed by `model_options`
  (`umt5xxl_model_config`) and a sentencepiece vocabulary trained here from a few sentences. Its
  output has Wan's layout: [1, 512, width] with zero rows after the prompt. `tiny_wan_clip(spec)` is
  the CLIP object; `write_text_encoder(path, spec)` the same encoder as a text-encoder
  `.safetensors` in the Comfy-Org layout (`encoder.block.N....`, `shared.weight`, the vocabulary as
  `spiece_model`), its small config in the metadata.
- VAE: `tiny_wan_vae_state_dict(wan22)`, ComfyUI's Wan 2.1 / 2.2 VAE at width 8 (same latent channels
  and strides) in the file layout of `wan_2.1_vae` / `wan2.2_vae`.
- `install_in_loaders()`: ComfyUI builds umt5-xxl (5.7B parameters) and the Wan VAEs from fixed
  full-size configs whatever the file holds. Installed in a ComfyUI process (tools/tiny_loader_nodes.py,
  a module in the custom_nodes of a temporary server, never the user's), `CLIPLoader` with type wan
  loads a file written here as the tiny encoder and `VAELoader` builds a narrow Wan VAE at the width
  of its weights; every other file loads as before.

`python tools/tiny_weights.py FOLDER` writes the three files under the names of
workflows/api/story_pmwd_30s.api.json. Needs torch, safetensors and sentencepiece (ComfyUI's
requirements) and ComfyUI's `comfy` package: importable already, or from COMFYUI_PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


def import_comfy(cpu: bool = True):
    """ComfyUI's `comfy` package (from COMFYUI_PATH when it is not importable yet); on the CPU unless
    `cpu=False`. The first call in a process decides: comfy.model_management picks its device when
    imported."""
    path = os.environ.get("COMFYUI_PATH")
    if path and path not in sys.path:
        sys.path.insert(0, path)
    import comfy.cli_args
    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = cpu   # must precede comfy.model_management
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    import comfy.supported_models
    return comfy


# -- diffusion model ---------------------------------------------------------------------------------

# ComfyUI reads a Wan's sizes from its weights but fixes num_heads = dim // 128 and text_dim = 4096.
TINY_DIT = dict(dim=128, num_heads=1, num_layers=2, ffn_dim=256, text_dim=4096, freq_dim=256, in_dim=16, out_dim=16)


def _seeded_weight(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Norm scales 1, biases 0, other weights random with unit gain (fan-in scaled)."""
    if "norm" in name and name.endswith("weight"):
        return torch.ones(shape)
    if name.endswith("bias"):
        return torch.zeros(shape)
    fan_in = shape[1:].numel() if len(shape) > 1 else shape[-1]
    return torch.randn(shape, generator=generator) / fan_in ** 0.5


def tiny_wan21_dit_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights of ComfyUI's Wan 2.1 text-to-video `WanModel` at width 128, with its (the
    original) key names: what `UNETLoader` detects as a Wan 2.1 T2V model."""
    import_comfy()
    import comfy.ldm.wan.model
    import comfy.ops

    model = comfy.ldm.wan.model.WanModel(model_type="t2v", device="meta", dtype=torch.float32,
                                         operations=comfy.ops.manual_cast, **TINY_DIT)
    generator = torch.Generator().manual_seed(seed)
    return {name: _seeded_weight(name, value.shape, generator) for name, value in sorted(model.state_dict().items())}


# -- text encoder --------------------------------------------------------------------------------------

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


# -- VAE -------------------------------------------------------------------------------------------

PUBLISHED_WIDTH = {False: 96, True: 160}   # Wan 2.1 / 2.2 VAE `dim` as ComfyUI builds them
TINY_WIDTH = 8


def _wan_vae_module(wan22: bool):
    import_comfy()
    import comfy.ldm.wan.vae
    import comfy.ldm.wan.vae2_2

    return comfy.ldm.wan.vae2_2 if wan22 else comfy.ldm.wan.vae


def _is_wan22(state_dict) -> bool:
    return "decoder.upsamples.0.upsamples.0.residual.2.weight" in state_dict


def tiny_wan_vae_state_dict(wan22: bool, seed: int = 12) -> dict:
    """Seeded weights of ComfyUI's Wan 2.1 / 2.2 VAE at width 8 (same latent channels and strides)."""
    sizes = {"dim": TINY_WIDTH, "dec_dim": TINY_WIDTH} if wan22 else {"dim": TINY_WIDTH}
    model = _wan_vae_module(wan22).WanVAE(z_dim=48 if wan22 else 16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                          attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0,
                                          **sizes)
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.ones(value.shape) if "gamma" in name else torch.randn(value.shape, generator=generator) * 0.05)
            for name, value in model.state_dict().items()}


@contextlib.contextmanager
def _narrow(module, **sizes):
    """While ComfyUI's VAE is built, its WanVAE class gets the given widths."""
    real = module.WanVAE
    module.WanVAE = lambda **config: real(**{**config, **sizes})
    try:
        yield
    finally:
        module.WanVAE = real


def tiny_aware_vae_class(base):
    """A subclass of ComfyUI's VAE class `base` built at the width of a narrow Wan VAE's weights."""

    class TinyAwareVAE(base):
        """ComfyUI's VAE, built at the width of a narrow Wan VAE's weights; otherwise unchanged."""

        def __init__(self, sd=None, *args, **kwargs):
            sizes = {}
            if sd is not None and "decoder.middle.0.residual.0.gamma" in sd:
                wan22 = _is_wan22(sd)
                width = int(sd["encoder.conv1.weight"].shape[0])
                if width < PUBLISHED_WIDTH[wan22]:
                    sizes = {"dim": width, "dec_dim": int(sd["decoder.conv1.weight"].shape[0]) // 4} if wan22 else {"dim": width}
            if not sizes:
                super().__init__(sd, *args, **kwargs)
                return
            with _narrow(_wan_vae_module(_is_wan22(sd)), **sizes):
                super().__init__(sd, *args, **kwargs)

    TinyAwareVAE.builds_tiny_wan_vaes = True
    return TinyAwareVAE


def install_in_vae_loader():
    """Make `comfy.sd.VAE` build narrow Wan VAE weights at their own width (see the module doc)."""
    import_comfy()
    import comfy.sd

    if not getattr(comfy.sd.VAE, "builds_tiny_wan_vaes", False):
        comfy.sd.VAE = tiny_aware_vae_class(comfy.sd.VAE)


def install_in_loaders() -> None:
    """Both loaders read the tiny files (see the module doc); for a ComfyUI server's process."""
    install_in_clip_loader()
    install_in_vae_loader()


# -- the three files -----------------------------------------------------------------------------------

# the file names workflows/api/story_pmwd_30s.api.json loads
STORY_FILES = {"unet": "wan2.1_t2v_1.3B_fp16.safetensors", "text_encoder": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
               "vae": "wan_2.1_vae.safetensors"}


def write_stand_ins(folder, unet: str = STORY_FILES["unet"], text_encoder: str = STORY_FILES["text_encoder"],
                    vae: str = STORY_FILES["vae"]) -> dict[str, Path]:
    """Write a tiny Wan 2.1 T2V model, text encoder and VAE under the given file names into
    folder/diffusion_models, folder/text_encoders and folder/vae; returns {folder kind: folder}."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folders = {kind: folder / kind for kind in ("diffusion_models", "text_encoders", "vae")}
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    save_file(tiny_wan21_dit_state_dict(), str(folders["diffusion_models"] / unet))
    write_text_encoder(folders["text_encoders"] / text_encoder, TinyUMT5(width=TINY_DIT["text_dim"]))
    save_file(tiny_wan_vae_state_dict(wan22=False), str(folders["vae"] / vae))
    return folders


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write tiny random stand-ins for the Wan 2.1 T2V model files.")
    parser.add_argument("folder", type=Path)
    for kind, name in STORY_FILES.items():
        parser.add_argument(f"--{kind.replace('_', '-')}", default=name, help=f"file name (default {name})")
    args = parser.parse_args(argv)
    folders = write_stand_ins(args.folder, args.unet, args.text_encoder, args.vae)
    print(json.dumps({kind: str(path) for kind, path in folders.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
