"""A small OpenAI-compatible chat client on the standard library (urllib), so the pack needs no
HTTP dependency and works with llama.cpp, vLLM, Ollama, LM Studio or a hosted API alike.

- The API key is never a setting: the setting is the *name* of an environment variable, read at
  request time, so no key ends up in a workflow, a cache file or a log line. A workflow is untrusted
  input, so it may only name variables the person running ComfyUI made available for this: names
  starting with FRAMELEVEL_LLM_, or listed in FRAMELEVEL_LLM_KEY_ENVS (`key_env_problem`).
- The key is sent to base_url's origin only: a redirect to another scheme, host or port loses the
  Authorization header. Every text the server sends back (error bodies, replies) has the key value
  replaced by [redacted] before it reaches an exception, a log, the cache or the output.
- Plain http:// goes only to loopback (127.0.0.0/8, ::1, localhost) unless FRAMELEVEL_LLM_ALLOW_HTTP
  names the host (comma-separated, or * for any), set by the person running ComfyUI.
- Timeouts are per request; 429, 5xx and connection errors are retried with exponential backoff
  (a server's Retry-After wins, capped by `max_backoff_s`).
- Structured output is asked for with `response_format` (JSON schema, then JSON mode); a server that
  rejects it with 400/422 is asked again without it, and the client remembers the downgrade.
- Successful replies are cached on disk, keyed by the request, so re-running a graph is free.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import ipaddress
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.files import write_text_atomic
from .json_repair import strip_thinking

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FORMAT_REJECTED_STATUSES = frozenset({400, 415, 422})
FORMAT_LADDER = ("json_schema", "json_object", "none")

KEY_ENV_PREFIX = "FRAMELEVEL_LLM_"            # variables with this prefix may hold the LLM key
KEY_ENV_ALLOW_LIST = "FRAMELEVEL_LLM_KEY_ENVS"  # extra variable names allowed, comma-separated
ALLOW_HTTP_ENV = "FRAMELEVEL_LLM_ALLOW_HTTP"    # hosts plain http:// may reach besides loopback ("*": any)
REDACTED = "[redacted]"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def key_env_problem(name: str) -> tuple[str, str] | None:
    """(problem, fix) when `name` may not be used as the key's environment variable, else None.

    The workflow names the variable, but only the person running ComfyUI decides which variables
    may leave the machine as a Bearer token: FRAMELEVEL_LLM_* ones, and those listed in
    FRAMELEVEL_LLM_KEY_ENVS. Anything else (HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...) is refused."""
    name = (name or "").strip()
    if not name:
        return None
    if not _ENV_NAME.fullmatch(name):
        return ("is not an environment variable name",
                f"give the NAME of a variable such as {KEY_ENV_PREFIX}API_KEY, never the key itself")
    if name.startswith(KEY_ENV_PREFIX) or name in _env_list(KEY_ENV_ALLOW_LIST):
        return None
    return (f"only environment variables whose name starts with {KEY_ENV_PREFIX}, or that the person running "
            f"ComfyUI lists in {KEY_ENV_ALLOW_LIST}, may be sent as the LLM key (a shared workflow must not "
            "choose which secret leaves the machine)",
            f"before starting ComfyUI, export {KEY_ENV_PREFIX}API_KEY=<your LLM key> and set api_key_env to "
            f"{KEY_ENV_PREFIX}API_KEY, or export {KEY_ENV_ALLOW_LIST}={name} if {name} really is meant "
            "for this server")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(url: str) -> tuple[str, str] | None:
    """(problem, fix) when chat requests may not go to `url`, else None."""
    try:
        parts = urllib.parse.urlsplit((url or "").strip())
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as error:
        return f"is not a valid URL ({error})", "use the server's OpenAI endpoint, e.g. http://127.0.0.1:11434/v1"
    if parts.scheme not in ("http", "https") or not host:
        return ("is not an http(s) URL with a host",
                "use the server's OpenAI endpoint, e.g. http://127.0.0.1:11434/v1")
    if parts.scheme == "http" and not is_loopback_host(host):
        allowed = [h.lower() for h in _env_list(ALLOW_HTTP_ENV)]
        if "*" not in allowed and host.lower() not in allowed:
            return (f"plain http:// to {host} would send the prompts (and any API key) unencrypted; plain http "
                    f"goes only to loopback unless the person running ComfyUI allows the host in {ALLOW_HTTP_ENV}",
                    f"use https://, or before starting ComfyUI export {ALLOW_HTTP_ENV}={host} "
                    "(comma-separated hosts) for a trusted server on your own network")
    return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what a key is bound to."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def redact(text: str, secrets) -> str:
    """`text` with every occurrence of each secret replaced by [redacted]."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _redact_json(value, secrets):
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redact_json(item, secrets) for item in value]
    if isinstance(value, dict):
        return {redact(str(k), secrets): _redact_json(v, secrets) for k, v in value.items()}
    return value


