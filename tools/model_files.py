"""The model files the pack's workflows load: where each comes from and which folder it goes in.

One table (MODEL_FILES) serves three uses: build_ui.py writes it into every loader node as
`properties.models` (the frontend offers these downloads when a file is missing), run_workflow.py
names missing files with their folder and, with --download, fetches them from Hugging Face
(hub_download.py). The URLs are the Comfy-Org repackaged files that ComfyUI's own workflow templates
use. Standard library only.

`sha256` pins each file's content: the SHA-256 Hugging Face lists for it ("SHA256:" on the file's
page, the Git LFS oid), copied from the Comfy-Org repository's own file page or commit. A download
whose content differs is deleted and refused, whatever the Hub's headers say. A file left at None
could not be checked against a Comfy-Org page when it was added; for it the download needs the
SHA-256 the Hub announces (X-Linked-Etag) and is refused without one. Pin it when you can.
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
    sha256: str | None = None  # pinned SHA-256 of the content (None: not verified, see above)
    size: str | None = None    # download size as the Hub's file page shows it (None: not verified)

    @property
    def size_text(self) -> str:
        return self.size or "size unknown"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        return f"{HUB}/{self.repo}/resolve/main/{self.path}"

    def metadata(self) -> dict:
        """The `properties.models` entry the ComfyUI frontend reads."""
        return {"name": self.name, "url": self.url, "directory": self.directory}


def _files(repo: str, directory: str, hashes: dict[str, str | None]) -> dict[str, ModelFile]:
    return {name: ModelFile(repo, f"split_files/{directory}/{name}", directory, sha, SIZES.get(name))
            for name, sha in hashes.items()}


# Download sizes, read from the Comfy-Org pages on huggingface.co (a file's blob page, "Size of remote
# file", or its folder's listing): split_files/diffusion_models/<file> blob pages for the 1.3B and
# i2v 480p models and wan2.2_i2v_low_noise, the diffusion_models listing (main) for flf2v, the
# text_encoders listing and commit dfcea77 (LFS sizes 6735906897 and 11366399385 bytes) for both
# text encoders, the vae listing for wan_2.1_vae, Comfy-Org/Wan-2.2 (the Wan 2.2 repository under its
# newer name) for the TI2V 5B model. A file missing here was not found on a Comfy-Org page: the
# missing-files list says "size unknown" rather than a guess.
SIZES = {
    "wan2.1_t2v_1.3B_fp16.safetensors": "2.84 GB",
    "wan2.1_i2v_480p_14B_fp16.safetensors": "32.8 GB",
    "wan2.1_flf2v_720p_14B_fp16.safetensors": "32.8 GB",
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": "6.74 GB",
    "umt5_xxl_fp16.safetensors": "11.4 GB",
    "wan_2.1_vae.safetensors": "254 MB",
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": "14.3 GB",
    "wan2.2_ti2v_5B_fp16.safetensors": "10 GB",
}


# Sources of the pins (huggingface.co, read from the pages' "SHA256:" / LFS "oid sha256:" lines):
#   Comfy-Org/Wan_2.1_ComfyUI_repackaged/blob/main/split_files/diffusion_models/<file> for the two Wan 2.1
#   diffusion models; commit dfcea77 ("Wan 2.1 t2v 1.3B", the only commit of split_files/text_encoders)
#   for both text encoders; Comfy-Org/Wan_2.2_ComfyUI_Repackaged/blob/main/split_files/diffusion_models/
#   <file> for the i2v pair; Comfy-Org/Wan-2.2/blob/main/split_files/... (the same repository under its
#   newer name: same commit 5ca2dfe) for the TI2V 5B model and the Wan 2.2 VAE.
MODEL_FILES: dict[str, ModelFile] = {
    **_files(WAN21, "diffusion_models", {
        "wan2.1_t2v_1.3B_fp16.safetensors": "be531024cd9018cb5b48c40cfbb6a6191645b1c792eb8bf4f8c1c6e10f924dc5",
        "wan2.1_t2v_14B_fp8_scaled.safetensors": None,
        "wan2.1_i2v_480p_14B_fp16.safetensors": "27988f6b510eb8d5fdd7485671b54897f8683f2bba7a772c5671be21d3491253",
        "wan2.1_flf2v_720p_14B_fp16.safetensors": None}),
    **_files(WAN21, "text_encoders", {
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors": "c3355d30191f1f066b26d93fba017ae9809dce6c627dda5f6a66eaa651204f68",
        "umt5_xxl_fp16.safetensors": "7b8850f1961e1cf8a77cca4c964a358d303f490833c6c087d0cff4b2f99db2af"}),
    **_files(WAN21, "vae", {"wan_2.1_vae.safetensors": None}),
    **_files(WAN21, "clip_vision", {"clip_vision_h.safetensors": None}),
    **_files(WAN22, "diffusion_models", {
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": None,
        "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": None,
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors":
            "6122e79d55e0f235698d11d657f3b196c5273c830da00b2b013c5a048d5e6a42",
        "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors":
            "5471a457b6ac404202a5fbe6c11595a3d5641fc766b00f38763f72303fffc21e",
        "wan2.2_ti2v_5B_fp16.safetensors": "456f901338bd9eadbded3828b819109a9b68e8a525ca5cf8d0049a69fcfeca1e"}),
    **_files(WAN22, "vae", {"wan2.2_vae.safetensors": "e40321bd36b9709991dae2530eb4ac303dd168276980d3e9bc4b6e2b75fed156"}),
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
