"""The pack's nodes as ComfyUI registers them: V3 nodes of the versioned comfy_api.v0_0_2, their
V1 view equal to our declarations, execute and fingerprint reached through ComfyUI's own paths."""

import asyncio
import math

import comfy_support as cs
import pytest

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def registered():
    cs.import_comfy()
    import comfyui_framelevel
    extension = asyncio.run(comfyui_framelevel.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    return {cls.GET_SCHEMA().node_id: cls for cls in nodes}


def test_every_node_is_a_v3_node_of_the_versioned_api(registered):
    from comfy_api.v0_0_2 import io
    from comfyui_framelevel.nodes import NODES_BY_ID
    assert set(registered) == set(NODES_BY_ID)
    for node_id, cls in registered.items():
        assert issubclass(cls, io.ComfyNode), node_id
        assert cls.GET_SCHEMA().display_name == NODES_BY_ID[node_id].schema().display_name


def test_the_v1_view_comfyui_serves_equals_our_declarations(registered):
    """/object_info shows V3 nodes in V1 shape: same inputs, order, types, defaults, limits, tooltips."""
    from comfyui_framelevel.nodes import NODES_BY_ID
    for node_id, cls in registered.items():
        ours = NODES_BY_ID[node_id].schema()
        info = cls.GET_NODE_INFO_V1()
        assert info["category"] == ours.category and info["description"] == ours.description
        assert info["output"] == [o.io_type for o in ours.outputs]
        assert info["output_tooltips"] == [o.tooltip for o in ours.outputs]
        for section, specs in ours.v1_input_types().items():
            assert info["input_order"][section] == list(specs), (node_id, section)
            for name, (kind, options) in specs.items():
                served_kind, served = info["input"][section][name][0], info["input"][section][name][1]
                if isinstance(kind, list):   # V3 serves a combo as ("COMBO", {"options": [...]})
                    assert (served_kind, served["options"]) == ("COMBO", kind), (node_id, name)
                else:
                    assert served_kind == kind, (node_id, name, served_kind, kind)
                for key, value in options.items():
                    assert served.get(key) == value, (node_id, name, key)


def test_execute_and_fingerprint_run_through_comfyuis_v3_paths(registered, tmp_path, monkeypatch):
    from comfy_api.internal import first_real_override as probe  # what execution.py asks
    schedule_node = registered["FrameLevelPromptSchedule"]
    out = schedule_node.PREPARE_CLASS_CLONE({}).execute(text="a\nb", length=3, length_unit="latent")
    schedule, preview = out.args
    assert schedule.prompts == ("a", "a", "b") and "3 latent frames" in preview
    expand = registered["FrameLevelPromptExpand"]
    assert probe(expand, "fingerprint_inputs") is not None
    assert probe(schedule_node, "fingerprint_inputs") is None
    monkeypatch.setenv("FRAMELEVEL_CACHE_DIR", str(tmp_path))
    inputs = dict(video_prompt="a fox", base_url="http://127.0.0.1:9/v1", model="m", length=17, beats=0,
                  seed=0, temperature=0.3)
    assert expand.fingerprint_inputs(**inputs) == expand.fingerprint_inputs(**inputs)
    assert math.isnan(expand.fingerprint_inputs(**inputs, use_cache=False))
