import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402


def test_missing_models_are_named_with_their_folder(tmp_path, capsys):
    (tmp_path / "main.py").write_text("")
    (tmp_path / "models" / "vae").mkdir(parents=True)
    (tmp_path / "models" / "vae" / "wan_2.1_vae.safetensors").write_bytes(b"")
    code = run_workflow.main(["--comfyui", str(tmp_path), str(ROOT / "workflows" / "api" / "frame_prompts_t2v.api.json"),
                              "--check-only"])
    err = capsys.readouterr().err
    assert code == 2
    assert "wan2.1_t2v_1.3B_fp16.safetensors" in err and str(tmp_path / "models" / "diffusion_models") in err
    assert "umt5_xxl_fp8_e4m3fn_scaled.safetensors" in err and str(tmp_path / "models" / "text_encoders") in err
    assert "wan_2.1_vae" not in err
    assert (tmp_path / "custom_nodes" / "comfyui-framelevel").resolve() == ROOT


def test_overrides_parse_json_values():
    workflow = json.loads((ROOT / "workflows" / "api" / "frame_prompts_t2v.api.json").read_text())
    run_workflow.apply_overrides(workflow, ["10.steps=4", "13.filename_prefix=quick"])
    assert workflow["10"]["inputs"]["steps"] == 4 and workflow["13"]["inputs"]["filename_prefix"] == "quick"


def test_every_workflow_story_compiles_at_its_length():
    from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule
    for path in sorted((ROOT / "workflows" / "api").glob("*.api.json")):
        for node in json.loads(path.read_text()).values():
            if node["class_type"] == "FrameLevelPromptSchedule":
                inputs = node["inputs"]
                schedule = compile_prompt_schedule(inputs["text"], length=inputs["length"], unit=inputs["length_unit"])
                assert schedule.latent_frames == (inputs["length"] - 1) // 4 + 1 and len(schedule.unique) >= 2


def test_main_workflow_is_30_seconds_of_pmwd_windows():
    import torch
    from comfyui_framelevel.nodes.core.plan import window_evaluations
    from comfyui_framelevel.nodes.core.sigmas import flow_sigmas
    from comfyui_framelevel.nodes.core.windows import PMWDOptions, pmwd_plan
    workflow = json.loads((ROOT / "workflows" / "api" / "story_pmwd_30s.api.json").read_text())
    latent = next(n for n in workflow.values() if n["class_type"] == "EmptyHunyuanLatentVideo")["inputs"]
    pmwd = next(n for n in workflow.values() if n["class_type"] == "FrameLevelPMWDSampler")["inputs"]
    steps = next(n for n in workflow.values() if n["class_type"] == "BasicScheduler")["inputs"]["steps"]
    assert (latent["length"], latent["width"], latent["height"]) == (481, 832, 480)    # 30 s at 16 fps
    plan = pmwd_plan(flow_sigmas(steps, 8.0), 121, PMWDOptions(window=pmwd["window"], num_windows=pmwd["num_windows"]))
    assert [w.frames[0] for w in plan.windows[0]] == [0, 16, 33, 50, 66, 83, 100]
    assert window_evaluations(plan) == steps * 7 and bool(torch.all(plan.sigmas[-1] == 0))
