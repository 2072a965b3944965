"""The chat client against a real HTTP server on loopback: replies, retries, timeouts, formats, cache."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from comfyui_framelevel.nodes.story.client import (
    ChatClient,
    ClientOptions,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMReplyError,
    image_part,
    retry_after_seconds,
)
from story_helpers import Reply, ScriptedServer, chat_body

MESSAGES = [{"role": "user", "content": "hello"}]


def make_client(server_or_url, tmp_path=None, sleeps=None, **overrides) -> ChatClient:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    settings = dict(base_url=url, model="m", timeout_s=2.0, max_retries=3, backoff_s=0.01,
                    max_backoff_s=0.05, cache_dir=(tmp_path / "cache") if tmp_path else None)
    settings.update(overrides)
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return ChatClient(ClientOptions(**settings), sleep=record)


def test_canned_reply_sends_model_messages_and_strips_thinking(tmp_path):
    with ScriptedServer([Reply(chat_body("<think>plan</think>\nanswer"))]) as server:
        reply = make_client(server).chat(MESSAGES, temperature=0.1, max_tokens=50, seed=7)
    assert reply.content == "answer" and not reply.cached
    body = server.chat_requests()[0]["body"]
    assert body["model"] == "m" and body["messages"] == MESSAGES
    assert body["temperature"] == 0.1 and body["max_tokens"] == 50 and body["seed"] == 7
    assert "response_format" not in body and "structured" not in body


def test_retries_429_and_500_then_succeeds_honouring_retry_after(tmp_path):
    script = [Reply({"error": "busy"}, 429, {"Retry-After": "0.03"}), Reply({"error": "boom"}, 500),
              Reply(chat_body("ok"))]
    sleeps: list[float] = []
    with ScriptedServer(script) as server:
        reply = make_client(server, sleeps=sleeps, max_backoff_s=1.0).chat(MESSAGES)
    assert reply.content == "ok" and len(server.chat_requests()) == 3
    assert sleeps == [pytest.approx(0.03), pytest.approx(0.02)]  # Retry-After, then backoff_s * 2**1


def test_persistent_5xx_gives_clear_error_after_bounded_attempts():
    with ScriptedServer([Reply({"error": "down"}, 503)]) as server:
        with pytest.raises(LLMHTTPError, match=r"503.*4 attempt") as info:
            make_client(server).chat(MESSAGES)
    assert info.value.status == 503 and len(server.chat_requests()) == 4


def test_client_error_is_not_retried():
    with ScriptedServer([Reply({"error": "no such model"}, 404)]) as server:
        with pytest.raises(LLMHTTPError, match="404.*no such model"):
            make_client(server).chat(MESSAGES)
    assert len(server.chat_requests()) == 1


def test_slow_server_times_out_quickly_and_never_hangs():
    with ScriptedServer([Reply(chat_body("late"), delay_s=1.5)]) as server:
        start = time.monotonic()
        with pytest.raises(LLMConnectionError, match="timeout_s=0.2"):
            make_client(server, timeout_s=0.2, max_retries=1).chat(MESSAGES)
        assert time.monotonic() - start < 1.4


def test_slow_first_reply_then_fast_reply_succeeds():
    with ScriptedServer([Reply(chat_body("late"), delay_s=0.8), Reply(chat_body("fast"))]) as server:
        assert make_client(server, timeout_s=0.3).chat(MESSAGES).content == "fast"


def test_connection_refused_is_retried_then_reported():
    with ScriptedServer([Reply(chat_body("x"))]) as server:
        url = server.base_url
    sleeps: list[float] = []
    with pytest.raises(LLMConnectionError, match="base_url"):
        make_client(url, sleeps=sleeps, max_retries=2).chat(MESSAGES)
    assert sleeps == [pytest.approx(0.01), pytest.approx(0.02)]


@pytest.mark.parametrize("body, problem", [
    ("this is not json", "not JSON"),
    ({"choices": []}, "no choices"),
    (chat_body(""), "empty message"),
])
def test_malformed_server_bodies_raise_reply_errors(body, problem):
    with ScriptedServer([Reply(body)]) as server:
        with pytest.raises(LLMReplyError, match=problem):
            make_client(server).chat(MESSAGES)


def test_rejected_response_format_falls_back_and_is_remembered():
    def script(request):
        body = request["body"]
        if body.get("response_format", {}).get("type") == "json_schema":
            return Reply({"error": "Either json_schema or grammar can be specified, but not both"}, 400)
        return Reply(chat_body('{"1": "a"}'))

    schema = {"type": "object"}
    with ScriptedServer(script) as server:
        client = make_client(server)
        first = client.chat(MESSAGES, schema=schema)
        second = client.chat([{"role": "user", "content": "again"}], schema=schema)
    formats = [r["body"].get("response_format", {}).get("type") for r in server.chat_requests()]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert first.response_format_used == second.response_format_used == "json_object"


def test_format_rejected_all_the_way_down_ends_without_response_format():
    def script(request):
        if "response_format" in request["body"]:
            return Reply({"error": "response_format unsupported"}, 422)
        return Reply(chat_body("plain"))

    with ScriptedServer(script) as server:
        reply = make_client(server).chat(MESSAGES, schema={"type": "object"})
    assert reply.content == "plain" and reply.response_format_used == "none"
    assert len(server.chat_requests()) == 3


def test_cache_answers_repeated_requests_without_network(tmp_path):
    with ScriptedServer([Reply(chat_body("first")), Reply(chat_body("second"))]) as server:
        client = make_client(server, tmp_path)
        assert client.chat(MESSAGES, seed=1).content == "first"
        again = make_client(server, tmp_path).chat(MESSAGES, seed=1)  # a new client, same disk cache
        other_seed = client.chat(MESSAGES, seed=2)
        uncached = client.chat(MESSAGES, seed=1, use_cache=False)
    assert again.cached and again.content == "first"
    assert other_seed.content == "second" and uncached.content == "second"
    assert len(server.chat_requests()) == 3


def test_rejected_replies_are_not_cached(tmp_path):
    def refuse(text):
        raise ValueError("no")

    with ScriptedServer([Reply(chat_body("bad")), Reply(chat_body("good"))]) as server:
        client = make_client(server, tmp_path)
        with pytest.raises(ValueError):
            client.chat(MESSAGES, validate=refuse)
        assert client.chat(MESSAGES).content == "good"


def test_api_key_comes_from_the_named_environment_variable_and_is_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMELEVEL_LLM_TEST_KEY", "sk-secret-123")
    with ScriptedServer([Reply(chat_body("ok"))]) as server:
        client = make_client(server, tmp_path, api_key_env="FRAMELEVEL_LLM_TEST_KEY")
        client.chat(MESSAGES)
    assert server.chat_requests()[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
    stored = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert stored and "sk-secret-123" not in stored and "sk-secret-123" not in repr(client.options)


def test_missing_key_variable_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("FRAMELEVEL_LLM_TEST_MISSING", raising=False)
    with ScriptedServer([Reply(chat_body("ok"))]) as server:
        with pytest.raises(LLMError, match="FRAMELEVEL_LLM_TEST_MISSING"):
            make_client(server, api_key_env="FRAMELEVEL_LLM_TEST_MISSING").chat(MESSAGES)
    assert server.requests == []


def test_images_travel_as_data_urls():
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    frame[:, :4] = 255
    content = [{"type": "text", "text": "describe"}, image_part(frame)]
    with ScriptedServer([Reply(chat_body("a frame"))]) as server:
        make_client(server).chat([{"role": "user", "content": content}])
    sent = server.chat_requests()[0]["body"]["messages"][0]["content"][1]
    assert sent["type"] == "image_url" and sent["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_list_models_reads_ids():
    with ScriptedServer([Reply({"object": "list", "data": [{"id": "a"}, {"id": "b"}]})]) as server:
        assert make_client(server).list_models() == ["a", "b"]
    assert server.requests[0]["method"] == "GET" and server.requests[0]["path"] == "/v1/models"


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_options_reject_a_url_without_scheme():
    with pytest.raises(ValueError, match="http"):
        ClientOptions(base_url="localhost:8080/v1")


# ---- hostile workflows and servers (a shared workflow is untrusted input) ------------------------
SECRET = "sk-live-0123456789abcdefSECRET"


def keyed_client(server_or_url, monkeypatch, **overrides) -> ChatClient:
    monkeypatch.setenv("FRAMELEVEL_LLM_TEST_KEY", SECRET)
    return make_client(server_or_url, api_key_env="FRAMELEVEL_LLM_TEST_KEY", max_retries=1, **overrides)


def assert_no_key(text: str) -> None:
    """Neither the key nor any 8-character piece of it (a cut-off echo) is in `text`."""
    assert not any(SECRET[i:i + 8] in text for i in range(len(SECRET) - 7)), text


@pytest.mark.parametrize("name", ["HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "PATH"])
def test_a_workflow_cannot_pick_an_arbitrary_environment_variable_as_the_key(name, monkeypatch):
    monkeypatch.setenv(name, "hf_secret_value")
    monkeypatch.delenv("FRAMELEVEL_LLM_KEY_ENVS", raising=False)
    with pytest.raises(ValueError) as info:
        ClientOptions(base_url="http://127.0.0.1:9/v1", api_key_env=name)
    message = str(info.value)
    assert f"api_key_env = '{name}'" in message and "FRAMELEVEL_LLM_" in message and "Fix:" in message
    assert "FRAMELEVEL_LLM_KEY_ENVS" in message and "hf_secret_value" not in message


def test_the_person_running_comfyui_can_allow_a_variable_by_name(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-mine")
    monkeypatch.setenv("FRAMELEVEL_LLM_KEY_ENVS", "OTHER_KEY, MY_LLM_KEY")
    with ScriptedServer([Reply(chat_body("ok"))]) as server:
        make_client(server, api_key_env="MY_LLM_KEY").chat(MESSAGES)
    assert server.chat_requests()[0]["headers"]["Authorization"] == "Bearer sk-mine"


def test_redirect_to_another_host_drops_the_key(monkeypatch):
    """127.0.0.1 answers 302 to 127.0.0.2 (another origin): the key must not follow."""
    with ScriptedServer([Reply({"object": "list", "data": [{"id": "x"}]})], host="127.0.0.2") as other:
        moved = Reply({}, 302, {"Location": other.base_url + "/models"})
        with ScriptedServer([moved]) as server:
            assert keyed_client(server, monkeypatch).list_models() == ["x"]
            chat_moved = Reply({}, 302, {"Location": other.base_url + "/models"})
            server.script = [chat_moved]
            with pytest.raises(LLMReplyError):  # POST -> 302 -> GET elsewhere: no chat reply, and no key
                keyed_client(server, monkeypatch).chat(MESSAGES, use_cache=False)
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert len(other.requests) == 2
    for request in other.requests:
        assert not any(k.lower() == "authorization" for k in request["headers"])
        assert_no_key(json.dumps(request))


def test_redirect_within_the_same_origin_keeps_the_key(monkeypatch):
    def script(request):
        if request["path"] == "/v1/models":
            return Reply({}, 301, {"Location": "/v1/models/"})
        return Reply({"object": "list", "data": [{"id": "y"}]})

    with ScriptedServer(script) as server:
        assert keyed_client(server, monkeypatch).list_models() == ["y"]
    assert [r["headers"].get("Authorization") for r in server.requests] == [f"Bearer {SECRET}"] * 2


def echo_headers(status: int):
    def script(request):
        headers = request["headers"]
        return Reply(f"you sent Authorization: {headers.get('Authorization')} " + json.dumps(headers), status)
    return script


@pytest.mark.parametrize("status, error", [(401, LLMHTTPError), (500, LLMHTTPError), (200, LLMReplyError)])
def test_a_server_echoing_the_headers_never_gets_the_key_into_the_error(status, error, monkeypatch):
    with ScriptedServer(echo_headers(status)) as server:
        with pytest.raises(error) as info:
            keyed_client(server, monkeypatch).chat(MESSAGES)
    text = str(info.value) + repr(info.value.args) + getattr(info.value, "body", "")
    assert_no_key(text)
    assert "[redacted]" in text


def test_a_key_cut_off_at_the_error_length_limit_leaves_no_piece_behind(monkeypatch):
    padding = "p" * (300 - 10)  # the reply is cut at 300 characters, in the middle of the key
    with ScriptedServer([Reply(padding + SECRET, 400)]) as server:
        with pytest.raises(LLMHTTPError) as info:
            keyed_client(server, monkeypatch).chat(MESSAGES)
    assert_no_key(str(info.value))


def test_a_reply_quoting_the_key_is_redacted_before_output_and_cache(tmp_path, monkeypatch):
    escaped = json.dumps(chat_body("the key is " + SECRET)).replace("SECRET", "\\u0053ECRET")
    with ScriptedServer([Reply(escaped)]) as server:
        reply = keyed_client(server, monkeypatch, cache_dir=tmp_path / "cache").chat(MESSAGES)
    assert reply.content == "the key is [redacted]"
    assert_no_key("".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json")))


@pytest.mark.parametrize("url", ["http://192.0.2.10:8080/v1", "http://llm.example.com/v1", "http://[2001:db8::1]/v1"])
def test_plain_http_goes_only_to_loopback_unless_allowed(url, monkeypatch):
    monkeypatch.delenv("FRAMELEVEL_LLM_ALLOW_HTTP", raising=False)
    with pytest.raises(ValueError, match=r"base_url = .*plain http.*Fix: .*FRAMELEVEL_LLM_ALLOW_HTTP"):
        ClientOptions(base_url=url)   # refused before any connection
    monkeypatch.setenv("FRAMELEVEL_LLM_ALLOW_HTTP", "other.host, " + url.split("//")[1].split("/")[0]
                       .rsplit(":", 1)[0].strip("[]") if "[" not in url else "*")
    assert ClientOptions(base_url=url).base_url == url
    for fine in ("https://llm.example.com/v1", "http://localhost:11434/v1", "http://127.0.0.2:1/v1",
                 "http://[::1]:8080/v1"):
        monkeypatch.delenv("FRAMELEVEL_LLM_ALLOW_HTTP")
        ClientOptions(base_url=fine)
        monkeypatch.setenv("FRAMELEVEL_LLM_ALLOW_HTTP", "")
