#!/usr/bin/env python3
"""Build each workflow's UI file and thumbnail from its API file.

    python tools/build_ui.py --comfyui /path/to/ComfyUI                  # every workflows/api/*.api.json
    python tools/build_ui.py --object-info object_info.json workflows/api/df_t2v.api.json

The API file (workflows/api/NAME.api.json) is the source we edit; this writes the UI file
workflows/NAME.json that the ComfyUI frontend opens (and its template browser lists) and the
thumbnail workflows/NAME.jpg (thumbnails.py). The UI file is laid out for people by
ui_layout.py (groups Story, Models, Sampling, Output; no link through a node; the view fitted on
open) and every loader node carries the download metadata of its model file (model_files.py).
`ui_to_api` is the inverse (what the browser does on Queue); tests check the round trip, and that
the committed UI files are exactly what this writes, against the /object_info of a real ComfyUI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import model_files
import ui_layout

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "workflows" / "api"
UI_DIR = ROOT / "workflows"
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


def _ui_inputs(node_id: str, node: dict, info: dict, links: list, out_links: dict, api: dict, object_info: dict):
    """The node's input slots as the frontend saves them (every socket, linked or not, and each linked
    widget) and its widget values in input order."""
    inputs, widgets = [], []
    for name, spec in input_specs(info):
        value = node["inputs"].get(name)
        linked = isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
        if linked:
            link_id = len(links) + 1
            links.append([link_id, int(value[0]), value[1], int(node_id), len(inputs),
                          object_info[api[str(value[0])]["class_type"]]["output"][value[1]]])
            out_links.setdefault((str(value[0]), value[1]), []).append(link_id)
        if linked or not is_widget(spec):
            entry = {"name": name, "type": spec[0] if not isinstance(spec[0], list) else "COMBO",
                     "link": link_id if linked else None}
            if is_widget(spec):
                entry["widget"] = {"name": name}
            inputs.append(entry)
        if linked:
            continue
        if is_widget(spec):
            if value is None:
                value = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
            widgets.append(value)
            if has_seed_control(name, spec):
                widgets.append("fixed")
        elif name in info["input"].get("required", {}):
            raise ValueError(f"node {node_id} ({node['class_type']}): required input {name!r} is not connected")
    return inputs, widgets


def _groups(layout) -> list[dict]:
    return [{"id": i + 1, "title": title, "bounding": [round(v, 1) for v in layout.groups[title]],
             "color": ui_layout.GROUP_COLOURS[title], "font_size": 24, "flags": {}}
            for i, title in enumerate(t for t in ui_layout.GROUPS if t in layout.groups)]


def api_to_ui(api: dict, object_info: dict) -> dict:
    """The UI workflow of an API prompt: laid out in groups (ui_layout.py), every loader carrying the
    download metadata of its model file (model_files.py), the view fitted to the graph."""
    layout = ui_layout.lay_out(api, object_info, input_specs)
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for node_id, node in sorted(api.items(), key=lambda item: int(item[0])):
        info = object_info[node["class_type"]]
        inputs, widgets = _ui_inputs(node_id, node, info, links, out_links, api, object_info)
        box = layout.boxes[node_id]
        properties = {"Node name for S&R": node["class_type"]}
        models = model_files.model_metadata(node)
        if models:
            properties["models"] = models
        nodes.append({
            "id": int(node_id), "type": node["class_type"], "pos": [round(box.x, 1), round(box.y, 1)],
            "size": [box.w, round(box.h, 1)], "flags": {}, "order": len(nodes), "mode": 0, "inputs": inputs,
            "outputs": [], "properties": properties, "widgets_values": widgets,
            "title": node.get("_meta", {}).get("title", node["class_type"]),
        })
    for ui_node in nodes:
        info = object_info[ui_node["type"]]
        ui_node["outputs"] = [{"name": name, "type": kind, "links": out_links.get((str(ui_node["id"]), slot), []),
                               "slot_index": slot}
                              for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"]))]
    return {"id": "00000000-0000-4000-8000-000000000000", "revision": 0,
            "last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": _groups(layout), "config": {},
            "extra": {"ds": ui_layout.fitted_view(layout)}, "version": 0.4}


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


def object_info_from(comfy_dir: Path) -> dict:
    """/object_info of a ComfyUI checkout with this pack loaded (the checkout itself is not changed: the
    pack is linked from a temporary custom_nodes folder named in an extra model paths file)."""
    import tempfile

    import run_workflow

    with tempfile.TemporaryDirectory(prefix="framelevel-build-ui-") as tmp:
        nodes_dir = Path(tmp) / "custom_nodes"
        nodes_dir.mkdir()
        (nodes_dir / run_workflow.PACK_NAME).symlink_to(ROOT, target_is_directory=True)
        config = Path(tmp) / "extra_paths.yaml"
        config.write_text(f"framelevel_build_ui:\n  custom_nodes: {nodes_dir}\n")
        with run_workflow.ComfyServer(comfy_dir, sys.executable, cpu=True, log_path=Path(tmp) / "server.log",
                                      extra_args=["--extra-model-paths-config", str(config)]) as server:
            server.wait_ready()
            return run_workflow.http_json(server.url + "/object_info")


def write_ui(api_path: Path, object_info: dict) -> tuple[Path, Path]:
    """workflows/NAME.json and its thumbnail NAME.jpg from workflows/api/NAME.api.json."""
    import thumbnails

    api = json.loads(api_path.read_text())
    name = api_path.name.removesuffix(".api.json")
    ui_path = UI_DIR / f"{name}.json"
    thumbnails.pack_module("nodes.core.files").write_text_atomic(ui_path, json.dumps(api_to_ui(api, object_info),
                                                                                   indent=1) + "\n")
    return ui_path, thumbnails.write_thumbnail(api, UI_DIR / f"{name}.jpg")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--object-info", type=Path, help="a saved /object_info JSON of ComfyUI with this pack")
    source.add_argument("--comfyui", type=Path, help="a ComfyUI checkout to read /object_info from (started on the CPU)")
    parser.add_argument("api_files", nargs="*", type=Path, help="API workflows (default: every workflows/api/*.api.json)")
    args = parser.parse_args(argv)
    object_info = (json.loads(args.object_info.read_text()) if args.object_info
                   else object_info_from(args.comfyui.expanduser().resolve()))
    for api_path in args.api_files or sorted(API_DIR.glob("*.api.json")):
        for written in write_ui(api_path, object_info):
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
