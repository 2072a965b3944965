"""Every node: DESCRIPTION, category under FrameLevel/, a tooltip on every input; frame-text packing."""

import comfyui_framelevel
import pytest
import torch
from comfyui_framelevel.nodes.core.frame_text import FrameText, frame_text_from_schedule, pack_frame_text
from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule


@pytest.mark.parametrize("name", sorted(comfyui_framelevel.NODE_CLASS_MAPPINGS))
def test_node_contract(name):
    cls = comfyui_framelevel.NODE_CLASS_MAPPINGS[name]
    assert name in comfyui_framelevel.NODE_DISPLAY_NAME_MAPPINGS
    assert len(cls.DESCRIPTION) > 40
    assert cls.CATEGORY.startswith("FrameLevel/")
    assert callable(getattr(cls, cls.FUNCTION))
    inputs = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for input_name, spec in inputs.get(section, {}).items():
            assert len(spec) == 2 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert len(getattr(cls, "OUTPUT_TOOLTIPS", ())) == len(cls.RETURN_TYPES)


def test_import_is_light():
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, 'tests'); import conftest, comfyui_framelevel; "
            "heavy = [m for m in ('comfy', 'triton', 'transformers', 'accelerate') if m in sys.modules]; "
            "print(len(comfyui_framelevel.NODE_CLASS_MAPPINGS), heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(comfyui_framelevel.__path__[0]))
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_each_distinct_prompt_encoded_once():
    schedule = compile_prompt_schedule('{"1": "a", "3": "b", "5": "a again", "7": "b"}', length=9, unit="latent")
    calls = []

    def encode(prompt):
        calls.append(prompt)
        return torch.full((4, 3), float(len(calls)))

    frame_text = frame_text_from_schedule(schedule, encode)
    assert sorted(calls) == ["a", "a again", "b"]
    assert frame_text.index == (0, 0, 1, 1, 2, 2, 1, 1, 1)


def test_schedule_node_dedupes_prompts_and_previews_its_length():
    # Encoding each distinct prompt once through a real CLIP: tests/test_comfyui_text_encode.py.
    from comfyui_framelevel.nodes.prompt_nodes import FrameLevelPromptSchedule
    schedule, preview = FrameLevelPromptSchedule().compile("x\ny\nx", 5, "latent", format="lines")
    assert "3 latent frames" not in preview and "5 latent frames" in preview
    assert schedule.unique == ("x", "y")


def test_pack_frame_text_shares_contexts_between_rows_and_windows():
    a, b = torch.ones(3, 2), torch.full((3, 2), 2.0)
    cond = FrameText((a, b), (0, 0, 1, 1))
    uncond = FrameText.single(b, 4)
    packed = pack_frame_text([cond, uncond], [1, 2, 3])
    assert packed.num_segments == 2                      # b is packed once for both rows
    assert packed.frame_prompt.tolist() == [[0, 1, 1], [1, 1, 1]]