class _SameOriginAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib, but the Authorization header only ever goes to `allowed`'s origin."""

    def __init__(self, allowed_url: str):
        super().__init__()
        self.allowed = origin(allowed_url)

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(new.full_url) != self.allowed:
            for name in [n for n in new.headers if n.lower() == "authorization"]:
                del new.headers[name]
            for name in [n for n in new.unredirected_hdrs if n.lower() == "authorization"]:
                del new.unredirected_hdrs[name]
        return new


class LLMError(RuntimeError):
    """Base class: the chat server could not give a usable reply."""


class LLMConnectionError(LLMError):
    """The server could not be reached or did not answer in time (after all retries)."""


class LLMHTTPError(LLMError):
    """The server answered with an HTTP error that retrying does not fix."""

    def __init__(self, status: int, url: str, body: str):
        self.status, self.url, self.body = status, url, body
        super().__init__(f"HTTP {status} from {url}: {body[:300]}")


class LLMReplyError(LLMError):
    """The server answered 200 but the body is not an OpenAI-style chat completion."""


def default_cache_dir() -> Path:
    """FRAMELEVEL_CACHE_DIR, else ~/.cache/comfyui-framelevel/llm."""
    root = os.environ.get("FRAMELEVEL_CACHE_DIR")
    return Path(root) / "llm" if root else Path.home() / ".cache" / "comfyui-framelevel" / "llm"


