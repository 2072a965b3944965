"""Download model files from the Hugging Face Hub: progress bar, resume across runs, checksum.

Built on huggingface_hub's own pieces: `hf_hub_url` (honours HF_ENDPOINT), `get_hf_file_metadata`
(one HEAD request: size, commit, download location, and the ETag, which for a file stored with Git
LFS, as every model file is, is the SHA-256 of its content, from the `X-Linked-Etag` header) and
`http_get` (streams with a tqdm progress bar, sends `Range` to continue, checks the size).
`hf_hub_download` itself is not used: the huggingface_hub 2.x that transformers brings (2.4 here)
writes to a temporary file it deletes when the process stops, so a 10 GB file broken off at 90 %
starts again from zero, and it checks only the size of what it downloaded, not its hash. Here the partial file stays beside the target as `NAME.<etag>.part` until it is
complete, a later run continues it, and the finished file is compared with the published SHA-256
before it takes its name; a mismatch deletes it and fails.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SHA256_RE = re.compile(r"[0-9a-f]{64}")
CHUNK = 8 * 1024 * 1024


class ChecksumError(RuntimeError):
    pass


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


def download(repo: str, path: str, target: Path, endpoint: str | None = None) -> Path:
    """Fetch `path` of the model repository `repo` (revision main) to `target`; returns `target`.

    endpoint: the Hub's address (default: HF_ENDPOINT, else https://huggingface.co)."""
    huggingface_hub, http_get, build_hf_headers = _hub()
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    headers = build_hf_headers()
    url = huggingface_hub.hf_hub_url(repo, path, revision="main", endpoint=endpoint)
    meta = huggingface_hub.get_hf_file_metadata(url, headers=headers)
    expected = meta.etag if meta.etag and SHA256_RE.fullmatch(meta.etag) else None
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target, meta.etag)
    for stale in target.parent.glob(f"{target.name}.*.part"):
        if stale != part:
            stale.unlink()   # a partial download of another version of the file
    done = part.stat().st_size if part.exists() else 0
    if meta.size is not None and done > meta.size:
        part.unlink()
        done = 0
    with open(part, "ab") as handle:
        http_get(meta.location, handle, resume_size=done, headers=headers, expected_size=meta.size,
                 displayed_filename=target.name)
    if expected is not None:
        actual = sha256_of(part)
        if actual != expected:
            part.unlink()
            raise ChecksumError(f"{target.name}: the downloaded file's SHA-256 is {actual}, but the Hub publishes "
                                f"{expected} for {repo}/{path}; the file was deleted, run again to download it anew")
    os.replace(part, target)
    return target
