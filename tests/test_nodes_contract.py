"""Every node: DESCRIPTION, category under FrameLevel/, a tooltip on every input; frame-text packing."""

import inspect

FRAME_COUNTS = {"length", "window", "slide", "overlap", "causal_block_size"}   # inputs that count frames

import comfyui_framelevel
import pytest
import torch
from comfyui_framelevel.nodes.core.frame_text import FrameText, frame_text_from_schedule, pack_frame_text
from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule


@pytest.mark.parametrize("node_id", sorted(comfyui_framelevel.NODES_BY_ID))
def test_node_contract(node_id):
    """What every node promises a user: a description, a FrameLevel/ menu, a tooltip on every input
    and output, pixel or latent named where a number counts frames, and an execute that takes
    exactly the declared inputs (optional ones with a default)."""
    node = comfyui_framelevel.NODES_BY_ID[node_id]
    schema = node.schema()
    assert schema.node_id == node_id == node.__name__
    assert schema.display_name.startswith("Frame-Level ") and len(schema.description) > 40
    assert schema.category.startswith("FrameLevel/")
    for spec in schema.inputs:
        assert len(spec.tooltip) > 10, f"{node_id}.{spec.id} has no tooltip"
        if spec.io_type == "INT" and ("frame" in spec.id or spec.id in FRAME_COUNTS):
            assert "PIXEL" in spec.tooltip.upper() or "LATENT" in spec.tooltip.upper(), spec.id
    assert schema.outputs and all(len(out.tooltip) > 10 for out in schema.outputs)
    parameters = inspect.signature(node.execute).parameters
    declared = [spec.id for spec in schema.inputs]
    named = [name for name, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    takes_rest = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    assert named == declared[:len(named)] and (takes_rest or named == declared), (named, declared)
    for spec in schema.inputs:
        if spec.optional and spec.id in parameters:
            assert parameters[spec.id].default is not inspect.Parameter.empty, f"{spec.id} needs a default"


def test_v1_view_of_a_schema_keeps_order_defaults_and_widget_options():
    from comfyui_framelevel.nodes.prompt_nodes import FrameLevelPromptSchedule
    types = FrameLevelPromptSchedule.schema().v1_input_types()
    assert list(types["required"]) == ["text", "length", "length_unit"]
    assert list(types["optional"]) == ["format", "key_unit", "fps", "prefix", "suffix", "global_prompt"]
    assert types["required"]["length"] == ("INT", {"tooltip": types["required"]["length"][1]["tooltip"],
                                                   "min": 1, "max": 100000, "default": 81})
    assert types["optional"]["format"][0][0] == "auto" and types["required"]["text"][1]["multiline"] is True


def test_import_is_light():
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, 'tests'); import conftest, comfyui_framelevel; "
            "heavy = [m for m in ('comfy', 'triton', 'transformers', 'accelerate') if m in sys.modules]; "
            "heavy += [m for m in sys.modules if m.startswith('comfy_api')]; "
            "print(len(comfyui_framelevel.NODES), heavy)")
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
    schedule, preview = FrameLevelPromptSchedule.execute("x\ny\nx", 5, "latent", format="lines")
    assert "3 latent frames" not in preview and "5 latent frames" in preview
    assert schedule.unique == ("x", "y")


def test_pack_frame_text_shares_contexts_between_rows_and_windows():
    a, b = torch.ones(3, 2), torch.full((3, 2), 2.0)
    cond = FrameText((a, b), (0, 0, 1, 1))
    uncond = FrameText.single(b, 4)
    packed = pack_frame_text([cond, uncond], [1, 2, 3])
    assert packed.num_segments == 2                      # b is packed once for both rows
    assert packed.frame_prompt.tolist() == [[0, 1, 1], [1, 1, 1]]
