"""Lay a workflow out for people: four groups (Story, Models, Sampling, Output), links that run left
to right and cross no node, node sizes that show their widgets, and a view fitted to the graph.

ui_place.py places the nodes for a given order of every column (and a set of "sunk" nodes whose
long links run below everything they pass); this module searches those choices, column by column,
for the drawing the fitted view shows largest, and computes that view (`extra.ds`). Standard
library only.
"""

from __future__ import annotations

import itertools
import math

from ui_geometry import TITLE_HEIGHT
from ui_place import (GROUP_COLOURS, GROUPS, STORY_CLASS, STORY_WIDTH, Layout, _assign_columns,  # noqa: F401
                      _initial_order, _reorder_by_neighbours, long_link_sources, place, read_nodes, untangle)

MAX_PERMUTED = 4         # columns up to this many nodes try every order; longer ones single moves


def _cost(layout: Layout) -> float:
    """Smaller is better: the fitted view's scale counts (larger is more readable), then how far nodes
    were pushed from their natural place; a layout that cannot avoid a crossing costs infinity."""
    try:
        place(layout)
        untangle(layout)
    except ValueError:
        return math.inf
    return -fitted_view(layout)["scale"] + 1e-6 * sum(layout.extra.values())


def _candidate_orders(ids: list[str]) -> list[list[str]]:
    if len(ids) <= MAX_PERMUTED:
        return [list(p) for p in itertools.permutations(ids)]
    moves = [ids]
    for i, node_id in enumerate(ids):
        rest = ids[:i] + ids[i + 1:]
        moves += [rest[:j] + [node_id] + rest[j:] for j in range(len(ids)) if j != i]
    return moves


def _search(layout: Layout) -> None:
    """Coordinate descent over the order of each column and whether each long link's source is sunk:
    keep every change that lowers the cost."""
    best = _cost(Layout(layout.nodes, order=layout.order, sunk=layout.sunk))
    for _ in range(2):
        for key in sorted(layout.order):
            for ids in _candidate_orders(layout.order[key]):
                trial = Layout(layout.nodes, order={**layout.order, key: ids}, sunk=layout.sunk)
                cost = _cost(trial)
                if cost < best - 1e-9:
                    best, layout.order = cost, trial.order
        for source in long_link_sources(layout):
            trial = Layout(layout.nodes, order=layout.order, sunk=layout.sunk ^ {source})
            cost = _cost(trial)
            if cost < best - 1e-9:
                best, layout.sunk = cost, trial.sunk


def lay_out(api: dict, object_info: dict, input_specs, strict: bool = True) -> Layout:
    layout = Layout(read_nodes(api, object_info, input_specs))
    _assign_columns(layout.nodes)
    _initial_order(layout)
    place(layout)
    for _ in range(2):
        _reorder_by_neighbours(layout)
        place(layout)
    _search(layout)
    layout.extra = {}
    place(layout)
    untangle(layout, strict)
    return layout


# The canvas a workflow is fitted to when it opens: a full-HD browser window (1920 x 1080) less the
# frontend's side bar and menu (ComfyUI 0.3.64's frontend: a 1856 x 1002 canvas), with room kept for
# the newer frontends' side bar (left) and tab bar and run toolbar (top) drawn over the canvas.
VIEW = (1856.0, 1002.0)
VIEW_MARGINS = (70.0, 90.0, 20.0, 20.0)   # left, top, right, bottom
# Below this scale the frontend draws nodes without text (its minimum font size for detail, 8 px,
# over its 14 px node font); the fitted view should stay at or above it.
READABLE_SCALE = 8 / 14


def fitted_view(layout: Layout) -> dict:
    """extra.ds (scale, offset) that shows the whole graph in VIEW, top-aligned and centred across."""
    rects = list(layout.groups.values()) + [(b.x, b.top, b.w, b.h + TITLE_HEIGHT) for b in layout.boxes.values()]
    x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
    x1, y1 = max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects)
    left, top, right, bottom = VIEW_MARGINS
    room_w, room_h = VIEW[0] - left - right, VIEW[1] - top - bottom
    scale = min(room_w / (x1 - x0), room_h / (y1 - y0), 1.0)
    screen_x = left + (room_w - (x1 - x0) * scale) / 2
    return {"scale": round(scale, 4), "offset": [round(screen_x / scale - x0, 1), round(top / scale - y0, 1)]}
