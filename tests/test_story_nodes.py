"""Story nodes: menu and outputs, validation before any network/model call, cache-aware fingerprint,
the expand output feeding the schedule compiler, and the metrics node/CLI on a tiny local CLIP."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from comfyui_framelevel.nodes import story_nodes
from comfyui_framelevel.nodes.core import frames as fm
from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule
from comfyui_framelevel.nodes.core.story.render import STYLES
from comfyui_framelevel.nodes.story_nodes import FrameLevelMetrics, FrameLevelPromptExpand
from comfyui_framelevel.nodes.validation import FrameLevelInputError
from story_helpers import Reply, ScriptedServer, chat_body, cli_command, make_video, save_tiny_clip


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMELEVEL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("node", story_nodes.NODES)
def test_story_nodes_sit_in_the_story_menu_with_named_outputs(node):
    schema = node.schema()
    assert schema.category == "FrameLevel/Story"
    assert all(output.name and output.name != output.io_type for output in schema.outputs)


def expand_inputs(server, **overrides) -> dict:
    inputs = dict(video_prompt="A fox crosses a snowy field, then sleeps under a pine.", base_url=server.base_url,
                  model="m", length=17, beats=0, seed=0, temperature=0.3, timeout_s=3.0, max_retries=0)
    inputs.update(overrides)
    return inputs


@pytest.mark.parametrize("overrides, input_name", [
    (dict(video_prompt="  "), "video_prompt"),
    (dict(model=""), "model"),
    (dict(base_url="localhost:1234"), "base_url"),
    (dict(beats=6), "beats"),  # 17 pixel frames = 5 latent frames
    (dict(api_key_env="FRAMELEVEL_LLM_NO_SUCH_KEY"), "api_key_env"),
    (dict(api_key_env="HF_TOKEN"), "api_key_env"),
    (dict(base_url="http://192.0.2.10:8080/v1"), "base_url"),  # plain http off loopback (never contacted)
    (dict(system_prompt="Write {count} prompts for {unknown}"), "system_prompt"),
    (dict(syntax="yaml"), "syntax"),
])
def test_bad_inputs_fail_before_any_request(overrides, input_name):
    with ScriptedServer([Reply(chat_body("{}"))]) as server:
        with pytest.raises(FrameLevelInputError) as info:
            FrameLevelPromptExpand.execute(**expand_inputs(server, **overrides))
    assert info.value.input_name == input_name and "Fix:" in str(info.value)
    assert server.requests == []


def test_expand_output_parses_into_the_schedule_and_is_cached():
    reply = {str(i): f"wide shot, eye level, the same red fox, step {i}" for i in range(1, 6)}
    with ScriptedServer([Reply(chat_body("```json\n" + json.dumps(reply) + "\n```"))]) as server:
        inputs = expand_inputs(server)
        key = FrameLevelPromptExpand.fingerprint_inputs(**inputs)
        text, latent_frames = FrameLevelPromptExpand.execute(**inputs)
        again, _ = FrameLevelPromptExpand.execute(**inputs)
        assert FrameLevelPromptExpand.fingerprint_inputs(**inputs) == key
        assert FrameLevelPromptExpand.fingerprint_inputs(**dict(inputs, seed=1)) != key
        assert math.isnan(FrameLevelPromptExpand.fingerprint_inputs(**dict(inputs, use_cache=False)))
    assert latent_frames == 5 and again == text and len(server.chat_requests()) == 1
    assert list(compile_prompt_schedule(text, length=17).prompts) == list(reply.values())


def test_beats_are_spread_over_the_latent_frames():
    beats = {"1": "wide shot, a fox runs", "2": "close-up, the same fox sleeps"}
    with ScriptedServer([Reply(chat_body(json.dumps(beats)))]) as server:
        text, latent_frames = FrameLevelPromptExpand.execute(**expand_inputs(server, length=21, beats=2))
    schedule = compile_prompt_schedule(text, length=21)
    assert latent_frames == 6 and list(schedule.prompts) == [beats["1"]] * 3 + [beats["2"]] * 3


@pytest.mark.parametrize("syntax", list(STYLES))
@pytest.mark.parametrize("beats", [0, 3])
def test_expand_writes_every_syntax_and_it_reads_back(syntax, beats):
    count = beats or 6  # 21 pixel frames = 6 latent frames
    reply = {str(i): f"medium shot, the same red fox, beat {i}" for i in range(1, count + 1)}
    with ScriptedServer([Reply(chat_body(json.dumps(reply)))]) as server:
        text, latent_frames = FrameLevelPromptExpand.execute(**expand_inputs(server, length=21, beats=beats,
                                                                              syntax=syntax, fps=12.0))
    schedule = compile_prompt_schedule(text, length=21, fps=12.0)
    assert schedule.source_format == STYLES[syntax] and latent_frames == 6
    spread = [reply[str(f * count // 6 + 1)] for f in range(6)]
    assert list(schedule.prompts) == spread and all("beat" in p for p in schedule.unique)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("transformers")
    return save_tiny_clip(tmp_path_factory.mktemp("clip"), positive=True)


def test_metrics_node_fails_before_loading_on_bad_inputs(tmp_path):
    images = np.zeros((9, 16, 16, 3), np.float32)  # 9 pixel frames = 3 latent frames
    with pytest.raises(FrameLevelInputError, match="checkpoint_path"):
        FrameLevelMetrics.execute(images, '{"1": "a", "2": "b"}', str(tmp_path / "missing"))
    with pytest.raises(FrameLevelInputError, match="frame_prompts") as info:
        FrameLevelMetrics.execute(images, '{"1": "a", "4": "b"}', str(tmp_path))
    assert "past the end" in str(info.value) and "Fix:" in str(info.value)


def reference_cd(text, visual) -> float:
    """The paper's CD in float64, written out: rows normalised by their own diagonal entry."""
    t = np.asarray(text, np.float64) / np.linalg.norm(text, axis=1, keepdims=True)
    v = np.asarray(visual, np.float64) / np.linalg.norm(visual, axis=1, keepdims=True)
    s_tt, s_tf = t @ t.T, t @ v.T
    n = len(t)
    return sum(max(0.0, s_tf[i, j] / s_tf[i, i] - s_tt[i, j] / s_tt[i, i])
               for i in range(n) for j in range(n) if j != i) / n


