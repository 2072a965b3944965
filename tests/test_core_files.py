"""The one atomic-write helper: all or nothing, no temporary file left behind."""

from __future__ import annotations

import pytest
import torch
from comfyui_framelevel.nodes.core import files


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "state.json"
    files.write_json_atomic(target, {"step": 3})
    files.write_text_atomic(target, '{"step": 4}')
    assert target.read_text() == '{"step": 4}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="encoder died"):
        with files.atomic_path(target) as temp:
            assert temp.suffix == ".mp4" and temp.parent == tmp_path   # same folder, format by extension
            temp.write_text("half a vid")
            raise RuntimeError("encoder died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_safetensors_round_trip_with_metadata(tmp_path):
    from safetensors import safe_open
    tensor = torch.arange(6.0).reshape(2, 3).t()   # not contiguous
    path = files.save_safetensors_atomic({"latent": tensor}, tmp_path / "a.safetensors", {"frames": 5, "k": "v"})
    with safe_open(str(path), "pt") as handle:
        assert torch.equal(handle.get_tensor("latent"), tensor)
        assert handle.metadata() == {"frames": "5", "k": "v"}
