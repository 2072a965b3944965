"""JSON repair, validation and prompt expansion against a scripted chat server."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pytest
from comfyui_framelevel.nodes.core import frames as fm
from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule
from comfyui_framelevel.nodes.story.client import ChatClient, ClientOptions
from comfyui_framelevel.nodes.story.expand import ExpandError, ExpandOptions, expand_prompt, spread_beats
from comfyui_framelevel.nodes.story.json_repair import (
    FramePromptsError,
    frame_prompts_to_json,
    parse_frame_prompts,
)
from story_helpers import Reply, ScriptedServer, chat_body

HERE = Path(__file__).resolve().parent
SHARED_PROMPTS = HERE.parents[1] / "shared" / "vbench2_prompts"
EXCERPT = HERE / "data" / "vbench2"
GOOD = {"1": "wide shot, eye level, a girl's red kite", "2": "close-up, the same girl laughs"}


def vbench_prompts() -> list[str]:
    """Full VBench-2.0 Complex Plot/Landscape prompts when the shared folder is there, else the excerpt."""
    if SHARED_PROMPTS.is_dir():
        files = [SHARED_PROMPTS / "prompt_Complex_Plot.txt", SHARED_PROMPTS / "prompt_Complex_Landscape.txt"]
    else:
        files = sorted(EXCERPT.glob("*_excerpt.txt"))
    return [line.strip() for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- repair and validation --------------------------------------------------------------------
FAULTY_REPLIES = {
    "clean": json.dumps(GOOD),
    "code fence": "```json\n" + json.dumps(GOOD, indent=2) + "\n```",
    "prose around": "Sure! Here are the captions:\n" + json.dumps(GOOD) + "\nLet me know if you need more.",
    "trailing commas": '{"1": "wide shot, eye level, a girl\'s red kite", "2": "close-up, the same girl laughs",}',
    "single quotes": "{'1': 'wide shot, eye level, a girl's red kite', '2': 'close-up, the same girl laughs'}",
    "smart quotes": "{\u201c1\u201d: \u201cwide shot, eye level, a girl\u2019s red kite\u201d, "
                    "\u201c2\u201d: \u201cclose-up, the same girl laughs\u201d}",
    "bare integer keys": '{1: "wide shot, eye level, a girl\'s red kite", 2: "close-up, the same girl laughs"}',
    "thinking first": "<think>two frames, keep it short</think>" + json.dumps(GOOD),
    "wrapper key": json.dumps({"frames": GOOD}),
    "list": json.dumps(list(GOOD.values())),
    "everything": "Here you go:\n```json\n{'1': 'wide shot, eye level, a girl\u2019s red kite',\n"
                  " 2: \u201cclose-up, the same girl laughs\u201d,\n}\n```\nEnjoy!",
}


@pytest.mark.parametrize("fault", sorted(FAULTY_REPLIES))
def test_common_json_faults_are_repaired(fault):
    parsed = parse_frame_prompts(FAULTY_REPLIES[fault], 2)
    assert parsed["2"] == GOOD["2"]
    assert parsed["1"].replace("\u2019", "'") == GOOD["1"]


@pytest.mark.parametrize("reply, problem", [
    ('{"1": "a"}', r"expected exactly 2 .* got 1; missing keys 2"),
    ('{"1": "a", "2": "b", "3": "c"}', r"got 3; unexpected keys '3'"),
    ('{"0": "a", "1": "b"}', r"missing keys 2; unexpected keys '0'"),
    ('{"1": "a", "2": "  "}', r"frame prompt 2 is empty"),
    ('{"1": "a", "2": 5}', r"frame prompt 2 is a int"),
    ("I cannot help with that.", r"not JSON"),
    ("", r"empty"),
    ('"just a string"', r"expected a JSON object"),
])
def test_invalid_replies_name_what_was_wrong(reply, problem):
    with pytest.raises(FramePromptsError, match=problem):
        parse_frame_prompts(reply, 2)


def test_whitespace_is_collapsed_and_order_is_numeric():
    reply = json.dumps({str(k): f"prompt\n  {k}" for k in (10, 2, 1, 3, 4, 5, 6, 7, 8, 9)})
    parsed = parse_frame_prompts(reply, 10)
    assert list(parsed) == [str(k) for k in range(1, 11)] and parsed["10"] == "prompt 10"


def test_spread_beats_covers_every_frame_in_order_evenly():
    spread = spread_beats({"1": "a", "2": "b", "3": "c"}, 8)
    values = list(spread.values())
    assert values == ["a", "a", "a", "b", "b", "b", "c", "c"]
    with pytest.raises(ValueError, match="2 prompts for 1 latent frames"):
        spread_beats({"1": "a", "2": "b"}, 1)


# ---- expansion with a scripted model ----------------------------------------------------------
def requested_count(request) -> int:
    system = request["body"]["messages"][0]["content"]
    return int(re.search(r"numbered 1 to (\d+)", system).group(1))


def styled_reply(count: int, style: int) -> str:
    prompts = {str(i): f"medium shot, low angle, the same runner's moment {i}" for i in range(1, count + 1)}
    text = json.dumps(prompts)
    if style == 1:
        return "```json\n" + text + "\n```"
    if style == 2:
        return "Here is the storyboard: " + text[:-1] + ",}"
    if style == 3:
        return text.replace('"', "\u201c", 1)
    return text


@pytest.fixture()
def client_for(tmp_path):
    def make(server, **overrides):
        settings = dict(base_url=server.base_url, model="scripted", timeout_s=2.0, max_retries=1,
                        backoff_s=0.0, cache_dir=tmp_path / "cache")
        settings.update(overrides)
        return ChatClient(ClientOptions(**settings), sleep=lambda s: None)
    return make


def test_expansion_of_vbench_prompts_always_compiles_into_the_schedule(client_for):
    prompts = vbench_prompts()
    counts = [21, 5, 1, 31]

    styles = itertools.count()

    def script(request):
        return Reply(chat_body(styled_reply(requested_count(request), next(styles) % 4)))

    with ScriptedServer(script) as server:
        client = client_for(server)
        for n, story in enumerate(prompts):
            count = counts[n % len(counts)]
            result = expand_prompt(story, client, ExpandOptions(count=count, seed=n))
            schedule = compile_prompt_schedule(frame_prompts_to_json(result), length=fm.pixel_count(count))
            assert len(schedule.prompts) == count
            assert list(schedule.prompts) == [result[str(i)] for i in range(1, count + 1)]
    bodies = [r["body"] for r in server.chat_requests()]
    assert len(bodies) == len(prompts)
    assert all(story in b["messages"][1]["content"] for story, b in zip(prompts, bodies, strict=True))
    schema = bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == [str(i) for i in range(1, counts[0] + 1)]


def test_wrong_count_is_shown_to_the_model_and_the_retry_is_used(client_for):
    with ScriptedServer([Reply(chat_body(json.dumps({"1": "a", "2": "b"}))),
                         Reply(chat_body(json.dumps({"1": "a", "2": "b", "3": "c"})))]) as server:
        result = expand_prompt("a fox story", client_for(server), ExpandOptions(count=3))
    assert list(result.values()) == ["a", "b", "c"]
    retry_messages = server.chat_requests()[1]["body"]["messages"]
    assert retry_messages[2]["role"] == "assistant" and "missing keys 3" in retry_messages[3]["content"]


def test_no_valid_reply_raises_and_never_returns_a_partial_list(client_for):
    with ScriptedServer([Reply(chat_body(json.dumps({"1": "a"})))]) as server:
        with pytest.raises(ExpandError, match=r"no valid set of 4 frame prompts in 2 attempt.*missing keys 2, 3, 4"):
            expand_prompt("a fox story", client_for(server), ExpandOptions(count=4, attempts=2))
    assert len(server.chat_requests()) == 2


def test_malformed_json_everywhere_gives_a_clear_error(client_for):
    with ScriptedServer([Reply(chat_body("{'1': 'a', '2': "))]) as server:
        with pytest.raises(ExpandError, match="not JSON"):
            expand_prompt("story", client_for(server), ExpandOptions(count=2, attempts=1))


def test_expansion_is_cached_across_runs(client_for):
    with ScriptedServer([Reply(chat_body(json.dumps(GOOD)))]) as server:
        first = expand_prompt("story", client_for(server), ExpandOptions(count=2))
        second = expand_prompt("story", client_for(server), ExpandOptions(count=2))
    assert first == second and len(server.chat_requests()) == 1


@pytest.mark.skipif(not os.environ.get("FRAMELEVEL_LLM_BASE_URL"),
                    reason="live test: set FRAMELEVEL_LLM_BASE_URL (and FRAMELEVEL_LLM_MODEL, optional "
                           "FRAMELEVEL_LLM_KEY_ENV) to run it against a real server")
def test_live_server_expands_a_vbench_prompt(tmp_path):
    client = ChatClient(ClientOptions(base_url=os.environ["FRAMELEVEL_LLM_BASE_URL"],
                                      model=os.environ.get("FRAMELEVEL_LLM_MODEL", ""),
                                      api_key_env=os.environ.get("FRAMELEVEL_LLM_KEY_ENV", ""),
                                      cache_dir=tmp_path))
    result = expand_prompt(vbench_prompts()[0], client, ExpandOptions(count=6, attempts=3))
    schedule = compile_prompt_schedule(frame_prompts_to_json(result), length=fm.pixel_count(6))
    assert len(schedule.prompts) == 6 and all(p.strip() for p in schedule.prompts)
