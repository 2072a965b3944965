"""Download model files from the Hugging Face Hub: progress bar, resume across runs, checksum.

Built on huggingface_hub's own pieces: `hf_hub_url` (honours HF_ENDPOINT), `get_hf_file_metadata`
(one HEAD request: size, commit, download location, and the ETag, which for a file stored with Git
LFS, as every model file is, is the SHA-256 of its content, from the `X-Linked-Etag` header) and
`http_get` (streams with a tqdm progress bar, sends `Range` to continue, checks the size).
`hf_hub_download` itself is not used: the huggingface_hub 2.x that transformers brings (2.4 here)
writes to a temporary file it deletes when the process stops, so a 10 GB file broken off at 90 %
starts again from zero, and it checks only the size of what it downloaded, not its hash. Here the partial file stays beside the target as `NAME.<etag>.part` until it is
complete, a later run continues it, and the finished file is compared with the expected SHA-256
before it takes its name; a mismatch deletes it and fails.

What is trusted: the expected SHA-256 is the one pinned in model_files.py when there is one (a Hub
announcing another hash is refused before anything is downloaded); without a pin, the SHA-256 the
Hub announces in X-Linked-Etag, and a file for which the Hub announces none is refused (never
accepted unchecked). The token (HF_TOKEN, or a login) goes to the Hub only: the download from the
storage host the Hub redirects to (another origin, as huggingface_hub's own downloader does it) is
made without Authorization.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from pathlib import Path

SHA256_RE = re.compile(r"[0-9a-f]{64}")
CHUNK = 8 * 1024 * 1024


class ChecksumError(RuntimeError):
    pass


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port), the default port filled in: the only place a token may be sent."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def headers_for(url: str, hub_url: str, headers: dict) -> dict:
    """`headers` for a request to `url`, without Authorization when `url` is not on the Hub's origin."""
    if origin(url) == origin(hub_url):
        return dict(headers)
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


def expected_sha256(repo: str, path: str, pinned: str | None, announced: str | None) -> str:
    """The SHA-256 the downloaded file must have, or ChecksumError before anything is downloaded."""
    announced = announced if announced and SHA256_RE.fullmatch(announced) else None
    if pinned is not None:
        pinned = pinned.lower()
        if not SHA256_RE.fullmatch(pinned):
            raise ChecksumError(f"{repo}/{path}: the pinned sha256 {pinned!r} in tools/model_files.py is not a "
                                "SHA-256 (64 hex digits); fix the table")
        if announced is not None and announced != pinned:
            raise ChecksumError(f"{repo}/{path}: the Hub announces SHA-256 {announced}, but tools/model_files.py "
                                f"pins {pinned}; the file was changed upstream or the Hub address (HF_ENDPOINT) is "
                                "not the real Hub. Nothing was downloaded; check the file and update the pin")
        return pinned
    if announced is None:
        raise ChecksumError(f"{repo}/{path}: no SHA-256 is pinned in tools/model_files.py and the Hub announced "
                            "none (no X-Linked-Etag), so the file could not be checked and was not downloaded; "
                            "pin its SHA-256 (the \"SHA256:\" on its Hugging Face file page) in MODEL_FILES")
    return announced


def _hub():
    try:
        import huggingface_hub
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("--download needs the Python package huggingface_hub (pip install huggingface_hub; "
                           "it comes with transformers)") from err
    return huggingface_hub, http_get, build_hf_headers


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def part_path(target: Path, etag: str | None) -> Path:
    """Where the unfinished download of `target` lives: tied to the file version (ETag) it continues."""
    tag = re.sub(r"[^0-9A-Za-z]", "", etag or "")[:16] or "unversioned"
    return target.with_name(f"{target.name}.{tag}.part")


def download(repo: str, path: str, target: Path, endpoint: str | None = None, sha256: str | None = None) -> Path:
    """Fetch `path` of the model repository `repo` (revision main) to `target`; returns `target`.

    endpoint: the Hub's address (default: HF_ENDPOINT, else https://huggingface.co).
    sha256: the pinned SHA-256 of the content (model_files.py); None trusts the Hub's X-Linked-Etag."""
    huggingface_hub, http_get, build_hf_headers = _hub()
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    headers = build_hf_headers()
    url = huggingface_hub.hf_hub_url(repo, path, revision="main", endpoint=endpoint)
    meta = huggingface_hub.get_hf_file_metadata(url, headers=headers)   # HEAD on the Hub; no cross-host hop
    expected = expected_sha256(repo, path, sha256, meta.etag)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target, expected)
    for stale in target.parent.glob(f"{target.name}.*.part"):
        if stale != part:
            stale.unlink()   # a partial download of another version of the file
    done = part.stat().st_size if part.exists() else 0
    if meta.size is not None and done > meta.size:
        part.unlink()
        done = 0
    with open(part, "ab") as handle:
        http_get(meta.location, handle, resume_size=done, headers=headers_for(meta.location, url, headers),
                 expected_size=meta.size, displayed_filename=target.name)
    actual = sha256_of(part)
    if actual != expected:
        part.unlink()
        source = "tools/model_files.py pins" if sha256 is not None else "the Hub publishes"
        raise ChecksumError(f"{target.name}: the downloaded file's SHA-256 is {actual}, but {source} "
                            f"{expected} for {repo}/{path}; the file was deleted, run again to download it anew")
    os.replace(part, target)
    return target