@dataclass
class ClientOptions:
    """Where and how to talk to an OpenAI-compatible server."""

    base_url: str = "http://127.0.0.1:11434/v1"
    model: str = ""
    api_key_env: str = ""  # the NAME of an environment variable holding the key ("" = no key)
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None disables the cache

    def __post_init__(self):
        self.base_url = self.base_url.strip().rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        for input_name, value, problem in (("base_url", self.base_url, base_url_problem(self.base_url)),
                                           ("api_key_env", self.api_key_env, key_env_problem(self.api_key_env))):
            if problem is not None:
                raise ValueError(f"{input_name} = {value!r}: {problem[0]}. Fix: {problem[1]}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)


@dataclass
class ChatReply:
    content: str  # the assistant text with any <think> block removed
    cached: bool = False
    response_format_used: str = "none"


class RequestCache:
    """One JSON file per request key under `root`, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, record: dict) -> None:
        path = self._path(key)
        write_text_atomic(path, json.dumps(record, ensure_ascii=False))


def request_key(base_url: str, payload: dict) -> str:
    """Stable hash of everything that determines a reply (never the API key)."""
    canonical = json.dumps({"base_url": base_url, "payload": payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def image_data_url(image, fmt: str = "jpeg", quality: int = 90) -> str:
    """Encode an HxWx3 uint8 array (or a PIL image) as a data URL for a vision model."""
    import numpy as np
    from PIL import Image

    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        image = Image.fromarray(array[..., :3])
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt.upper(), quality=quality)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{fmt.lower()};base64,{encoded}"


def image_part(image, fmt: str = "jpeg") -> dict:
    """One OpenAI content part carrying an image."""
    return {"type": "image_url", "image_url": {"url": image_data_url(image, fmt)}}


def response_format_for(mode: str, schema: dict | None) -> dict | None:
    if mode == "json_schema" and schema is not None:
        return {"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": schema}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def retry_after_seconds(header: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta seconds or an HTTP date), else None."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """Chat completions against `options.base_url` with retries, format fallback and a disk cache."""

    def __init__(self, options: ClientOptions, sleep: Callable[[float], None] = time.sleep):
        self.options = options
        self.sleep = sleep
        self.cache = RequestCache(options.cache_dir) if options.cache_dir is not None else None
        self._format_floor = 0  # index into FORMAT_LADDER below which the server said no
        self._opener = urllib.request.build_opener(_SameOriginAuthRedirect(options.base_url))

    # ---- public API -------------------------------------------------------------------------
    def api_key(self) -> str | None:
        name = self.options.api_key_env.strip()
        if not name:
            return None
        problem = key_env_problem(name)
        if problem is not None:
            raise LLMError(f"api_key_env = {name!r}: {problem[0]}. Fix: {problem[1]}")
        value = os.environ.get(name)
        if not value:
            raise LLMError(f"api_key_env names the environment variable {name!r}, but it is not set: "
                           f"export {name}=<your key> before starting, or leave api_key_env empty")
        return value

    def chat_key(self, messages: list[dict], **settings) -> str:
        """The cache key chat() would use, without any network call (for IS_CHANGED)."""
        return request_key(self.options.base_url, self._payload(messages, **settings))

    def chat(self, messages: list[dict], *, temperature: float = 0.3, max_tokens: int = 2048,
             seed: int | None = None, schema: dict | None = None, structured: bool = True,
             use_cache: bool = True, validate: Callable[[str], object] | None = None) -> ChatReply:
        """Send one chat completion; `validate(content)` must accept a reply before it is cached."""
        settings = dict(temperature=temperature, max_tokens=max_tokens, seed=seed,
                        schema=schema, structured=structured)
        key = self.chat_key(messages, **settings)
        cached = self.cache.get(key) if (self.cache and use_cache) else None
        if cached is not None:
            return ChatReply(cached["content"], cached=True, response_format_used=cached.get("format", "none"))
        content, mode = self._complete_with_format_fallback(messages, settings)
        if validate is not None:
            validate(content)
        if self.cache and use_cache:
            self.cache.put(key, {"content": content, "format": mode, "model": self.options.model})
        return ChatReply(content, cached=False, response_format_used=mode)

    def list_models(self) -> list[str]:
        """Model ids from GET {base_url}/models."""
        body = self._request_with_retries("GET", "/models", None)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise LLMReplyError(f"GET {self.options.base_url}/models did not return a 'data' list")
        return [str(item.get("id")) for item in data if isinstance(item, dict) and item.get("id")]

    # ---- internals --------------------------------------------------------------------------
    def _payload(self, messages, *, temperature, max_tokens, seed, schema, structured) -> dict:
        payload = {"model": self.options.model, "messages": messages,
                   "temperature": float(temperature), "max_tokens": int(max_tokens)}
        if seed is not None:
            payload["seed"] = int(seed)
        payload["structured"] = schema if (structured and schema is not None) else None  # key only
        return payload

    def _modes(self, settings) -> tuple[str, ...]:
        if not settings["structured"] or settings["schema"] is None:
            return ("none",)
        return FORMAT_LADDER[self._format_floor:]

    def _complete_with_format_fallback(self, messages, settings) -> tuple[str, str]:
        payload = self._payload(messages, **settings)
        payload.pop("structured")
        modes = self._modes(settings)
        for position, mode in enumerate(modes):
            response_format = response_format_for(mode, settings["schema"])
            body = dict(payload, response_format=response_format) if response_format else payload
            try:
                reply = self._request_with_retries("POST", "/chat/completions", body)
            except LLMHTTPError as error:
                last = position == len(modes) - 1
                if last or error.status not in FORMAT_REJECTED_STATUSES:
                    raise
                self._format_floor = FORMAT_LADDER.index(modes[position + 1])
                continue
            return self._content_of(reply), mode
        raise AssertionError("unreachable: the last format mode either returns or raises")

    def _content_of(self, reply) -> str:
        try:
            message = reply["choices"][0]["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError) as error:
            raise LLMReplyError(f"the server's reply has no choices[0].message: {str(reply)[:300]}") from error
        if isinstance(content, list):  # some servers return content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str) or not content.strip():
            raise LLMReplyError("the server replied with an empty message "
                                "(raise max_tokens if a reasoning model used them all)")
        return strip_thinking(content)

    def _headers(self, key: str | None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = retry_after if retry_after is not None else self.options.backoff_s * (2 ** attempt)
        return min(delay, self.options.max_backoff_s)

    def _request_with_retries(self, method: str, path: str, body: dict | None):
        url = self.options.base_url + path
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        key = self.api_key()
        secrets = (key,) if key else ()
        headers = self._headers(key)
        attempts = self.options.max_retries + 1
        try:
            for attempt in range(attempts):
                try:
                    return self._request_once(method, url, data, headers, secrets)
                except _Retryable as error:
                    if attempt == attempts - 1:
                        raise error.final(url, attempts) from None
                    self.sleep(self._backoff(attempt, error.retry_after))
        except LLMError as error:  # last line of defence: no key value in any message we raise
            error.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
            if isinstance(error, LLMHTTPError):
                error.body = redact(error.body, secrets)
            raise
        raise AssertionError("unreachable")

    def _request_once(self, method: str, url: str, data: bytes | None, headers: dict, secrets=()):
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.options.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            text = redact(_read_error_body(error), secrets)
            if error.code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {error.code}: {text[:200]}",
                                 retry_after_seconds(error.headers.get("Retry-After")), error.code) from None
            raise LLMHTTPError(error.code, url, text) from None
        except TimeoutError as error:
            raise _Retryable(f"no reply within timeout_s={self.options.timeout_s} s ({error})") from None
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"no reply within timeout_s={self.options.timeout_s} s") from None
            raise _Retryable(redact(f"connection failed: {reason}", secrets)) from None
        for secret in secrets:
            raw = raw.replace(secret.encode("utf-8"), REDACTED.encode("ascii"))
        try:
            return _redact_json(json.loads(raw.decode("utf-8")), secrets)  # escaped forms too
        except (UnicodeDecodeError, ValueError):
            raise LLMReplyError(f"{url} returned a body that is not JSON: {raw[:200]!r}") from None


class _Retryable(Exception):
    def __init__(self, problem: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(problem)
        self.problem, self.retry_after, self.status = problem, retry_after, status

    def final(self, url: str, attempts: int) -> LLMError:
        if self.status is not None:
            return LLMHTTPError(self.status, url, f"{self.problem} (still failing after {attempts} attempt(s))")
        return LLMConnectionError(f"{url} failed after {attempts} attempt(s): {self.problem}. Check base_url and that the server is running, "
                                  "or raise timeout_s / max_retries")


def _read_error_body(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode("utf-8", "replace")
    except OSError:
        return ""
