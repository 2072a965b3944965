"""`run_workflow.py --download` against a Hugging Face Hub on the loopback interface (HF_ENDPOINT):
a fresh download, a resumed one, a refused checksum, and the workflow runner fetching what it lacks."""

import hashlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import hub_download  # noqa: E402
import model_files  # noqa: E402
import run_workflow  # noqa: E402
from loopback_hub import HubFile, LoopbackHub  # noqa: E402

pytest.importorskip("huggingface_hub")
REPO, PATH = "Comfy-Org/Wan_2.1_ComfyUI_repackaged", "split_files/vae/wan_2.1_vae.safetensors"
CONTENT = os.urandom(300_000)


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def blob_requests(hub):
    return [(method, rng) for method, path, rng in hub.requests if path.startswith("/blobs/")]


def test_fresh_download_lands_complete_and_leaves_no_part(tmp_path):
    target = tmp_path / "vae" / "wan_2.1_vae.safetensors"
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT)}) as hub:
        assert hub_download.download(REPO, PATH, target, endpoint=hub.endpoint) == target
    assert target.read_bytes() == CONTENT
    assert list(target.parent.glob("*.part")) == []
    assert ("HEAD", f"/{REPO}/resolve/main/{PATH}", None) in hub.requests
    assert blob_requests(hub) == [("GET", None)]


def test_partial_file_is_continued_with_a_range_request(tmp_path):
    target = tmp_path / "wan_2.1_vae.safetensors"
    sha = hashlib.sha256(CONTENT).hexdigest()
    part = hub_download.part_path(target, sha)
    part.write_bytes(CONTENT[:123_456])             # what an interrupted run left
    stale = target.with_name(target.name + ".0000000000000000.part")
    stale.write_bytes(b"another version")          # an unfinished download of an older file version
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT)}) as hub:
        hub_download.download(REPO, PATH, target, endpoint=hub.endpoint)
    assert blob_requests(hub) == [("GET", "bytes=123456-")]
    assert target.read_bytes() == CONTENT
    assert not part.exists() and not stale.exists()


def test_checksum_mismatch_is_refused_and_nothing_is_kept(tmp_path):
    target = tmp_path / "wan_2.1_vae.safetensors"
    published = hashlib.sha256(b"the file the hub announces").hexdigest()
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT, published=published)}) as hub:
        with pytest.raises(hub_download.ChecksumError, match=published):
            hub_download.download(REPO, PATH, target, endpoint=hub.endpoint)
    assert not target.exists() and list(tmp_path.glob("*.part")) == []


def test_runner_downloads_the_missing_models_of_a_workflow(tmp_path, monkeypatch, capsys):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text("")
    workflow = run_workflow.workflow_path(Path("frame_prompts_t2v"))
    names = ["wan2.1_t2v_1.3B_fp16.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors"]
    contents = {name: os.urandom(50_000 + i) for i, name in enumerate(names)}
    files = {f"{model_files.MODEL_FILES[n].repo}/{model_files.MODEL_FILES[n].path}": HubFile(c)
             for n, c in contents.items()}
    (comfy / "models" / "vae").mkdir(parents=True)
    (comfy / "models" / "vae" / "wan_2.1_vae.safetensors").write_bytes(contents["wan_2.1_vae.safetensors"])
    with LoopbackHub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code = run_workflow.main(["--comfyui", str(comfy), str(workflow), "--download", "--check-only"])
    assert code == 0, capsys.readouterr().err
    assert (comfy / "models/diffusion_models" / names[0]).read_bytes() == contents[names[0]]
    assert (comfy / "models/text_encoders" / names[1]).read_bytes() == contents[names[1]]
    # the file already present is not fetched again
    assert not any("wan_2.1_vae" in path for _, path, _ in hub.requests)
    assert "all model files present" in capsys.readouterr().out
