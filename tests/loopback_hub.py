"""A Hugging Face Hub on the loopback interface, for the download tests (HF_ENDPOINT points at it).

It answers the requests huggingface_hub's download path makes, the way the Hub answers them for a
file stored with Git LFS:

- HEAD or GET `/{repo}/resolve/{revision}/{path}` on the hub address (127.0.0.1): 302 to the file's
  blob on a storage address, with `X-Repo-Commit`, `X-Linked-Etag` (the file's SHA-256, quoted),
  `X-Linked-Size` and `ETag`; 404 with `X-Error-Code: EntryNotFound` for an unknown file;
- GET `/blobs/{sha256}` on the storage address (127.0.0.2, another host, as the Hub's CDN is, so the
  client takes the metadata from the 302 and does not follow it with its HEAD): the bytes, or with
  `Range: bytes=N-` the rest from N (206 and `Content-Range`).

Every request is recorded (method, path, Range header), and in `authorization` (address, path,
Authorization header) to see where a token went. `published` can announce a SHA-256 other than the
content's, to see that a client refuses the file; `announce=False` sends no X-Linked-Etag (only a
plain ETag that is not a SHA-256), as a server that publishes no hash; `cut_after` hangs up in the
middle of the file's body, as a dropped connection does.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HUB_HOST, STORAGE_HOST = "127.0.0.1", "127.0.0.2"


@dataclass
class HubFile:
    content: bytes
    published: str | None = None     # the SHA-256 the hub announces (default: the content's)
    announce: bool = True            # False: no X-Linked-Etag at all
    cut_after: int | None = None     # close the connection after this many bytes of a body (a broken download)

    @property
    def sha256(self) -> str:
        return self.published or hashlib.sha256(self.content).hexdigest()


@dataclass
class LoopbackHub:
    files: dict[str, HubFile]             # "repo/path" -> file
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    authorization: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __post_init__(self):
        handler = _handler(self)
        self._servers = [ThreadingHTTPServer((host, 0), handler) for host in (HUB_HOST, STORAGE_HOST)]
        self.port = self._servers[0].server_address[1]
        self.storage_port = self._servers[1].server_address[1]
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]

    @property
    def endpoint(self) -> str:
        return f"http://{HUB_HOST}:{self.port}"

    def blob(self, sha: str) -> bytes | None:
        return next((f.content for f in self.files.values() if hashlib.sha256(f.content).hexdigest() == sha
                     or f.sha256 == sha), None)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _handler(hub: LoopbackHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):   # keep the test output quiet
            pass

        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

        def _answer(self, body: bool):
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            hub.authorization.append((self.server.server_address[0], self.path, self.headers.get("Authorization")))
            if "/resolve/" in self.path:
                self._resolve()
            elif self.path.startswith("/blobs/"):
                self._blob(self.path.split("?")[0][len("/blobs/"):], body)
            else:
                self.send_error(404)

        def _resolve(self):
            repo, _, rest = self.path.split("?")[0].lstrip("/").partition("/resolve/")
            _, _, path = rest.partition("/")
            hub_file = hub.files.get(f"{repo}/{path}")
            if hub_file is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(302)
            self.send_header("Location", f"http://{STORAGE_HOST}:{hub.storage_port}/blobs/{hub_file.sha256}")
            self.send_header("X-Repo-Commit", COMMIT)
            if hub_file.announce:
                self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
            self.send_header("X-Linked-Size", str(len(hub_file.content)))
            self.send_header("ETag", '"1a2b3c"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _blob(self, sha: str, body: bool):
            content = hub.blob(sha)
            cut_after = next((f.cut_after for f in hub.files.values() if f.sha256 == sha), None)
            if content is None:
                self.send_error(404)
                return
            start = 0
            range_header = self.headers.get("Range")
            if range_header and range_header.startswith("bytes="):
                start = int(range_header[len("bytes="):].split("-")[0])
            if start:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(content) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if body and cut_after is not None:
                self.wfile.write(content[start:start + cut_after])   # then hang up mid-body
                self.wfile.flush()
                self.close_connection = True
            elif body:
                self.wfile.write(content[start:])

    return Handler
