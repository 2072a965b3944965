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
import random

from ui_geometry import TITLE_HEIGHT
from ui_place import (  # noqa: F401
    GROUP_COLOURS,
    GROUPS,
    STORY_CLASS,
    STORY_WIDTH,
    Layout,
    assign_columns,
    initial_order,
    iter_crossings,
    long_link_sources,
    place,
    read_nodes,
    reorder_by_neighbours,
    untangle,
)

RESTARTS = 2             # seeded shuffles of the column orders to descend from, besides two fixed starts
SEED = 2505
MAX_PERMUTED = 4         # columns up to this many nodes try every order; longer ones single moves


def _cost(layout: Layout) -> float:
    """Smaller is better: first the crossings left (so a search can walk through tangled orders), then
    the fitted view's scale (larger is more readable, counted in steps of 0.001), then how far links
    climb or fall and nodes were pushed (tidier)."""
    place(layout)
    untangle(layout, strict=False)
    left = sum(1 for _ in iter_crossings(layout))
    travel = sum(abs(layout.boxes[s].output_slot(slot)[1] - layout.boxes[t.id].input_slot(0)[1])
                 for t in layout.nodes.values() for s, slot, _ in t.inputs)
    scale = round(whole_graph_view(layout)[0], 3)
    return 1000.0 * left - scale + 1e-7 * (travel + sum(layout.extra.values()))


def _candidate_orders(ids: list[str]) -> list[list[str]]:
    if len(ids) <= MAX_PERMUTED:
        return [list(p) for p in itertools.permutations(ids)]
    moves = [ids]
    for i, node_id in enumerate(ids):
        rest = ids[:i] + ids[i + 1:]
        moves += [rest[:j] + [node_id] + rest[j:] for j in range(len(ids)) if j != i]
    return moves


def _descend(layout: Layout) -> float:
    """Coordinate descent over the order of each column and whether each long link's source is sunk:
    keep every change that lowers the cost; returns the cost reached."""
    best = _cost(Layout(layout.nodes, order=layout.order, sunk=layout.sunk))
    for _ in range(2):
        for key in sorted(layout.order):
            for ids in _candidate_orders(layout.order[key]):
                trial = Layout(layout.nodes, order={**layout.order, key: ids}, sunk=layout.sunk)
                cost = _cost(trial)
                if cost < best - 1e-9:
                    best, layout.order = cost, trial.order
        place(layout)
        for source in long_link_sources(layout):
            trial = Layout(layout.nodes, order=layout.order, sunk=layout.sunk ^ {source})
            cost = _cost(trial)
            if cost < best - 1e-9:
                best, layout.sunk = cost, trial.sunk
    return best


def _starts(layout: Layout) -> list[dict]:
    """Column orders to descend from: by neighbour height, by node id, and a few shuffles of those
    (seeded, so the layout is the same on every run)."""
    rng = random.Random(SEED)
    by_id = {key: sorted(ids, key=int) for key, ids in layout.order.items()}
    starts = [layout.order, by_id]
    for _ in range(RESTARTS):
        starts.append({key: rng.sample(ids, len(ids)) for key, ids in layout.order.items()})
    return starts


def lay_out(api: dict, object_info: dict, strict: bool = True) -> Layout:
    layout = Layout(read_nodes(api, object_info))
    assign_columns(layout.nodes)
    initial_order(layout)
    place(layout)
    for _ in range(2):
        reorder_by_neighbours(layout)
        place(layout)
    results = []
    for start in _starts(layout):
        trial = Layout(layout.nodes, order={key: list(ids) for key, ids in start.items()})
        results.append((_descend(trial), len(results), trial))
    best = min(results, key=lambda r: r[:2])[2]
    layout.order, layout.sunk, layout.extra = best.order, best.sunk, {}
    place(layout)
    untangle(layout, strict)
    return layout


# The canvas a workflow is fitted to when it opens: a full-HD browser window (1920 x 1080) less the
# frontend's side bar and menu (ComfyUI 0.3.64's frontend: a 1856 x 1002 canvas), with room kept for
# the newer frontends' side bar (left) and tab bar and run toolbar (top) drawn over the canvas, and
# for the minimap and zoom controls both frontends draw over the canvas's bottom-right corner.
VIEW = (1856.0, 1002.0)
VIEW_MARGINS = (70.0, 90.0, 20.0, 20.0)   # left, top, right, bottom
MINIMAP = (1530.0, 725.0)                 # canvas x, y from which the bottom-right corner is covered
# Below this scale the frontend draws nodes without text (its minimum font size for detail, 8 px,
# over its 14 px node font); the fitted view should stay at or above it.
READABLE_SCALE = 8 / 14


def _clear_of_minimap(layout: Layout, scale: float, offset: tuple[float, float]) -> bool:
    return all((b.right + offset[0]) * scale < MINIMAP[0] or (b.bottom + offset[1]) * scale < MINIMAP[1]
               for b in layout.boxes.values())


def _extent(layout: Layout) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of every group and node (titles included)."""
    rects = list(layout.groups.values()) + [(b.x, b.top, b.w, b.h + TITLE_HEIGHT) for b in layout.boxes.values()]
    return (min(r[0] for r in rects), min(r[1] for r in rects),
            max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects))


def whole_graph_view(layout: Layout) -> tuple[float, tuple[float, float]]:
    """(scale, offset) that shows the whole graph in VIEW, top-aligned and centred across, with no node
    under the minimap corner (the largest such scale, in steps of 0.5 %)."""
    x0, y0, x1, y1 = _extent(layout)
    left, top, right, bottom = VIEW_MARGINS
    room_w, room_h = VIEW[0] - left - right, VIEW[1] - top - bottom
    scale = min(room_w / (x1 - x0), room_h / (y1 - y0), 1.0)
    for step in range(60):
        trial = scale * (1 - 0.005 * step)
        screen_x = left + (room_w - (x1 - x0) * trial) / 2
        offset = (screen_x / trial - x0, top / trial - y0)
        if _clear_of_minimap(layout, trial, offset):
            return trial, offset
    screen_x = left + (room_w - (x1 - x0) * scale) / 2
    return scale, (screen_x / scale - x0, top / scale - y0)


def fitted_view(layout: Layout) -> dict:
    """extra.ds (scale, offset) the workflow opens at: the whole graph (`whole_graph_view`) when that is
    readable; a graph that fits only below READABLE_SCALE opens at that scale from its top-left corner
    instead (the Story group and the models in view and readable, the rest one pan away)."""
    scale, offset = whole_graph_view(layout)
    if scale < READABLE_SCALE:
        x0, y0, _, _ = _extent(layout)
        scale = math.ceil(READABLE_SCALE * 1e4) / 1e4
        offset = (VIEW_MARGINS[0] / scale - x0, VIEW_MARGINS[1] / scale - y0)
    return {"scale": round(scale, 4), "offset": [round(offset[0], 1), round(offset[1], 1)]}
