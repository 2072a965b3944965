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

import errno
import hashlib
import os
import re
import socket
import sys
import urllib.parse
from pathlib import Path

SHA256_RE = re.compile(r"[0-9a-f]{64}")
CHUNK = 8 * 1024 * 1024
DEFAULT_ENDPOINT = "https://huggingface.co"


class ChecksumError(RuntimeError):
    pass


class DownloadError(RuntimeError):
    """A download that failed for a reason the user can act on: the message names the file, the host and
    the fix, in one or two lines (no traceback)."""


# -- failures explained ------------------------------------------------------------------------------
# huggingface_hub raises its own and its HTTP client's exceptions (httpx, vendored under another name in
# some releases), so they are told apart by class name and by the OSError inside them.
CONNECT_FAILURES = {"ConnectError", "ConnectTimeout", "ConnectionError", "NameResolutionError", "ProxyError"}
BROKEN_TRANSFERS = {"RemoteProtocolError", "ReadError", "ReadTimeout", "ChunkedEncodingError", "IncompleteRead",
                    "ProtocolError", "WriteError", "TimeoutException", "ConnectionResetError"}


def _causes(err: BaseException):
    """`err` and the exceptions it was raised from, outermost first."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _class_names(err: BaseException) -> set[str]:
    return {cls.__name__ for cause in _causes(err) for cls in type(cause).__mro__}


def is_disk_full(err: BaseException) -> bool:
    return any(isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT) for cause in _causes(err))


def is_unreachable(err: BaseException) -> bool:
    return bool(_class_names(err) & CONNECT_FAILURES) or any(
        isinstance(cause, (ConnectionRefusedError, socket.gaierror)) for cause in _causes(err))


def is_broken_transfer(err: BaseException) -> bool:
    return bool(_class_names(err) & BROKEN_TRANSFERS) or "Consistency check failed" in str(err)


def http_status(err: BaseException) -> int | None:
    for cause in _causes(err):
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


def human_size(size: int | None) -> str:
    if size is None:
        return "an unknown size"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def _reason(err: BaseException) -> str:
    innermost = list(_causes(err))[-1]
    return (str(innermost) or type(innermost).__name__).splitlines()[0][:200]


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def manual_url(repo: str, path: str) -> str:
    """The file on the real Hub, for a download by hand (whatever HF_ENDPOINT says)."""
    return f"{DEFAULT_ENDPOINT}/{repo}/resolve/main/{path}"


def explain_lookup_failure(err: BaseException, repo: str, path: str, target: Path, url: str, endpoint: str) -> str:
    """Why asking the Hub about the file failed, and what to do."""
    name, host = target.name, _host(url)
    by_hand = f"or download {manual_url(repo, path)} by hand into {target.parent}"
    mirror = endpoint.rstrip("/") != DEFAULT_ENDPOINT
    status = http_status(err)
    if "OfflineModeIsEnabled" in _class_names(err):
        return (f"could not download {name}: HF_HUB_OFFLINE is set, so nothing is fetched from {host}.\n"
                f"Fix: unset HF_HUB_OFFLINE, {by_hand}")
    if status == 404:
        fix = (f"HF_ENDPOINT={endpoint} may not mirror {repo}: unset HF_ENDPOINT or fix the mirror"
               if mirror else "the file may have moved upstream; check the repository page")
        return f"could not download {name}: {host} has no {repo}/{path} (HTTP 404).\nFix: {fix}, {by_hand}"
    if status in (401, 403):
        return (f"could not download {name}: {host} refused access to {repo}/{path} (HTTP {status}).\n"
                f"Fix: log in (set HF_TOKEN, or `hf auth login`), {by_hand}")
    if status is not None:
        return (f"could not download {name}: {host} answered HTTP {status} for {repo}/{path}.\n"
                f"Fix: run the same command again later, {by_hand}")
    if is_unreachable(err):
        where = f"HF_ENDPOINT is {endpoint}; check it, or unset it" if mirror else "set HF_ENDPOINT to a mirror"
        return (f"could not download {name}: {host} cannot be reached ({_reason(err)}).\n"
                f"Fix: check the network or proxy ({where}), {by_hand}")
    return (f"could not download {name} from {host}: {_reason(err)}.\n"
            f"Fix: run the same command again, {by_hand}")


def explain_transfer_failure(err: BaseException, repo: str, path: str, target: Path, location: str,
                             part: Path, size: int | None) -> str:
    """Why the transfer of the file's bytes stopped, and what to do; the partial file stays."""
    name, host = target.name, _host(location)
    done = part.stat().st_size if part.exists() else 0
    progress = f"{human_size(done)} of {human_size(size)}"
    resume = f"run the same command again: the download resumes from {part}"
    if is_disk_full(err):
        needed = f"at least {human_size(size - done)}" if size is not None else "space"
        return (f"could not download {name}: the disk holding {target.parent} is full ({progress} written).\n"
                f"Fix: free {needed} there, then {resume}")
    if is_broken_transfer(err) or is_unreachable(err):
        return (f"the download of {name} from {host} broke off at {progress} ({_reason(err)}).\n"
                f"Fix: {resume}")
    return (f"the download of {name} from {host} failed at {progress}: {_reason(err)}.\n"
            f"Fix: {resume}, or download {manual_url(repo, path)} by hand into {target.parent}")


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
        raise DownloadError(f"--download needs the Python package huggingface_hub, which {sys.executable} cannot "
                            "import.\nFix: pip install huggingface_hub (it comes with transformers) into that Python, "
                            "or download the files by hand (the list below names each folder and URL)") from err
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
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    headers = build_hf_headers()
    url = huggingface_hub.hf_hub_url(repo, path, revision="main", endpoint=endpoint)
    try:
        meta = huggingface_hub.get_hf_file_metadata(url, headers=headers)   # HEAD on the Hub; no cross-host hop
    except Exception as err:  # noqa: BLE001  (network and Hub errors: explained, see explain_lookup_failure)
        raise DownloadError(explain_lookup_failure(err, repo, path, target, url, endpoint)) from err
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
    try:
        with open(part, "ab") as handle:
            http_get(meta.location, handle, resume_size=done, headers=headers_for(meta.location, url, headers),
                     expected_size=meta.size, displayed_filename=target.name)
    except Exception as err:  # noqa: BLE001  (broken connection, full disk: explained, the part file stays)
        raise DownloadError(explain_transfer_failure(err, repo, path, target, meta.location, part, meta.size)) from err
    actual = sha256_of(part)
    if actual != expected:
        part.unlink()
        source = "tools/model_files.py pins" if sha256 is not None else "the Hub publishes"
        raise ChecksumError(f"{target.name}: the downloaded file's SHA-256 is {actual}, but {source} "
                            f"{expected} for {repo}/{path}; the file was deleted, run again to download it anew")
    os.replace(part, target)
    return target
