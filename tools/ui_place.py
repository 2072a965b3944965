"""Placing a workflow's nodes for a given column order: groups, columns, lanes, pushes.

Groups and bands, left to right: Story above Models (band 0), Sampling (band 1), Output (band 2).
Inside a band a node stands one column right of its rightmost source in the same band, and every node
of a column is as wide as the widest, so links leave from the column's edge. Columns are stacked top
to bottom; a node stands level with the source of its long input (a link that passes columns of
nodes) or else of its first input from the same band, where there is room. A long link runs as a
level lane: nodes of the columns it passes are pushed below it. A "sunk" node is pushed down until
its lanes run below every node they pass. What still crosses is fixed by pushing down the higher
end of a long link (to make it level) or the crossed node. Standard library only (see ui_geometry.py
for the frontend's geometry, node_specs.py for a node's inputs; ui_layout.py chooses the column orders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from node_specs import has_seed_control, input_specs, is_widget
from node_specs import options as spec_options
from ui_geometry import SLOT_HEIGHT, TITLE_HEIGHT, Box, curve_hits_box, link_curve

GROUPS = ("Story", "Models", "Sampling", "Output")
BANDS = (("Story", "Models"), ("Sampling",), ("Output",))
GROUP_COLOURS = {"Story": "#3f789e", "Models": "#8a8a3f", "Sampling": "#a1309b", "Output": "#3f8f5a"}

GROUP_OF_CLASS = {
    "UNETLoader": "Models", "CLIPLoader": "Models", "VAELoader": "Models", "CLIPVisionLoader": "Models",
    "LoraLoaderModelOnly": "Models", "ModelSamplingSD3": "Models", "FrameLevelCrossAttention": "Models",
    "FrameLevelPromptSchedule": "Story", "FrameLevelTextEncode": "Story", "CLIPTextEncode": "Story",
    "FrameLevelPromptExpand": "Story",
    # start / end / key frame images feed the anchor node beside the sampler
    "LoadImage": "Sampling",
    # image-to-video conditioning takes those images, so it stands beside them
    "Wan22ImageToVideoLatent": "Sampling", "WanImageToVideo": "Sampling", "WanFirstLastFrameToVideo": "Sampling",
    "VAEDecode": "Output", "CreateVideo": "Output", "SaveVideo": "Output", "FrameLevelMetrics": "Output",
    # the schedule picture shows the sampler's plan: it stands beside the sampler
    "FrameLevelScheduleView": "Sampling",
    "PreviewImage": "Output", "PreviewAny": "Output",
}

STORY_CLASS = "FrameLevelPromptSchedule"
STORY_WIDTH = 500          # graph px: about 65 characters of the story per line at the default font
# graph px of the story node's body: its two text areas (story, global prompt) and the timeline under them
# share what its other widgets leave (measured in 1.27.10: 820 would show 10 story lines and 8 timeline
# rows, but then no main workflow fits whole and readable at full HD with the present bands)
STORY_HEIGHT = 440
DEFAULT_WIDTH = 250
# (width, minimum body height) where the widgets alone do not say it: text areas and previews.
SIZES = {
    STORY_CLASS: (STORY_WIDTH, STORY_HEIGHT), "CLIPTextEncode": (320, 150), "FrameLevelPromptExpand": (420, 300),
    "UNETLoader": (330, 0), "CLIPLoader": (330, 0), "VAELoader": (330, 0), "CLIPVisionLoader": (330, 0),
    "LoraLoaderModelOnly": (330, 0), "LoadImage": (280, 230), "FrameLevelAnchorFrames": (300, 0),
    "SaveVideo": (300, 220), "PreviewImage": (320, 300),
}
WIDGET_HEIGHT = 24
MULTILINE_HEIGHT = 120
COLUMN_GAP = 56
BAND_GAP = 90
ROW_GAP = 40               # free space between one node's bottom and the next one's title bar
GROUP_PAD = 24
GROUP_HEADER = 50          # the group's own title bar above its first node's title
GROUP_GAP = 60
MAX_MOVES = 60
CLEARANCE = 16          # free space between a link and a node it passes


@dataclass
class Node:
    id: str
    cls: str
    group: str
    w: float
    h: float
    sockets: list[str]                 # inputs drawn as slots, in the frontend's order
    inputs: list[tuple[str, int, str]]  # (source id, source output, input name) per link
    band: int = 0
    column: int = 0
    consumers: list[tuple[str, int]] = field(default_factory=list)   # (target id, own output) per link


@dataclass
class Layout:
    nodes: dict[str, Node]
    boxes: dict[str, Box] = field(default_factory=dict)
    order: dict[tuple[int, str, int], list[str]] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    groups: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    sunk: frozenset[str] = frozenset()


def group_of(cls: str, info: dict) -> str:
    if cls in GROUP_OF_CLASS:
        return GROUP_OF_CLASS[cls]
    category = info.get("category", "")
    if info.get("output_node"):
        return "Output"
    if category.startswith(("loaders", "advanced/loaders")):
        return "Models"
    if category.startswith("conditioning") and "MODEL" not in info.get("output", []):
        return "Story"
    return "Sampling"


def body_height(info: dict, specs: list[tuple[str, list]], sockets: list[str]) -> float:
    """The height the frontend gives the node's body at least: slot rows, then one row per widget."""
    rows = max(len(sockets), len(info.get("output", [])), 1)
    height = rows * SLOT_HEIGHT
    widgets = [(name, spec) for name, spec in specs if is_widget(spec)]
    for name, spec in widgets:
        height += MULTILINE_HEIGHT if spec_options(spec).get("multiline") else WIDGET_HEIGHT
        if has_seed_control(name, spec):
            height += WIDGET_HEIGHT
    return height + (14 if widgets else 6)


