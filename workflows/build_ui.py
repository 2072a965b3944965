#!/usr/bin/env python3
"""Keep each workflow's UI format and API format in step.

    python workflows/build_ui.py OBJECT_INFO.json workflows/frame_prompts_t2v.api.json ...

The API file is the source we edit; this writes the matching UI file (`.json` beside it) that the
ComfyUI frontend opens, laying nodes out left to right by dependency depth. `ui_to_api` is the
inverse (what the browser does on Queue); tests check that the round trip gives the API file back
against the `/object_info` of a real ComfyUI. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}


def input_specs(node_info: dict) -> list[tuple[str, list]]:
    """(name, spec) of every input, in the frontend's order (input_order: required, optional)."""
    order = node_info.get("input_order", {})
    inputs = node_info["input"]
    specs = []
    for section in ("required", "optional"):
        for name in order.get(section, list(inputs.get(section, {}))):
            specs.append((name, inputs[section][name]))
    return specs


def is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def has_seed_control(name: str, spec: list) -> bool:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0] == "INT" and (options.get("control_after_generate") or name in SEED_NAMES)


def _depths(api: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(node_id: str) -> int:
        if node_id not in depth:
            sources = [v[0] for v in api[node_id]["inputs"].values() if isinstance(v, list) and len(v) == 2]
            depth[node_id] = 1 + max((visit(str(s)) for s in sources), default=-1)
        return depth[node_id]

    for node_id in api:
        visit(node_id)
    return depth


def api_to_ui(api: dict, object_info: dict) -> dict:
    depth = _depths(api)
    rows: dict[int, int] = {}
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for node_id, node in sorted(api.items(), key=lambda item: int(item[0])):
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec in input_specs(info):
            value = node["inputs"].get(name)
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                link_id = len(links) + 1
                links.append([link_id, int(value[0]), value[1], int(node_id), len(inputs),
                              object_info[api[str(value[0])]["class_type"]]["output"][value[1]]])
                out_links.setdefault((str(value[0]), value[1]), []).append(link_id)
                entry = {"name": name, "type": spec[0] if not isinstance(spec[0], list) else "COMBO",
                         "link": link_id}
                if is_widget(spec):
                    entry["widget"] = {"name": name}
                inputs.append(entry)
            elif is_widget(spec):
                if value is None:
                    value = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
                widgets.append(value)
                if has_seed_control(name, spec):
                    widgets.append("fixed")
            elif value is None and name in info["input"].get("required", {}):
                raise ValueError(f"node {node_id} ({node['class_type']}): required input {name!r} is not connected")
        column = depth[node_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes.append({
            "id": int(node_id), "type": node["class_type"], "pos": [40 + 380 * column, 40 + 260 * row],
            "size": [340, 200], "flags": {}, "order": len(nodes), "mode": 0, "inputs": inputs,
            "outputs": [], "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets, "title": node.get("_meta", {}).get("title", node["class_type"]),
        })
    for ui_node in nodes:
        info = object_info[ui_node["type"]]
        ui_node["outputs"] = [{"name": name, "type": kind, "links": out_links.get((str(ui_node["id"]), slot), []),
                               "slot_index": slot}
                              for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"]))]
    return {"id": "00000000-0000-4000-8000-000000000000", "revision": 0,
            "last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
            "version": 0.4}


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """The API prompt the browser would queue for this UI workflow (widgets mapped by input order).

    A workflow saved before a node gained an optional widget holds no value for it: that input is
    left out, so the node's default applies (the browser sends that same default)."""
    link_source = {link[0]: [str(link[1]), link[2]] for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        info = object_info[node["type"]]
        linked = {i["name"]: link_source[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values", []))
        inputs = {}
        optional = set(info["input"].get("optional", {}))
        for name, spec in input_specs(info):
            if name in linked:
                inputs[name] = linked[name]
                continue
            if not is_widget(spec):
                continue
            if not values and name in optional:
                continue
            if not values:
                raise ValueError(f"node {node['id']} ({node['type']}): no widget value for {name!r}")
            inputs[name] = values.pop(0)
            if has_seed_control(name, spec):
                values.pop(0)
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}): {len(values)} widget values left over")
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                "_meta": {"title": node.get("title", node["type"])}}
    return api


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    object_info = json.loads(Path(argv[0]).read_text())
    for path in map(Path, argv[1:]):
        api = json.loads(path.read_text())
        ui_path = path.with_name(path.name.replace(".api.json", ".json"))
        ui_path.write_text(json.dumps(api_to_ui(api, object_info), indent=1) + "\n")
        print(f"wrote {ui_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
