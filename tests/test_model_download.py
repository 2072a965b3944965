"""`run_workflow.py --download` against a Hugging Face Hub on the loopback interface (HF_ENDPOINT):
a fresh download, a resumed one, a refused checksum, and the workflow runner fetching what it lacks."""

import dataclasses
import hashlib
import json
import os
import re
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
TOKEN = "hf_loopbackTestToken0123456789"


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


def pin_test_content(monkeypatch, contents: dict[str, bytes]) -> None:
    """Pin the table's entries to the test's own bytes (the real pins are the real files' hashes)."""
    for name, content in contents.items():
        pinned = dataclasses.replace(model_files.MODEL_FILES[name], sha256=hashlib.sha256(content).hexdigest())
        monkeypatch.setitem(model_files.MODEL_FILES, name, pinned)


def fake_comfyui(tmp_path: Path) -> Path:
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text("")
    return comfy


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
    comfy = fake_comfyui(tmp_path)
    workflow = run_workflow.workflow_path(Path("frame_prompts_t2v"))
    names = ["wan2.1_t2v_1.3B_fp16.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors"]
    contents = {name: os.urandom(50_000 + i) for i, name in enumerate(names)}
    pin_test_content(monkeypatch, contents)
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


# ---- trust: pinned hashes, where the token goes, hostile workflows --------------------------------
def test_the_token_goes_to_the_hub_but_never_to_the_storage_host(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    target = tmp_path / "wan_2.1_vae.safetensors"
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT)}) as hub:
        hub_download.download(REPO, PATH, target, endpoint=hub.endpoint)
    assert target.read_bytes() == CONTENT
    on_hub = [auth for host, path, auth in hub.authorization if host == "127.0.0.1"]
    on_storage = [(path, auth) for host, path, auth in hub.authorization if host == "127.0.0.2"]
    assert on_hub and all(auth == f"Bearer {TOKEN}" for auth in on_hub)   # the token was in use
    assert on_storage and all(auth is None for _, auth in on_storage)


def test_a_pinned_hash_the_hub_contradicts_is_refused_before_downloading(tmp_path):
    target = tmp_path / "wan_2.1_vae.safetensors"
    pinned = hashlib.sha256(b"the real file").hexdigest()
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT)}) as hub:
        with pytest.raises(hub_download.ChecksumError, match=f"pins {pinned}.*Nothing was downloaded"):
            hub_download.download(REPO, PATH, target, endpoint=hub.endpoint, sha256=pinned)
    assert blob_requests(hub) == [] and list(tmp_path.iterdir()) == []


def test_a_pinned_hash_catches_wrong_bytes_even_when_the_hub_agrees_with_the_pin(tmp_path):
    target = tmp_path / "wan_2.1_vae.safetensors"
    pinned = hashlib.sha256(b"the real file").hexdigest()
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT, published=pinned)}) as hub:  # serves other bytes
        with pytest.raises(hub_download.ChecksumError, match=f"model_files.py pins {pinned}"):
            hub_download.download(REPO, PATH, target, endpoint=hub.endpoint, sha256=pinned)
    assert not target.exists() and list(tmp_path.glob("*.part")) == []


def test_a_pinned_file_downloads_when_the_hub_announces_no_hash(tmp_path):
    target = tmp_path / "wan_2.1_vae.safetensors"
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT, announce=False)}) as hub:
        hub_download.download(REPO, PATH, target, endpoint=hub.endpoint,
                              sha256=hashlib.sha256(CONTENT).hexdigest())
    assert target.read_bytes() == CONTENT


def test_no_pin_and_no_hash_from_the_hub_is_refused_not_accepted_unchecked(tmp_path):
    target = tmp_path / "wan_2.1_vae.safetensors"
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT, announce=False)}) as hub:
        with pytest.raises(hub_download.ChecksumError, match="no SHA-256 is pinned.*announced none"):
            hub_download.download(REPO, PATH, target, endpoint=hub.endpoint)
    assert blob_requests(hub) == [] and list(tmp_path.iterdir()) == []


