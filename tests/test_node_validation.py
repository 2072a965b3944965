"""Every node's validate_inputs (run by ComfyUI when a prompt is queued, before any node runs):
widget values checked against the declaration, then each node's own rules over widget values."""

import math

import pytest
from comfyui_framelevel.nodes import NODES
from comfyui_framelevel.nodes.long_video_nodes import (
    FrameLevelFIFOSampler,
    FrameLevelPMWDModel,
    FrameLevelPMWDSampler,
    FrameLevelSlidingWindowSampler,
)
from comfyui_framelevel.nodes.prompt_nodes import FrameLevelPromptSchedule


def defaults(node) -> dict:
    return {spec.id: spec.default for spec in node.schema().inputs if spec.is_widget and spec.default is not None}


@pytest.mark.parametrize("node", NODES, ids=lambda node: node.__name__)
def test_every_node_accepts_its_own_defaults(node):
    assert node.validate_inputs(**defaults(node)) is True


@pytest.mark.parametrize("node", NODES, ids=lambda node: node.__name__)
def test_every_widget_refuses_values_outside_its_declaration(node):
    for spec in node.schema().inputs:
        if not spec.is_widget:
            continue
        bad = {"COMBO": ["no such choice"], "BOOLEAN": ["yes"], "STRING": [7],
               "INT": [1.5, True, "3"], "FLOAT": [math.nan, math.inf, "0.5"]}[spec.io_type]
        if spec.io_type in ("INT", "FLOAT") and spec.options.get("max") is not None:
            bad.append(spec.options["max"] + 1)
        for value in bad:
            message = node.validate_inputs(**dict(defaults(node), **{spec.id: value}))
            assert isinstance(message, str) and message.startswith(f"{spec.id} = ") and "Fix:" in message, \
                (spec.id, value, message)


def test_linked_inputs_are_not_judged():
    inputs = defaults(FrameLevelPMWDModel)
    assert FrameLevelPMWDModel.validate_inputs(**inputs, model=None) is True
    del inputs["window"]   # linked: only the rules whose widgets are all typed run
    assert FrameLevelPMWDModel.validate_inputs(**dict(inputs, overlap=500)) is True


@pytest.mark.parametrize("node, change, named", [
    (FrameLevelPMWDSampler, dict(window=8, overlap=8), "overlap"),
    (FrameLevelPMWDModel, dict(window=8, overlap=12), "overlap"),
    (FrameLevelSlidingWindowSampler, dict(window=8, slide=9), "slide"),
    (FrameLevelFIFOSampler, dict(window=7, lookahead=True), "window"),
    (FrameLevelPromptSchedule, dict(text='{"1": "a fox", "30": "a fox drinks"}', length=81), "30"),
])
def test_cross_field_rules_run_at_validation(node, change, named):
    message = node.validate_inputs(**dict(defaults(node), **change))
    assert isinstance(message, str) and named in message and "Fix" in message, message