def min_width(title: str, specs: list[tuple[str, list]]) -> float:
    """A width the frontend will not widen on load: it makes room for the whole title and for each
    widget's label and value (estimated generously at 7.2 px per title character, 7 per label one)."""
    widest_label = max((len(name) for name, spec in specs if is_widget(spec)), default=0)
    width = max(40 + 7.2 * len(title), 7 * widest_label + 120 if widest_label else 0)
    return math.ceil(width / 10) * 10


def read_nodes(api: dict, object_info: dict) -> dict[str, Node]:
    nodes = {}
    for node_id, node in api.items():
        info = object_info[node["class_type"]]
        specs = input_specs(info, node["inputs"])
        sockets = [name for name, spec in specs if not is_widget(spec)]
        links = [(str(v[0]), v[1], name) for name, v in node["inputs"].items()
                 if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int)]
        width, min_height = SIZES.get(node["class_type"], (DEFAULT_WIDTH, 0))
        width = max(width, min_width(node.get("_meta", {}).get("title", node["class_type"]), specs))
        nodes[node_id] = Node(node_id, node["class_type"], group_of(node["class_type"], info), width,
                              max(min_height, body_height(info, specs, sockets)), sockets, links)
    return nodes


def _equal_column_widths(nodes: dict[str, Node]) -> None:
    """Every node as wide as the widest in its column, so each link leaves from the column's edge."""
    widths: dict[tuple[int, int], float] = {}
    for node in nodes.values():
        widths[(node.band, node.column)] = max(widths.get((node.band, node.column), 0.0), node.w)
    for node in nodes.values():
        node.w = widths[(node.band, node.column)]


