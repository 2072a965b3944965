"""Story nodes: V1 contract, validation before any network/model call, cache-aware IS_CHANGED,
the expand output feeding the schedule compiler, and the metrics node/CLI on a tiny local CLIP."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
from comfyui_framelevel.nodes import story_nodes
from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule
from comfyui_framelevel.nodes.story_nodes import FrameLevelMetrics, FrameLevelPromptExpand
from comfyui_framelevel.nodes.validation import FrameLevelInputError
from story_helpers import Reply, ScriptedServer, chat_body, cli_command, make_video, save_tiny_clip


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMELEVEL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("node", list(story_nodes.NODE_CLASS_MAPPINGS.values()))
def test_node_contract(node):
    inputs = node.INPUT_TYPES()
    assert set(inputs) == {"required", "optional"}
    for group in inputs.values():
        for name, spec in group.items():
            assert spec[1].get("tooltip"), f"{node.__name__}.{name} has no tooltip"
    assert node.CATEGORY == "FrameLevel/Story" and node.DESCRIPTION
    assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES) == len(node.OUTPUT_TOOLTIPS)
    assert callable(getattr(node, node.FUNCTION))
    assert set(story_nodes.NODE_DISPLAY_NAME_MAPPINGS) == set(story_nodes.NODE_CLASS_MAPPINGS)


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
    (dict(api_key_env="STORY_NODE_NO_SUCH_KEY"), "api_key_env"),
    (dict(system_prompt="Write {count} prompts for {unknown}"), "system_prompt"),
])
def test_bad_inputs_fail_before_any_request(overrides, input_name):
    with ScriptedServer([Reply(chat_body("{}"))]) as server:
        with pytest.raises(FrameLevelInputError) as info:
            FrameLevelPromptExpand().expand(**expand_inputs(server, **overrides))
    assert info.value.input_name == input_name and "Fix:" in str(info.value)
    assert server.requests == []


def test_expand_output_parses_into_the_schedule_and_is_cached():
    reply = {str(i): f"wide shot, eye level, the same red fox, step {i}" for i in range(1, 6)}
    with ScriptedServer([Reply(chat_body("```json\n" + json.dumps(reply) + "\n```"))]) as server:
        inputs = expand_inputs(server)
        key = FrameLevelPromptExpand.IS_CHANGED(**inputs)
        text, latent_frames = FrameLevelPromptExpand().expand(**inputs)
        again, _ = FrameLevelPromptExpand().expand(**inputs)
        assert FrameLevelPromptExpand.IS_CHANGED(**inputs) == key
        assert FrameLevelPromptExpand.IS_CHANGED(**dict(inputs, seed=1)) != key
        assert math.isnan(FrameLevelPromptExpand.IS_CHANGED(**dict(inputs, use_cache=False)))
    assert latent_frames == 5 and again == text and len(server.chat_requests()) == 1
    assert list(compile_prompt_schedule(text, length=17).prompts) == list(reply.values())


def test_beats_are_spread_over_the_latent_frames():
    beats = {"1": "wide shot, a fox runs", "2": "close-up, the same fox sleeps"}
    with ScriptedServer([Reply(chat_body(json.dumps(beats)))]) as server:
        text, latent_frames = FrameLevelPromptExpand().expand(**expand_inputs(server, length=21, beats=2))
    schedule = compile_prompt_schedule(text, length=21)
    assert latent_frames == 6 and list(schedule.prompts) == [beats["1"]] * 3 + [beats["2"]] * 3


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("transformers")
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_metrics_node_fails_before_loading_on_bad_inputs(tmp_path):
    images = np.zeros((4, 16, 16, 3), np.float32)
    with pytest.raises(FrameLevelInputError, match="checkpoint_path"):
        FrameLevelMetrics().score(images, '{"1": "a", "2": "b"}', str(tmp_path / "missing"))
    with pytest.raises(FrameLevelInputError, match="frame_prompts"):
        FrameLevelMetrics().score(images, '{"1": "a", "3": "b"}', str(tmp_path))


def test_metrics_node_reports_numbers(tiny_clip):
    images = np.random.default_rng(0).random((12, 40, 40, 3)).astype(np.float32)
    prompts = json.dumps({"1": "a red fox", "2": "a blue lake", "3": "a green hill"})
    report, cd, frame_consistency, video_consistency = FrameLevelMetrics().score(
        images, prompts, str(tiny_clip), video_prompt="a fox by a lake")
    assert report.startswith("Confusion Degree") and f"{cd:.4f}" in report
    assert -1.0 <= frame_consistency <= 1.0 and -1.0 <= video_consistency <= 1.0
    assert math.isnan(cd) or cd >= 0.0


@pytest.mark.slow  # a fresh interpreter imports torch + transformers (~10 s)
def test_metrics_cli_on_a_video_file(tiny_clip, tmp_path):
    video = make_video(tmp_path / "gen.mp4", 2, fps=16, seed=9)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"1": "a red fox", "2": "a blue lake"}))
    result = subprocess.run(cli_command("training.annotate", "metrics", "--video", video, "--prompts", prompts,
                                        "--checkpoint", tiny_clip, "--video-prompt", "a fox", "--json"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    assert numbers["prompts"] == 2 and numbers["pixel_frames"] == 32 and numbers["video_consistency"] is not None
