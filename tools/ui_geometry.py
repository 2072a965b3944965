"""Where the ComfyUI frontend (LiteGraph) draws nodes, slots and links, as plain Python.

Facts taken from the frontend's own code (comfyui-frontend-package 1.27 and 1.5x agree):

- a node's `pos` is the top-left corner of its body; the title bar (30 px) sits above it, so the box
  a person sees is (x, y - 30, w, h + 30);
- input slot i (counting only the inputs drawn as sockets, not widgets) is at
  (x + 10, y + (i + 0.7) * 20), output slot j at (x + w + 1 - 10, y + (j + 0.7) * 20);
- a link (the default "spline" render mode) is the cubic Bezier from the output slot to the input
  slot with control points d = max(30, |end - start| / 4) to the right of the start and to the left
  of the end.

The layout (ui_layout.py) uses these to place nodes so that no link crosses a node; the browser
test checks the same rule with the geometry the frontend itself reports.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

TITLE_HEIGHT = 30
SLOT_HEIGHT = 20
CURVE_SEGMENTS = 48


@dataclass
class Box:
    """A node as drawn: body at (x, y) of size (w, h), with the title bar above it."""
    x: float
    y: float
    w: float
    h: float

    @property
    def top(self) -> float:
        return self.y - TITLE_HEIGHT

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def right(self) -> float:
        return self.x + self.w

    def input_slot(self, row: float) -> tuple[float, float]:
        return self.x + SLOT_HEIGHT * 0.5, self.y + (row + 0.7) * SLOT_HEIGHT

    def output_slot(self, row: int) -> tuple[float, float]:
        return self.x + self.w + 1 - SLOT_HEIGHT * 0.5, self.y + (row + 0.7) * SLOT_HEIGHT


@functools.lru_cache(maxsize=65536)
def link_curve(start: tuple[float, float], end: tuple[float, float], segments: int = CURVE_SEGMENTS):
    """Points along the frontend's spline from an output slot to an input slot (a tuple, cached)."""
    (x0, y0), (x3, y3) = start, end
    d = max(30.0, math.hypot(x3 - x0, y3 - y0) * 0.25)
    x1, y1, x2, y2 = x0 + d, y0, x3 - d, y3
    points = []
    for k in range(segments + 1):
        t = k / segments
        a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
        points.append((a * x0 + b * x1 + c * x2 + e * x3, a * y0 + b * y1 + c * y2 + e * y3))
    return tuple(points)


def _segment_hits_rect(p, q, rect) -> bool:
    """Liang-Barsky: does the segment p-q meet the rectangle (x0, y0, x1, y1)?"""
    x0, y0, x1, y1 = rect
    dx, dy = q[0] - p[0], q[1] - p[1]
    low, high = 0.0, 1.0
    for step, start_gap, end_gap in ((dx, p[0] - x0, x1 - p[0]), (dy, p[1] - y0, y1 - p[1])):
        for denom, num in ((-step, start_gap), (step, end_gap)):
            if denom == 0:
                if num < 0:
                    return False
                continue
            t = num / denom
            if denom < 0:
                low = max(low, t)
            else:
                high = min(high, t)
            if low > high:
                return False
    return True


@functools.lru_cache(maxsize=65536)
def _extent(points) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def curve_hits_box(points, box: Box, margin: float = 4.0) -> bool:
    """Whether a link curve passes through a node's drawn box (grown by `margin` on every side)."""
    points = tuple(points)
    rect = (box.x - margin, box.top - margin, box.right + margin, box.bottom + margin)
    left, top, right, bottom = _extent(points)
    if right < rect[0] or left > rect[2] or bottom < rect[1] or top > rect[3]:
        return False
    for p, q in zip(points, points[1:]):
        if max(p[0], q[0]) < rect[0] or min(p[0], q[0]) > rect[2] or max(p[1], q[1]) < rect[1] \
                or min(p[1], q[1]) > rect[3]:
            continue
        if _segment_hits_rect(p, q, rect):
            return True
    return False
