"""Helpers for the story tests: a scripted OpenAI-compatible server on loopback, and a launcher
that runs the pack's CLIs in a subprocess the way ComfyUI loads the pack (as a package under its
own name, never with the repository root on sys.path).

Run as a script: ``python tests/story_helpers.py <module> [args...]`` imports the pack and runs
``comfyui_framelevel.<module>`` as __main__.
"""

from __future__ import annotations

import json
import runpy
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import PACKAGE, load_pack  # noqa: E402  (one loader for tests and subprocesses)


def cli_command(module: str, *args: str) -> list[str]:
    """argv that runs `comfyui_framelevel.<module>` as a program in a fresh interpreter."""
    return [sys.executable, str(Path(__file__).resolve()), module, *map(str, args)]


@dataclass
class Reply:
    """One scripted answer: an HTTP status, a body (dict -> JSON, str -> raw), headers, a delay."""

    body: object = None
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0


def chat_body(content: str) -> dict:
    """A chat completion whose assistant message is `content`."""
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}]}


def frames_json(count: int, text: str = "wide shot, eye level, the same red fox walks, moment") -> str:
    return json.dumps({str(i): f"{text} {i}" for i in range(1, count + 1)})


class ScriptedServer:
    """ThreadingHTTPServer on `host` (a loopback address, default 127.0.0.1) with an ephemeral port.

    `script` is a list of Reply (used in order, the last one repeats) or a callable
    (request dict -> Reply). Every request is recorded in `requests` as {path, headers, body}.
    """

    def __init__(self, script, host: str = "127.0.0.1"):
        self.script = script
        self.host = host
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = {"path": self.path, "method": self.command, "headers": dict(self.headers),
                           "body": json.loads(raw) if raw else None}
                reply = server._next(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body if isinstance(reply.body, (str, bytes)) else json.dumps(reply.body)
                payload = payload.encode() if isinstance(payload, str) else payload
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _next(self, request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if callable(self.script):
                return self.script(request)
            index = min(len(self.requests) - 1, len(self.script) - 1)
            return self.script[index]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}/v1"

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _main(argv: list[str]) -> None:
    load_pack()
    module = f"{PACKAGE}.{argv[0]}"
    sys.argv = [module, *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    sys.path.remove(str(Path(__file__).resolve().parent))  # keep tests/ off the child's sys.path
    _main(sys.argv[1:])


def _byte_level_chars() -> list[str]:
    """The printable stand-in character of each byte used by byte-level BPE vocabularies."""
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    spare = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(spare)) for b in range(256)]


def save_tiny_clip(folder: Path, positive: bool = False) -> Path:
    """A randomly initialised, tiny transformers CLIP (character-level tokenizer) saved to `folder`.

    positive: every text and image embedding has only positive entries (final norms with a small gain
    and a bias above the largest normalised value, non-negative projections), so every cosine is > 0
    and the Confusion Degree is always defined."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_level_chars()
    vocab = {token: i for i, token in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    special = dict(eos_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|startoftext|>"],
                   pad_token_id=vocab["<|endoftext|>"])
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, **special),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    model = CLIPModel(config)
    if positive:
        with torch.no_grad():
            for norm in (model.text_model.final_layer_norm, model.vision_model.post_layernorm):
                norm.weight.fill_(0.5)  # |normalised| <= sqrt(32), so 0.5 * it + 3 > 0
                norm.bias.fill_(3.0)
            model.text_projection.weight.abs_()
            model.visual_projection.weight.abs_()
    model.save_pretrained(folder)
    return folder


def pattern_frame(seed: int, size: int = 32, brightness: int = 0):
    """A random 8x8 block pattern upscaled to size x size (distinct pHash per seed)."""
    import numpy as np

    blocks = np.random.default_rng(seed).integers(0, 200, size=(8, 8, 3), dtype=np.int64)
    image = np.repeat(np.repeat(blocks, size // 8, axis=0), size // 8, axis=1)
    return np.clip(image + brightness, 0, 255).astype(np.uint8)


def make_video(path: Path, seconds: float, fps: int = 24, seed: int = 0, brightness: int = 0,
               size: int = 32) -> Path:
    """An H.264 test video whose picture changes once per second (pattern seed*1000 + second)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for k in range(int(round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(pattern_frame(seed * 1000 + k // fps, size, brightness),
                                               format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def caption_server_script(delay_s: float = 0.0):
    """A scripted VLM: one numbered caption per image in the request (valid JSON)."""
    counter = iter(range(10**9))

    def script(request):
        content = request["body"]["messages"][1]["content"]
        images = sum(1 for part in content if part.get("type") == "image_url")
        captions = {str(i): f"wide shot, eye level, scene {next(counter)}" for i in range(1, images + 1)}
        return Reply(chat_body(json.dumps(captions)), delay_s=delay_s)
    return script