def test_the_table_pins_are_sha256_and_stay_out_of_the_frontend_metadata():
    pinned = {name: f.sha256 for name, f in model_files.MODEL_FILES.items() if f.sha256}
    assert len(pinned) >= 8 and all(hub_download.SHA256_RE.fullmatch(sha) for sha in pinned.values())
    assert pinned["wan2.1_t2v_1.3B_fp16.safetensors"].startswith("be531024")
    assert all(set(f.metadata()) == {"name", "url", "directory"} for f in model_files.MODEL_FILES.values())


def test_the_runner_refuses_a_download_whose_pin_does_not_match(tmp_path, monkeypatch, capsys):
    comfy = fake_comfyui(tmp_path)
    name = "wan2.1_t2v_1.3B_fp16.safetensors"
    model = model_files.MODEL_FILES[name]
    others = {"umt5_xxl_fp8_e4m3fn_scaled.safetensors": "text_encoders", "wan_2.1_vae.safetensors": "vae"}
    for other, folder in others.items():
        (comfy / "models" / folder).mkdir(parents=True)
        (comfy / "models" / folder / other).write_bytes(b"present")
    with LoopbackHub({f"{model.repo}/{model.path}": HubFile(CONTENT)}) as hub:   # real pin, other bytes
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code = run_workflow.main(["--comfyui", str(comfy), "frame_prompts_t2v", "--download", "--check-only"])
    err = capsys.readouterr().err
    assert code == 1 and "error: download failed" in err and model.sha256 in err and "Traceback" not in err
    assert not (comfy / "models" / "diffusion_models" / name).exists()


def test_a_ui_format_workflow_gets_a_clear_error_before_anything_is_linked(tmp_path, capsys):
    comfy = fake_comfyui(tmp_path)
    ui_file = ROOT / "workflows" / "frame_prompts_t2v.json"
    assert isinstance(json.loads(ui_file.read_text()).get("nodes"), list)
    code = run_workflow.main(["--comfyui", str(comfy), str(ui_file), "--download", "--check-only"])
    err = capsys.readouterr().err
    assert code == 2 and "UI-format workflow" in err and "Export (API)" in err
    assert not (comfy / "custom_nodes").exists() and not (comfy / "models").exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "wan/../../../secret.safetensors",
                                  "..\\..\\boot.ini"])
def test_check_only_refuses_files_outside_the_model_folders(name, tmp_path, monkeypatch, capsys):
    comfy = fake_comfyui(tmp_path)
    workflow = json.loads(run_workflow.workflow_path(Path("frame_prompts_t2v")).read_text())
    vae_node = next(node_id for node_id, node in workflow.items() if node["class_type"] == "VAELoader")
    workflow[vae_node]["inputs"]["vae_name"] = name
    path = tmp_path / "hostile.api.json"
    path.write_text(json.dumps(workflow))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # never contacted: refused first
    code = run_workflow.main(["--comfyui", str(comfy), str(path), "--download", "--check-only"])
    err = capsys.readouterr().err
    assert code == 2 and f"node {vae_node} VAELoader.vae_name = {name!r}" in err and "Fix:" in err
    assert not (comfy / "custom_nodes").exists() and not (comfy / "models").exists()
    assert all(line.startswith("  - ") or "outside ComfyUI's model folders" in line for line in err.splitlines())


# ---- errors that say what to do: the file, the host, the fix; never a traceback ----------------------
VAE = "wan_2.1_vae.safetensors"


