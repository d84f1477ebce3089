"""Where each arrow's label goes in a chart's drawing (:mod:`app.core.chart_svg`).

A label sits on its arrow, just clear of the source box (of the target box, for an arrow
that crosses a column of boxes on its way: the layout's ``far`` edges). Where that spot
overlaps a label placed before it or an atomic state's box, the label slides along its
arrow, a step at a time, to the first free spot (or, when there is none, the spot that
overlaps least). Labels are placed shortest arrow first, then in the layout's edge order,
so the result is deterministic. Overlaps are found through a grid of cells, so the cost
stays near linear in the number of labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from app.core.chart_layout import LABEL_CLEARANCE, Edge, Layout, label_size

Segment = tuple[float, float, float, float]
Rect = tuple[float, float, float, float]  # left, top, right, bottom
CELL = 120  # grid cell size, pixels
STEP = 12  # how far a label slides per try, pixels
MAX_TRIES = 150  # spots along one arrow
BUDGET = 40_000  # spots tried for all the labels of one drawing
# Across the line, in label heights: on it, then touching it from either side.
SHIFTS = (0.0, 0.4, -0.4, 0.55, -0.55)


class _Grid:
    """Rectangles by the grid cells they touch."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], list[Rect]] = {}

    def _cells(self, rect: Rect) -> Iterator[tuple[int, int]]:
        left, top, right, bottom = rect
        for cx in range(int(left // CELL), int(right // CELL) + 1):
            for cy in range(int(top // CELL), int(bottom // CELL) + 1):
                yield cx, cy

    def add(self, rect: Rect) -> None:
        for cell in self._cells(rect):
            self.cells.setdefault(cell, []).append(rect)

    def hits(self, rect: Rect, enough: int) -> int:
        """How many rectangles ``rect`` overlaps (one touching several cells counts once
        per cell: a measure, not an exact count), counting no further than ``enough``."""
        left, top, right, bottom = rect
        found = 0
        for cell in self._cells(rect):
            for a, b, c, d in self.cells.get(cell, ()):
                if left < c and a < right and top < d and b < bottom:
                    found += 1
                    if found >= enough:
                        return found
        return found


def place_labels(layout: Layout, segments: list[Segment], leaves: list[str]) -> list[Rect]:
    """Each edge's label rectangle, in the order of ``layout.edges``; ``leaves`` are the
    states drawn as boxes with nothing inside (labels keep off them). The labels of short
    arrows, which have the fewest spots, are placed first."""
    grid = _Grid()
    for path in leaves:
        box = layout.boxes[path]
        grid.add((box.x, box.y, box.x + box.w, box.y + box.h))
    placed: dict[int, Rect] = {}
    tries = max(2, min(MAX_TRIES, BUDGET // (len(SHIFTS) * max(1, len(segments)))))
    for index in sorted(range(len(segments)), key=lambda i: (_length(segments[i]), i)):
        x1, y1, x2, y2 = segment = segments[index]
        ends = (x2, y2, x1, y1) if index in layout.far else segment
        placed[index] = _free_spot(layout.edges[index], ends, grid, tries)
        grid.add(placed[index])
    return [placed[index] for index in range(len(segments))]


def _length(segment: Segment) -> float:
    x1, y1, x2, y2 = segment
    return math.hypot(x2 - x1, y2 - y1)


def _free_spot(edge: Edge, segment: Segment, grid: _Grid, tries: int) -> Rect:
    width, height = label_size(edge.labels)
    x1, y1, x2, y2 = segment
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    clear = min(
        (width / 2) / abs(ux) if ux else math.inf,
        (height / 2) / abs(uy) if uy else math.inf,
    )
    start = min(clear + LABEL_CLEARANCE, length / 2)
    best: tuple[int, Rect] | None = None
    for index in range(min(tries, int(length // STEP) + 1)):
        along = start + index * STEP
        if index and along > length - clear:
            break
        for shift in SHIFTS:
            x, y = x1 + ux * along, y1 + uy * along + shift * height
            rect = (x - width / 2, y - height / 2, x + width / 2, y + height / 2)
            hits = grid.hits(rect, best[0] if best else 1_000_000)
            if best is None or hits < best[0]:
                best = (hits, rect)
            if not hits:
                return rect
    assert best is not None
    return best[1]
