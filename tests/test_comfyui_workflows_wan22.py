"""Every shipped Wan 2.2 workflow runs end to end in a real ComfyUI server on tiny weights.

Every model file is tiny and saved under the Comfy-Org name the workflows load. The diffusion
models are state dicts shaped like each variant, so the stock UNETLoader and ComfyUI's own detection
pick the model class they pick for the real files. ComfyUI builds the text encoder and the VAEs from
fixed full-size configs, so a test-only module in the server's custom_nodes
(tools/tiny_loader_nodes.py) lets the stock CLIPLoader and VAELoader build ComfyUI's own classes at
the tiny files' sizes. The graphs run as shipped: frame counts, stories, window layouts and expert
settings; only resolution and steps are cut.
"""

import json
import os
import re
import sys
from pathlib import Path

import comfy_support as cs
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

WEIGHTS = {   # file name the workflows load -> (tiny variant, seed)
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": ("wan22_t2v_a14b", 1),
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": ("wan22_t2v_a14b", 2),
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": ("wan22_i2v_a14b", 3),
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": ("wan22_i2v_a14b", 4),
    "wan2.2_ti2v_5B_fp16.safetensors": ("wan22_ti2v_5b", 5),
}
# (workflow, node with the size, expected pixel frames): steps 3 put one hand-over step in the A14B runs
RUNS = [("story_pmwd_30s_wan22", "12", 481), ("story_5b_ti2v", "7", 241), ("first_last_frame_wan22_i2v", "14", 81)]
LOADS = {   # ComfyUI's model class per load: the A14B experts one after the other, the 5B as WAN22
    "story_pmwd_30s_wan22": ["WAN21", "WAN21"], "story_5b_ti2v": ["WAN22"], "first_last_frame_wan22_i2v": ["WAN21", "WAN21"]}


def tiny_run(name: str, size_node: str) -> dict:
    workflow = json.loads((ROOT / "workflows" / "api" / f"{name}.api.json").read_text())
    for node in workflow.values():
        if node["class_type"] == "BasicScheduler":
            node["inputs"]["steps"] = 3
    workflow[size_node]["inputs"].update(width=32, height=32)
    return workflow


def test_every_wan22_workflow_is_covered_here():
    shipped = {p.name[:-len(".api.json")] for p in (ROOT / "workflows" / "api").glob("*.api.json")
               if any(n.get("class_type") == "UNETLoader" and n["inputs"]["unet_name"].startswith("wan2.2")
                      for n in json.loads(p.read_text()).values())}
    assert shipped == {name for name, _, _ in RUNS}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import tiny_weights
    from PIL import Image
    from safetensors.torch import save_file
    tmp = tmp_path_factory.mktemp("wan22")
    nodes_dir = tmp / "custom_nodes"
    nodes_dir.mkdir()
    (nodes_dir / "comfyui-framelevel").symlink_to(ROOT, target_is_directory=True)
    (nodes_dir / "framelevel_tiny_models.py").symlink_to(ROOT / "tools" / "tiny_loader_nodes.py")
    models = tmp / "models" / "diffusion_models"
    models.mkdir(parents=True)
    for file_name, (variant, seed) in WEIGHTS.items():
        save_file(cs.variant_state_dict(variant, seed), str(models / file_name))
    tiny_weights.write_text_encoder(tmp / "models" / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                    tiny_weights.TinyUMT5(width=cs.TEXT_DIM))
    (tmp / "models" / "vae").mkdir()
    for file_name, wan22 in (("wan_2.1_vae.safetensors", False), ("wan2.2_vae.safetensors", True)):
        save_file(tiny_weights.tiny_wan_vae_state_dict(wan22), str(tmp / "models" / "vae" / file_name))
    inputs = tmp / "input"
    inputs.mkdir()
    for image_name, colour in (("first_frame.png", (200, 60, 40)), ("last_frame.png", (40, 60, 200)),
                               ("start_image.png", (230, 180, 60))):
        Image.new("RGB", (48, 40), colour).save(inputs / image_name)
    config = tmp / "extra_paths.yaml"
    config.write_text(f"framelevel_wan22:\n  custom_nodes: {nodes_dir}\n  diffusion_models: {models}\n"
                      f"  text_encoders: {tmp / 'models' / 'text_encoders'}\n  vae: {tmp / 'models' / 'vae'}\n")
    instance = run_workflow.ComfyServer(
        Path(os.environ["COMFYUI_PATH"]), sys.executable, cpu=True, log_path=tmp / "server.log",
        extra_args=["--extra-model-paths-config", str(config), "--input-directory", str(inputs),
                    "--output-directory", str(tmp / "output")])
    try:
        instance.wait_ready()
        instance.output_dir = tmp / "output"
        yield instance
    finally:
        instance.stop()


@pytest.mark.parametrize("name, size_node, pixel_frames", RUNS, ids=[r[0] for r in RUNS])
def test_workflow_runs_end_to_end_on_tiny_weights(server, name, size_node, pixel_frames):
    import av
    log_start = len(server.log_path.read_text())
    history = server.run(tiny_run(name, size_node), timeout=900)
    assert history["status"]["status_str"] == "success", json.dumps(history["status"])[:3000]
    videos = [p for p in run_workflow.output_files(history, server.output_dir.parent)
              if p.suffix in (".mp4", ".webm", ".mkv") and p.is_file()]
    assert len(videos) == 1, history["outputs"]
    with av.open(str(videos[0])) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == pixel_frames and frames[0].shape[:2] == (32, 32)
    assert float(torch.tensor(frames[-1], dtype=torch.float32).std()) > 0   # a decoded picture, not a blank
    log = server.log_path.read_text()[log_start:]
    loads = re.findall(r"Requested to load (WAN\w*)", log)   # progress bars share lines with these
    assert loads == LOADS[name], log[-3000:]