def run_check_only(comfy: Path, capsys) -> tuple[int, str]:
    """run_workflow --download --check-only on frame_prompts_t2v with only the VAE missing."""
    for name, folder in (("wan2.1_t2v_1.3B_fp16.safetensors", "diffusion_models"),
                         ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders")):
        (comfy / "models" / folder).mkdir(parents=True, exist_ok=True)
        (comfy / "models" / folder / name).write_bytes(b"present")
    code = run_workflow.main(["--comfyui", str(comfy), "frame_prompts_t2v", "--download", "--check-only"])
    return code, capsys.readouterr().err


def assert_explained(err: str, *needles: str) -> None:
    assert "Traceback" not in err and "error: download failed" in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 3 and "Fix:" in err, err      # the error, its fix (and a progress bar line at most)
    for needle in needles:
        assert needle in err, (needle, err)


def test_an_unreachable_hub_names_the_host_and_hf_endpoint(tmp_path, monkeypatch, capsys):
    closed = run_workflow.free_port()   # nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    code, err = run_check_only(fake_comfyui(tmp_path), capsys)
    assert code == 1
    assert_explained(err, VAE, f"127.0.0.1:{closed} cannot be reached", "HF_ENDPOINT",
                     f"download {model_files.MODEL_FILES[VAE].url} by hand into {tmp_path / 'ComfyUI/models/vae'}")


def test_a_file_the_hub_lacks_says_404_and_names_the_mirror(tmp_path, monkeypatch, capsys):
    with LoopbackHub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code, err = run_check_only(fake_comfyui(tmp_path), capsys)
    assert code == 1
    assert_explained(err, VAE, f"127.0.0.1:{hub.port} has no {REPO}/{PATH} (HTTP 404)",
                     f"HF_ENDPOINT={hub.endpoint} may not mirror", model_files.MODEL_FILES[VAE].url)


def test_a_connection_closed_mid_file_keeps_the_part_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    comfy = fake_comfyui(tmp_path)
    pin_test_content(monkeypatch, {VAE: CONTENT})
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT, cut_after=100_000)}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code, err = run_check_only(comfy, capsys)
    assert code == 1
    assert_explained(err, f"the download of {VAE} from 127.0.0.2:{hub.storage_port} broke off",
                     "run the same command again: the download resumes from")
    target = comfy / "models" / "vae" / VAE
    assert not target.exists() and len(list(target.parent.glob("*.part"))) == 1
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT)}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code, err = run_check_only(comfy, capsys)
    assert code == 0, err
    assert target.read_bytes() == CONTENT and list(target.parent.glob("*.part")) == []


def test_a_full_disk_says_how_much_to_free_and_keeps_the_part(tmp_path, monkeypatch):
    import errno

    huggingface_hub, _, build_hf_headers = hub_download._hub()

    def http_get_filling_the_disk(url, handle, **kwargs):
        handle.write(CONTENT[:100_000])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hub_download, "_hub", lambda: (huggingface_hub, http_get_filling_the_disk, build_hf_headers))
    target = tmp_path / VAE
    with LoopbackHub({f"{REPO}/{PATH}": HubFile(CONTENT)}) as hub:
        with pytest.raises(hub_download.DownloadError) as raised:
            hub_download.download(REPO, PATH, target, endpoint=hub.endpoint)
    message = str(raised.value)
    assert f"the disk holding {tmp_path} is full (100 kB of 300 kB written)" in message, message
    assert "free at least 200 kB there, then run the same command again" in message and VAE in message
    assert len(message.splitlines()) == 2 and len(list(tmp_path.glob("*.part"))) == 1


def test_without_huggingface_hub_the_runner_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)   # import fails
    code, err = run_check_only(fake_comfyui(tmp_path), capsys)
    assert code == 1
    assert_explained(err, "needs the Python package huggingface_hub", "pip install huggingface_hub")


def test_ctrl_c_during_a_download_says_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(run_workflow, "download_missing", interrupted)
    code, err = run_check_only(fake_comfyui(tmp_path), capsys)
    assert code == 130 and "download interrupted" in err and "resumes" in err and "Traceback" not in err


def test_the_missing_files_list_gives_sizes_or_says_size_unknown(tmp_path, capsys):
    comfy = fake_comfyui(tmp_path)
    code = run_workflow.main(["--comfyui", str(comfy), "frame_prompts_t2v", "--check-only"])
    err = capsys.readouterr().err
    assert code == 2
    assert "wan2.1_t2v_1.3B_fp16.safetensors (Wan diffusion model" in err and "2.84 GB" in err
    assert "6.74 GB" in err and "254 MB" in err and model_files.MODEL_FILES[VAE].url in err
    sizes = {name: f.size for name, f in model_files.MODEL_FILES.items()}
    assert all(size is None or re.fullmatch(r"\d+(\.\d+)? [GM]B", size) for size in sizes.values()), sizes
    assert model_files.MODEL_FILES["clip_vision_h.safetensors"].size_text == "size unknown"
