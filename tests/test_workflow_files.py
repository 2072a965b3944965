"""The shipped workflow files, without ComfyUI: the template folder holds exactly the UI workflows and
their thumbnails, every loader carries the download metadata of the file it loads (the Comfy-Org URLs
ComfyUI's own templates use), the thumbnails are the workflows' story timelines, and the layout keeps
its promises (groups around their nodes, no link through a node, a readable story node and view)."""

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_ui  # noqa: E402
import model_files  # noqa: E402
import ui_layout  # noqa: E402
from ui_geometry import Box, curve_hits_box, link_curve  # noqa: E402

API = {p.name.removesuffix(".api.json"): json.loads(p.read_text()) for p in sorted(build_ui.API_DIR.glob("*.api.json"))}
UI = {p.stem: json.loads(p.read_text()) for p in sorted(build_ui.UI_DIR.glob("*.json"))}
MAIN = ("story_pmwd_30s", "story_pmwd_ksampler_30s")
# the folder names ComfyUI's /workflow_templates scans inside a custom node (app/custom_node_manager.py)
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


def test_template_folder_holds_exactly_the_ui_workflows_and_thumbnails():
    """ComfyUI lists every *.json directly inside workflows/ as a template: only the UI workflows and
    their thumbnails sit there; the API twins live one folder down (workflows/api/, not listed)."""
    assert sorted(UI) == sorted(API) and set(MAIN) <= set(UI)
    files = sorted(p.name for p in build_ui.UI_DIR.iterdir() if p.is_file())
    assert files == sorted([f"{n}.json" for n in UI] + [f"{n}.jpg" for n in UI])
    assert [p.name for p in build_ui.UI_DIR.iterdir() if p.is_dir()] == ["api"]
    assert build_ui.API_DIR.parent == build_ui.UI_DIR
    scanned = [name for name in TEMPLATE_FOLDERS if name != build_ui.UI_DIR.name and (ROOT / name).exists()]
    assert scanned == [], f"ComfyUI would list the JSON files of {scanned} as templates too"


def test_declarations_are_the_oldest_supported_comfyuis_for_every_node_the_workflows_use():
    """tools/ui_object_info.json holds what the UI files are built from: ComfyUI 0.3.64's /object_info of
    exactly the node classes the API files use (tests/test_comfyui_server.py compares it with 0.3.64's
    live declarations)."""
    declarations, version = build_ui.load_declarations()
    assert version == build_ui.BUILT_FOR == "0.3.64"
    assert sorted(declarations) == build_ui.used_classes() == sorted({n["class_type"] for a in API.values()
                                                                      for n in a.values()})
    assert all({"input", "output", "output_name"} <= set(info) for info in declarations.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(API))
def test_ui_file_is_what_build_ui_writes(name):
    """The committed UI file (layout, groups, model metadata, fitted view) is generated, not edited by
    hand: building it from the API file and the declarations it is built from gives it back exactly,
    and it converts back to the API file's inputs."""
    declarations, _ = build_ui.load_declarations()
    assert build_ui.api_to_ui(API[name], declarations) == UI[name], f"run: python tools/build_ui.py workflows/api/{name}.api.json"
    back = build_ui.ui_to_api(UI[name], declarations)
    assert {k: v["inputs"] for k, v in back.items()} == {k: v["inputs"] for k, v in API[name].items()}


def _ui_loaders(name: str):
    for node in UI[name]["nodes"]:
        if node["type"] in model_files.MODEL_LOADERS:
            yield node, API[name][str(node["id"])]


@pytest.mark.parametrize("name", sorted(UI))
def test_every_loader_names_the_file_it_loads_with_its_download(name):
    loaders = list(_ui_loaders(name))
    assert {n["type"] for n, _ in loaders} >= {"UNETLoader", "CLIPLoader", "VAELoader"}
    for node, api_node in loaders:
        input_name, folders, _ = model_files.MODEL_LOADERS[node["type"]]
        file_name = api_node["inputs"][input_name]
        assert file_name in node["widgets_values"]
        (entry,) = node["properties"]["models"]
        assert entry["name"] == file_name
        assert entry["directory"] == folders[0].removeprefix("models/")
        assert entry["url"].startswith("https://huggingface.co/Comfy-Org/") and "/resolve/main/" in entry["url"]
        assert entry["url"].rsplit("/", 1)[1] == file_name


def _official_template_urls() -> dict[str, set[str]]:
    """file name -> URLs that ComfyUI's own workflow templates give for it."""
    spec = importlib.util.find_spec("comfyui_workflow_templates")
    if spec is None:
        pytest.skip("needs the comfyui_workflow_templates package (ComfyUI's requirements)")
    urls: dict[str, set[str]] = {}
    for path in Path(spec.origin).parent.glob("**/*.json"):
        try:
            workflow = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        nodes = workflow.get("nodes", []) if isinstance(workflow, dict) else []
        for sub in (workflow.get("definitions", {}).get("subgraphs", []) if isinstance(workflow, dict) else []):
            nodes = nodes + sub.get("nodes", [])
        for node in nodes:
            for model in node.get("properties", {}).get("models", []) or []:
                urls.setdefault(model.get("name"), set()).add(model.get("url", "").split("?")[0])
    return urls


def test_model_urls_are_the_ones_comfyuis_own_templates_use():
    official = _official_template_urls()
    checked = []
    for name, model in model_files.MODEL_FILES.items():
        if name in official:
            assert model.url in official[name], (name, model.url, official[name])
            checked.append(name)
    used = {e["name"] for n in UI for node, _ in _ui_loaders(n) for e in node["properties"]["models"]}
    assert used <= set(checked), f"files our workflows load that no official template confirms: {used - set(checked)}"


