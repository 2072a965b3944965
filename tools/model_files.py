"""The model files the pack's workflows load: where each comes from and which folder it goes in.

One table (MODEL_FILES) serves three uses: build_ui.py writes it into every loader node as
`properties.models` (the frontend offers these downloads when a file is missing), run_workflow.py
names missing files with their folder and, with --download, fetches them from Hugging Face
(hub_download.py). The URLs are the Comfy-Org repackaged files that ComfyUI's own workflow templates
use. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

HUB = "https://huggingface.co"
WAN21 = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
WAN22 = "Comfy-Org/Wan_2.2_ComfyUI_Repackaged"

# loader class -> (input holding the file name, folders under the ComfyUI checkout, what it is)
MODEL_INPUTS = {
    "UNETLoader": ("unet_name", ("models/diffusion_models", "models/unet"), "Wan diffusion model"),
    "CLIPLoader": ("clip_name", ("models/text_encoders", "models/clip"), "text encoder"),
    "VAELoader": ("vae_name", ("models/vae",), "VAE"),
    "LoraLoaderModelOnly": ("lora_name", ("models/loras",), "LoRA"),
    "CLIPVisionLoader": ("clip_name", ("models/clip_vision",), "CLIP vision model"),
    "LoadImage": ("image", ("input",), "input image"),
}
# loaders whose file is a model (LoadImage reads the user's own picture: nothing to download)
MODEL_LOADERS = {cls: spec for cls, spec in MODEL_INPUTS.items() if spec[1][0].startswith("models/")}


@dataclass(frozen=True)
class ModelFile:
    repo: str           # Hugging Face repository
    path: str           # file inside it (its last part is the file name the loader uses)
    directory: str      # folder under ComfyUI/models

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        return f"{HUB}/{self.repo}/resolve/main/{self.path}"

    def metadata(self) -> dict:
        """The `properties.models` entry the ComfyUI frontend reads."""
        return {"name": self.name, "url": self.url, "directory": self.directory}


def _files(repo: str, directory: str, *names: str) -> dict[str, ModelFile]:
    return {name: ModelFile(repo, f"split_files/{directory}/{name}", directory) for name in names}


MODEL_FILES: dict[str, ModelFile] = {
    **_files(WAN21, "diffusion_models", "wan2.1_t2v_1.3B_fp16.safetensors", "wan2.1_t2v_14B_fp8_scaled.safetensors",
             "wan2.1_i2v_480p_14B_fp16.safetensors", "wan2.1_flf2v_720p_14B_fp16.safetensors"),
    **_files(WAN21, "text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_xxl_fp16.safetensors"),
    **_files(WAN21, "vae", "wan_2.1_vae.safetensors"),
    **_files(WAN21, "clip_vision", "clip_vision_h.safetensors"),
    **_files(WAN22, "diffusion_models", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
             "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
             "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "wan2.2_ti2v_5B_fp16.safetensors"),
    **_files(WAN22, "vae", "wan2.2_vae.safetensors"),
}


def loader_file(node: dict) -> tuple[str, str] | None:
    """(loader input name, file name) of an API-format node that loads a model file, else None."""
    spec = MODEL_LOADERS.get(node.get("class_type"))
    if spec is None:
        return None
    name = node.get("inputs", {}).get(spec[0])
    return (spec[0], name) if isinstance(name, str) else None


def model_metadata(node: dict) -> list[dict]:
    """`properties.models` for an API-format loader node; a loader naming a file not in the table is an
    error (add the file to MODEL_FILES with its Comfy-Org URL)."""
    found = loader_file(node)
    if found is None:
        return []
    input_name, file_name = found
    if file_name not in MODEL_FILES:
        raise KeyError(f"{node['class_type']}.{input_name} = {file_name!r} is not in tools/model_files.py MODEL_FILES; "
                       "add it with the repository and path it is downloaded from")
    return [MODEL_FILES[file_name].metadata()]