def assign_columns(nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        for source, slot, _ in node.inputs:
            nodes[source].consumers.append((node.id, slot))
    band_of_group = {group: band for band, groups in enumerate(BANDS) for group in groups}
    for node in nodes.values():
        node.band = band_of_group[node.group]
    for node in nodes.values():
        for source, _, name in node.inputs:
            if nodes[source].band > node.band:
                raise ValueError(f"node {node.id} ({node.cls}, group {node.group}) takes {name!r} from node "
                                 f"{source} ({nodes[source].cls}, group {nodes[source].group}) to its right; "
                                 "give one of them another group in ui_layout.GROUP_OF_CLASS")
    done: dict[str, int] = {}

    def column(node_id: str) -> int:
        if node_id not in done:
            node = nodes[node_id]
            same_band = [column(s) for s, _, _ in node.inputs if nodes[s].band == node.band]
            done[node_id] = 1 + max(same_band, default=-1)
        return done[node_id]

    for node in nodes.values():
        node.column = column(node.id)
    _equal_column_widths(nodes)


def _input_row(node: Node, name: str) -> float:
    return node.sockets.index(name) if name in node.sockets else max(len(node.sockets) - 1, 0)


def _column_x(layout: Layout) -> dict[tuple[int, int], float]:
    widths: dict[tuple[int, int], float] = {}
    for node in layout.nodes.values():
        widths[(node.band, node.column)] = node.w
    xs, x = {}, 0.0
    for band in range(len(BANDS)):
        for column in sorted(c for b, c in widths if b == band):
            xs[(band, column)] = x
            x += widths[(band, column)] + COLUMN_GAP
        x += BAND_GAP - COLUMN_GAP
    return xs


@dataclass
class Lane:
    """A link that passes columns of nodes between its ends runs level at y from x0 to x1."""
    x0: float
    x1: float
    y: float


def _wanted_y(layout: Layout, node: Node, xs) -> float | None:
    """Level with the source of the first input that comes from a long link, else from the same band."""
    placed = [(s, slot, name) for s, slot, name in node.inputs if s in layout.boxes]
    long_inputs = [link for link in placed if _spans_columns(layout, link[0], node, xs)]
    same_band = [link for link in placed if layout.nodes[link[0]].band == node.band]
    for source, slot, name in long_inputs[:1] or same_band[:1]:
        return layout.boxes[source].output_slot(slot)[1] - (_input_row(node, name) + 0.7) * SLOT_HEIGHT
    return None


def _spans_columns(layout: Layout, source: str, target: Node, xs) -> bool:
    """Whether a column with nodes lies strictly between the source's column and the target's."""
    x0 = layout.boxes[source].right
    x1 = xs[(target.band, target.column)]
    return any(x0 < x < x1 for (band, column), x in xs.items() if x - x0 > 1)


def _below_lanes(y: float, node: Node, x: float, lanes: list[Lane]) -> float:
    """The first y at or below `y` where the node's box keeps CLEARANCE from every lane over its column."""
    for lane in sorted(lanes, key=lambda lane: lane.y):
        if lane.x0 < x < lane.x1 and y - TITLE_HEIGHT - CLEARANCE < lane.y < y + node.h + CLEARANCE:
            y = lane.y + CLEARANCE + TITLE_HEIGHT
    return y


def _lanes_from(layout: Layout, node: Node, xs) -> list[Lane]:
    """Lanes of the long links leaving a node just placed (their targets are to the right)."""
    lanes = []
    for target_id, slot in node.consumers:
        target = layout.nodes[target_id]
        if _spans_columns(layout, node.id, target, xs):
            lanes.append(Lane(layout.boxes[node.id].right, xs[(target.band, target.column)],
                              layout.boxes[node.id].output_slot(slot)[1]))
    return lanes


def _one_pass(layout: Layout) -> None:
    """One pass, band by band, group by group, column by column: each node at the top of its column's
    free space, level with its source where possible, pushed by `extra`, and below every lane."""
    xs = _column_x(layout)
    layout.boxes, layout.groups = {}, {}
    lanes: list[Lane] = []
    for band, groups in enumerate(BANDS):
        top = 0.0
        for group in groups:
            content_top = top + GROUP_HEADER + TITLE_HEIGHT
            columns = sorted(key for key in layout.order if key[0] == band and key[1] == group)
            for key in columns:
                cursor = content_top
                for node_id in layout.order[key]:
                    node = layout.nodes[node_id]
                    x = xs[(band, node.column)]
                    wanted = _wanted_y(layout, node, xs)
                    y = max(cursor, wanted if wanted is not None else cursor) + layout.extra.get(node_id, 0.0)
                    y = _below_lanes(y, node, x, lanes)
                    layout.boxes[node_id] = Box(x, y, node.w, node.h)
                    lanes += _lanes_from(layout, node, xs)
                    cursor = y + node.h + ROW_GAP + TITLE_HEIGHT
            boxes = [layout.boxes[n] for key in columns for n in layout.order[key]]
            if boxes:
                x0, y0 = min(b.x for b in boxes) - GROUP_PAD, min(b.top for b in boxes) - GROUP_HEADER
                x1, y1 = max(b.right for b in boxes) + GROUP_PAD, max(b.bottom for b in boxes) + GROUP_PAD
                layout.groups[group] = (x0, y0, x1 - x0, y1 - y0)
                top = y1 + GROUP_GAP


def _sink_depth(layout: Layout, node_id: str, xs) -> float:
    """How far a sunk node must go down so that each of its lanes runs below every node it passes."""
    depth = 0.0
    fed = {t.id for t in layout.nodes.values() if any(s == node_id for s, _, _ in t.inputs)}
    for target in layout.nodes.values():
        for source, slot, _ in target.inputs:
            if source != node_id or not _spans_columns(layout, source, target, xs):
                continue
            x0, x1 = layout.boxes[source].right, xs[(target.band, target.column)]
            passed = [b.bottom for n, b in layout.boxes.items() if b.x > x0 and b.right < x1 and n not in fed]
            lane = layout.boxes[source].output_slot(slot)[1]
            depth = max(depth, max(passed, default=lane) + CLEARANCE - lane)
    return depth


def place(layout: Layout) -> None:
    """Positions from the column order, the pushes in `extra` and the sunk nodes."""
    _one_pass(layout)
    xs = _column_x(layout)
    for _ in range(8):
        depths = {n: _sink_depth(layout, n, xs) for n in layout.sunk}
        if all(d <= 0.5 for d in depths.values()):
            return
        for node_id, depth in depths.items():
            if depth > 0.5:
                layout.extra[node_id] = layout.extra.get(node_id, 0.0) + depth
        _one_pass(layout)


def long_link_sources(layout: Layout) -> list[str]:
    xs = _column_x(layout)
    return sorted({s for t in layout.nodes.values() for s, _, _ in t.inputs if _spans_columns(layout, s, t, xs)},
                  key=int)


def link_points(layout: Layout, target: Node, source: str, slot: int, name: str):
    start = layout.boxes[source].output_slot(slot)
    end = layout.boxes[target.id].input_slot(_input_row(target, name))
    return link_curve(start, end)


def iter_crossings(layout: Layout):
    """(source id, target id, input name) and the id of each node a link passes through, lazily."""
    for target in layout.nodes.values():
        for source, slot, name in target.inputs:
            points = link_points(layout, target, source, slot, name)
            for other, box in layout.boxes.items():
                if other not in (source, target.id) and curve_hits_box(points, box):
                    yield (source, target.id, name), other


def crossings(layout: Layout) -> list[tuple[tuple[str, str, str], str]]:
    return list(iter_crossings(layout))


def _fix(layout: Layout, link, crossed: str) -> None:
    """Push down what makes a link cross a node, the shorter of two moves: the link's higher end (so the
    link runs level) or the crossed node (below the link)."""
    source, target, name = link
    node = layout.nodes[target]
    slot = next(s for src, s, n in node.inputs if src == source and n == name)
    start = layout.boxes[source].output_slot(slot)
    end = layout.boxes[target].input_slot(_input_row(node, name))
    box = layout.boxes[crossed]
    ys = [y for x, y in link_curve(start, end, 400) if box.x - CLEARANCE <= x <= box.right + CLEARANCE]
    below = max(max(ys, default=box.top) + CLEARANCE - box.top, CLEARANCE)
    level = abs(start[1] - end[1])
    if 0.5 < level < below:
        higher = source if start[1] < end[1] else target
        layout.extra[higher] = layout.extra.get(higher, 0.0) + level
        return
    layout.extra[crossed] = layout.extra.get(crossed, 0.0) + below


def untangle(layout: Layout, strict: bool = True) -> None:
    for _ in range(MAX_MOVES):
        found = next(iter_crossings(layout), None)
        if found is None:
            return
        _fix(layout, *found)
        place(layout)
    left = next(iter_crossings(layout), None)
    if left is not None and strict:
        (source, target, name), crossed = left
        raise ValueError(f"could not lay out the workflow without crossing: the link {source} -> {target}.{name} "
                         f"passes through node {crossed}; change the node's group or size in ui_place.py")


def initial_order(layout: Layout) -> None:
    layout.order = {}
    for node_id in sorted(layout.nodes, key=int):
        node = layout.nodes[node_id]
        layout.order.setdefault((node.band, node.group, node.column), []).append(node_id)


def reorder_by_neighbours(layout: Layout) -> None:
    """Sort each column by the mean height of the nodes its nodes are linked to (barycentre)."""
    neighbours: dict[str, list[float]] = {}
    for node in layout.nodes.values():
        for source, _, _ in node.inputs:
            neighbours.setdefault(source, []).append(layout.boxes[node.id].y)
            neighbours.setdefault(node.id, []).append(layout.boxes[source].y)
    for ids in layout.order.values():
        ids.sort(key=lambda n: sum(neighbours.get(n, [layout.boxes[n].y])) / len(neighbours.get(n, [0])))
