#!/usr/bin/env python3
"""Build each workflow's UI file and thumbnail from its API file.

    python tools/build_ui.py                                  # every workflows/api/*.api.json
    python tools/build_ui.py workflows/api/df_t2v.api.json
    python tools/build_ui.py --comfyui /path/to/ComfyUI-0.3.64  # after a node's declaration changed

The API file (workflows/api/NAME.api.json) is the source we edit; this writes the UI file
workflows/NAME.json that the ComfyUI frontend opens (and its template browser lists) and the
thumbnail workflows/NAME.jpg (thumbnails.py: the workflow's title from templates.py over the story's
timeline). The UI file is laid out for people by
ui_layout.py (groups Story, Models, Sampling, Output; no link through a node; the view fitted on
open) and every loader node carries the download metadata of its model file (model_files.py).
`ui_to_api` is the inverse (what the browser does on Queue).

The UI files are built from the node declarations (/object_info) of the oldest supported ComfyUI,
0.3.64, kept in tools/ui_object_info.json (the node classes the workflows use): newer ComfyUIs add
optional inputs and outputs to stock nodes (0.33.0: CreateVideo's bit_depth, outputs of SaveVideo,
PreviewImage and PreviewAny), which a file saved for 0.3.64 simply lacks and every newer frontend
fills in, while a file carrying them would not convert on 0.3.64. `--comfyui` refreshes that file
from a running ComfyUI (use 0.3.64) before building. Tests check that the committed UI files are
exactly what this writes from it, that it is what ComfyUI 0.3.64 declares, and, on every ComfyUI
the tests run on, that the UI files convert back to the API files with that ComfyUI's /object_info
and load in its frontend.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import model_files
import node_specs
import templates
import ui_layout
from node_specs import has_seed_control, is_widget

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "workflows" / "api"
UI_DIR = ROOT / "workflows"
DECLARATIONS = ROOT / "tools" / "ui_object_info.json"
BUILT_FOR = "0.3.64"     # the oldest supported ComfyUI, whose declarations the UI files are built from


def input_specs(node_info: dict, values: dict | None = None) -> list[tuple[str, list]]:
    """(name, spec) of every input in the frontend's order (node_specs.walk)."""
    return node_specs.input_specs(node_info, values)


def _ui_inputs(node_id: str, node: dict, info: dict, links: list, out_links: dict, api: dict, object_info: dict):
    """The node's input slots as the frontend saves them (every socket, linked or not, and each linked
    widget) and its widget values in input order."""
    inputs, widgets = [], []
    for name, spec, optional in node_specs.walk(info, node["inputs"].get):
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
                value = node_specs.default(spec)
            widgets.append(value)
            if has_seed_control(name, spec):
                widgets.append("fixed")
        elif not optional:
            raise ValueError(f"node {node_id} ({node['class_type']}): required input {name!r} is not connected")
    return inputs, widgets


def _groups(layout) -> list[dict]:
    return [{"id": i + 1, "title": title, "bounding": [round(v, 1) for v in layout.groups[title]],
             "color": ui_layout.GROUP_COLOURS[title], "font_size": 24, "flags": {}}
            for i, title in enumerate(t for t in ui_layout.GROUPS if t in layout.groups)]


def api_to_ui(api: dict, object_info: dict) -> dict:
    """The UI workflow of an API prompt: laid out in groups (ui_layout.py), every loader carrying the
    download metadata of its model file (model_files.py), the view fitted to the graph."""
    layout = ui_layout.lay_out(api, object_info)
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
        for name, spec, optional in node_specs.walk(info, inputs.get):   # a DynamicCombo's value is in by then
            if name in linked:
                inputs[name] = linked[name]
                continue
            if not is_widget(spec):
                continue
            if not values and optional:
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


def read_comfyui(comfy_dir: Path) -> tuple[dict, str]:
    """(/object_info, version) of a ComfyUI checkout with this pack loaded (the checkout itself is not
    changed: the pack is linked from a temporary custom_nodes folder named in an extra model paths file)."""
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
            version = run_workflow.http_json(server.url + "/system_stats")["system"]["comfyui_version"]
            return run_workflow.http_json(server.url + "/object_info"), version


def used_classes() -> list[str]:
    """The node classes the API workflows use."""
    return sorted({node["class_type"] for path in API_DIR.glob("*.api.json")
                   for node in json.loads(path.read_text()).values()})


_NODE_PROSE = ("description", "display_name", "output_tooltips")   # text for people, not structure


def _structure(declaration: dict) -> dict:
    """A node's declaration without its prose (descriptions, display names, tooltips): what the UI
    files are built from is the inputs' names, kinds, order, defaults and options, and the outputs."""
    out = {key: value for key, value in declaration.items() if key not in _NODE_PROSE}
    out["input"] = {section: {name: [spec[0], {k: v for k, v in spec[1].items() if k != "tooltip"}]
                              if len(spec) > 1 and isinstance(spec[1], dict) else spec
                              for name, spec in inputs.items()}
                    for section, inputs in declaration.get("input", {}).items()}
    return out


def declarations_of(object_info: dict) -> dict:
    """The /object_info entries of the node classes the workflows use, without their prose."""
    return {name: _structure(object_info[name]) for name in used_classes()}


def load_declarations() -> tuple[dict, str]:
    """(node declarations, ComfyUI version) the UI files are built from (DECLARATIONS)."""
    saved = json.loads(DECLARATIONS.read_text())
    return saved["object_info"], saved["comfyui_version"]


def save_declarations(object_info: dict, version: str) -> Path:
    text = json.dumps({"comfyui_version": version, "object_info": declarations_of(object_info)}, indent=1)
    DECLARATIONS.write_text(text + "\n")
    return DECLARATIONS


def write_ui(api_path: Path, object_info: dict) -> tuple[Path, Path]:
    """workflows/NAME.json and its thumbnail NAME.jpg from workflows/api/NAME.api.json."""
    import thumbnails

    api = json.loads(api_path.read_text())
    name = api_path.name.removesuffix(".api.json")
    ui_path = UI_DIR / f"{name}.json"
    thumbnails.pack_module("nodes.core.files").write_text_atomic(ui_path, json.dumps(api_to_ui(api, object_info),
                                                                                   indent=1) + "\n")
    return ui_path, thumbnails.write_thumbnail(api, UI_DIR / f"{name}.jpg", templates.title_of(name))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=Path, help=f"a ComfyUI checkout (started on the CPU) whose /object_info "
                        f"replaces {DECLARATIONS.name} first: ComfyUI {BUILT_FOR}, the oldest supported")
    parser.add_argument("api_files", nargs="*", type=Path, help="API workflows (default: every workflows/api/*.api.json)")
    args = parser.parse_args(argv)
    if args.comfyui:
        object_info, version = read_comfyui(args.comfyui.expanduser().resolve())
        if version != BUILT_FOR:
            parser.error(f"{args.comfyui} is ComfyUI {version}: the UI files are built for ComfyUI {BUILT_FOR}, "
                         "the oldest supported, so that they convert and load on every supported ComfyUI")
        print(f"wrote {save_declarations(object_info, version)}")
    object_info, _ = load_declarations()
    for api_path in args.api_files or sorted(API_DIR.glob("*.api.json")):
        for written in write_ui(api_path, object_info):
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
