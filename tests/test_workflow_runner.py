import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflows"))
import run_workflow  # noqa: E402


def test_missing_models_are_named_with_their_folder(tmp_path, capsys):
    (tmp_path / "main.py").write_text("")
    (tmp_path / "models" / "vae").mkdir(parents=True)
    (tmp_path / "models" / "vae" / "wan_2.1_vae.safetensors").write_bytes(b"")
    code = run_workflow.main(["--comfyui", str(tmp_path), str(ROOT / "workflows" / "frame_prompts_t2v.api.json"),
                              "--check-only"])
    err = capsys.readouterr().err
    assert code == 2
    assert "wan2.1_t2v_1.3B_fp16.safetensors" in err and str(tmp_path / "models" / "diffusion_models") in err
    assert "umt5_xxl_fp8_e4m3fn_scaled.safetensors" in err and str(tmp_path / "models" / "text_encoders") in err
    assert "wan_2.1_vae" not in err
    assert (tmp_path / "custom_nodes" / "comfyui-framelevel").resolve() == ROOT


def test_overrides_parse_json_values():
    workflow = json.loads((ROOT / "workflows" / "frame_prompts_t2v.api.json").read_text())
    run_workflow.apply_overrides(workflow, ["10.steps=4", "13.filename_prefix=quick"])
    assert workflow["10"]["inputs"]["steps"] == 4 and workflow["13"]["inputs"]["filename_prefix"] == "quick"