def test_metrics_node_scores_each_prompt_on_its_own_latent_frames(tiny_clip):
    from comfyui_framelevel.nodes.story.embedders import load_embedder

    images = np.random.default_rng(0).random((12, 40, 40, 3)).astype(np.float32)
    # 12 pixel frames = 3 latent frames (+3 trailing pixel frames); "2" starts at latent frame 1.
    story = json.dumps({"1": "a red fox", "2": "a blue lake"})
    report, cd, frame_consistency, video_consistency = FrameLevelMetrics.execute(
        images, story, str(tiny_clip), video_prompt="a fox by a lake")
    # runs: latent 0 = pixel frame 0; latents 1-2 = pixel frames 1-8 plus the trailing 9-11
    embedder = load_embedder(tiny_clip)
    text = embedder.encode_text(["a red fox", "a blue lake"])
    visual = embedder.encode_visual([images[[0]], images[[1 + 11 // 2]]])
    assert math.isfinite(cd) and cd == pytest.approx(reference_cd(text, visual), abs=1e-6)
    cosines = np.sum(text * visual, axis=1) / np.linalg.norm(text, axis=1) / np.linalg.norm(visual, axis=1)
    assert frame_consistency == pytest.approx(float(cosines.mean()), abs=1e-6)
    assert 0.0 < video_consistency <= 1.0 and report.startswith("Confusion Degree")
    assert json.loads(report[report.index("{"):])["prompts"] == 2


def shipped_stories():
    """(workflow, story text, length in pixel frames, format, key unit, fps) of every shipped schedule."""
    stories = []
    for path in sorted((Path(__file__).resolve().parents[1] / "workflows" / "api").glob("*.api.json")):
        for node in json.loads(path.read_text()).values():
            if node.get("class_type") == "FrameLevelPromptSchedule":
                inputs = node["inputs"]
                length = inputs["length"] if inputs["length_unit"] == "pixel" else fm.pixel_count(inputs["length"])
                stories.append(pytest.param(inputs["text"], length, inputs.get("format", "auto"),
                                            inputs.get("key_unit", "pixel"), inputs.get("fps", 16.0), id=path.stem))
    return stories


@pytest.mark.parametrize("text, pixel_frames, fmt, key_unit, fps", shipped_stories())
def test_metrics_node_accepts_every_shipped_story(tiny_clip, text, pixel_frames, fmt, key_unit, fps):
    images = np.random.default_rng(1).random((pixel_frames, 8, 8, 3)).astype(np.float32)
    schedule = compile_prompt_schedule(text, length=pixel_frames, fmt=fmt, key_unit=key_unit, fps=fps)
    report, cd, _, _ = FrameLevelMetrics.execute(images, text, str(tiny_clip), format=fmt, key_unit=key_unit,
                                                 fps=fps)
    numbers = json.loads(report[report.index("{"):])
    assert numbers["prompts"] == len(schedule.runs()) > 1 and numbers["pixel_frames"] == pixel_frames
    assert math.isfinite(cd) and cd >= 0.0


@pytest.mark.slow  # a fresh interpreter imports torch + transformers (~10 s)
def test_metrics_cli_on_a_video_file(tiny_clip, tmp_path):
    video = make_video(tmp_path / "gen.mp4", 2, fps=16, seed=9)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"1": "a red fox", "5": "a blue lake"}))
    result = subprocess.run(cli_command("training.annotate", "metrics", "--video", video, "--prompts", prompts,
                                        "--checkpoint", tiny_clip, "--video-prompt", "a fox", "--json"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    assert numbers["prompts"] == 2 and numbers["pixel_frames"] == 32 and numbers["video_consistency"] is not None
    assert math.isfinite(numbers["confusion_degree"])


def test_a_workflow_naming_hf_token_is_refused_with_the_input_the_value_and_the_fix(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_for_the_llm_server")
    monkeypatch.delenv("FRAMELEVEL_LLM_KEY_ENVS", raising=False)
    with ScriptedServer([Reply(chat_body("{}"))]) as server:
        inputs = expand_inputs(server, api_key_env="HF_TOKEN")
        assert math.isnan(FrameLevelPromptExpand.fingerprint_inputs(**inputs))
        with pytest.raises(FrameLevelInputError) as info:
            FrameLevelPromptExpand.execute(**inputs)
    message = str(info.value)
    assert info.value.input_name == "api_key_env" and info.value.value == "HF_TOKEN"
    assert message.startswith("api_key_env = 'HF_TOKEN': only environment variables whose name starts with "
                              "FRAMELEVEL_LLM_")
    assert "Fix: before starting ComfyUI, export FRAMELEVEL_LLM_API_KEY=" in message
    assert "hf_not_for_the_llm_server" not in message and server.requests == []


def test_an_allowed_key_reaches_the_loopback_server(monkeypatch):
    monkeypatch.setenv("FRAMELEVEL_LLM_API_KEY", "sk-local")
    reply = {str(i): f"wide shot, the same red fox, step {i}" for i in range(1, 6)}
    with ScriptedServer([Reply(chat_body(json.dumps(reply)))]) as server:
        FrameLevelPromptExpand.execute(**expand_inputs(server, api_key_env="FRAMELEVEL_LLM_API_KEY",
                                                       use_cache=False))
    assert server.chat_requests()[0]["headers"]["Authorization"] == "Bearer sk-local"