@pytest.mark.parametrize("name", sorted(UI))
def test_thumbnail_is_the_workflows_story_timeline(name):
    pytest.importorskip("PIL")
    import numpy as np
    import templates
    import thumbnails
    from PIL import Image

    def coarse(image):   # 8 x 8 pixel means: JPEG noise averages out, another story does not
        return np.asarray(image.convert("RGB").resize((image.width // 8, image.height // 8), Image.BOX), float)

    with Image.open(build_ui.UI_DIR / f"{name}.jpg") as shipped:
        assert shipped.format == "JPEG" and shipped.size == (thumbnails.THUMBNAIL_WIDTH, thumbnails.THUMBNAIL_HEIGHT)
        shipped = coarse(shipped)
    title = templates.title_of(name)
    assert np.abs(shipped - coarse(thumbnails.thumbnail(API[name], title))).mean() < 1.5     # JPEG noise only
    # a story cut to its first segment draws a picture far outside that
    retold = copy.deepcopy(API[name])
    story = next(n for n in retold.values() if n["class_type"] == "FrameLevelPromptSchedule")
    story["inputs"]["text"] = thumbnails.story_segments(API[name])[0]["prompt"]
    story["inputs"]["format"] = "auto"
    assert np.abs(coarse(thumbnails.thumbnail(retold, title)) - shipped).mean() > 3.0


def _boxes(ui: dict) -> dict[int, Box]:
    return {n["id"]: Box(n["pos"][0], n["pos"][1], n["size"][0], n["size"][1]) for n in ui["nodes"]}


def _link_curves(ui: dict, boxes: dict[int, Box]):
    sockets = {n["id"]: [i["name"] for i in n["inputs"] if "widget" not in i] for n in ui["nodes"]}
    inputs = {n["id"]: n["inputs"] for n in ui["nodes"]}
    for _, source, slot, target, target_slot, _ in ui["links"]:
        row = sockets[target].index(inputs[target][target_slot]["name"])
        yield source, target, link_curve(boxes[source].output_slot(slot), boxes[target].input_slot(row))


@pytest.mark.parametrize("name", sorted(UI))
def test_layout_groups_links_and_story_width(name):
    ui = UI[name]
    boxes = _boxes(ui)
    titles = [g["title"] for g in ui["groups"]]
    assert titles == list(ui_layout.GROUPS)
    owner = {}
    for group in ui["groups"]:
        x, y, w, h = group["bounding"]
        inside = [i for i, b in boxes.items() if x <= b.x and y <= b.top and b.right <= x + w and b.bottom <= y + h]
        touching = [i for i, b in boxes.items() if b.x < x + w and x < b.right and b.top < y + h and y < b.bottom]
        assert sorted(inside) == sorted(touching), f"{group['title']} cuts through a node"
        owner.update({i: group["title"] for i in inside})
    assert sorted(owner) == sorted(boxes), "every node lies in exactly one group"
    for source, target, points in _link_curves(ui, boxes):
        assert points[-1][0] > points[0][0], f"link {source} -> {target} runs right to left"
        crossed = [i for i, b in boxes.items() if i not in (source, target) and curve_hits_box(points, b)]
        assert crossed == [], f"link {source} -> {target} passes through nodes {crossed}"
    story = next(n for n in ui["nodes"] if n["type"] == ui_layout.STORY_CLASS)
    assert story["size"][0] >= ui_layout.STORY_WIDTH and owner[story["id"]] == "Story"


@pytest.mark.parametrize("name", MAIN)
def test_main_workflows_open_readable_and_whole(name):
    """The fitted view shows every node inside the full-HD canvas, clear of the minimap corner, at a scale
    where the frontend still draws text (ui_layout.READABLE_SCALE)."""
    ds = UI[name]["extra"]["ds"]
    assert ds["scale"] >= ui_layout.READABLE_SCALE
    left, top, right, bottom = ui_layout.VIEW_MARGINS
    for box in _boxes(UI[name]).values():
        x0, y0 = (box.x + ds["offset"][0]) * ds["scale"], (box.top + ds["offset"][1]) * ds["scale"]
        x1, y1 = (box.right + ds["offset"][0]) * ds["scale"], (box.bottom + ds["offset"][1]) * ds["scale"]
        assert left <= x0 and top <= y0 and x1 <= ui_layout.VIEW[0] - right and y1 <= ui_layout.VIEW[1] - bottom
        assert x1 < ui_layout.MINIMAP[0] or y1 < ui_layout.MINIMAP[1], "a node under the minimap corner"


@pytest.mark.parametrize("name", sorted(UI))
def test_every_workflow_opens_readable_with_its_story_in_view(name):
    """Every UI file opens where the frontend draws text; a graph too large to show whole at that
    scale opens on its top-left corner, so the story node is in view either way."""
    ds = UI[name]["extra"]["ds"]
    assert ui_layout.READABLE_SCALE <= ds["scale"] <= 1.0
    left, top, right, bottom = ui_layout.VIEW_MARGINS
    story = next(n for n in UI[name]["nodes"] if n["type"] == ui_layout.STORY_CLASS)
    x0, y0 = ((p + o) * ds["scale"] for p, o in zip(story["pos"], ds["offset"], strict=True))
    x1, y1 = x0 + story["size"][0] * ds["scale"], y0 + story["size"][1] * ds["scale"]
    assert left <= x0 and top <= y0 and x1 <= ui_layout.VIEW[0] - right and y1 <= ui_layout.VIEW[1] - bottom
