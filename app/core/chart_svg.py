"""A chart drawn as SVG, with the instance's active states highlighted.

Pure and deterministic: the same chart and active set give the same text, byte for byte. No
scripts, no external references, no stylesheet: every colour is a presentation attribute,
so the drawing looks the same as a file, in an ``<img>`` and inlined in a page. Each state
is one ``<g class="state ..." data-state="<path>">`` (``active`` in its classes when the
instance is in it or inside it), drawn inside its parent's box: compound states as boxes
holding their children, parallel regions stacked and set apart by dashed lines, atomic
states as rounded boxes, final states with a double border, history states as circles. A
filled dot marks each container's initial child. Transitions between boxes are arrows
labelled like the Mermaid diagram's edges; transitions that stay inside a state are notes
in its box (``↻``), with its invokes and entry/exit work.

Charts beyond :data:`MAX_STATES` states or :data:`MAX_EDGES` arrows are not drawn: the
result is a small drawing that says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from xml.sax.saxutils import escape, quoteattr

from app.core.chart_labels import Rect, place_labels
from app.core.chart_layout import (
    LINE_H,
    NAME_H,
    NOTE_SIZE,
    PAD,
    Box,
    Edge,
    Layout,
    clip,
    layout_chart,
    text_width,
    title,
)
from app.core.model import ROOT, Chart, StateNode

MAX_STATES = 1_000
MAX_EDGES = 2_000
MARGIN = 16
SIDE_STEP = 5  # how far apart two arrows between the same boxes run
TITLE_H = 28
FONT = "font-family='system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif' font-size='12'"

# fill, stroke, stroke width: idle, active ancestor (a container the instance is inside),
# active leaf (where the instance is).
IDLE = ("#ffffff", "#64748b", "1.2")
CONTAINER = ("#f8fafc", "#94a3b8", "1.2")
ACTIVE_CONTAINER = ("#eff6ff", "#2563eb", "2")
ACTIVE_LEAF = ("#bfdbfe", "#1d4ed8", "2.5")
FAILED = "#b91c1c"
TEXT = "#0f172a"
MUTED = "#475569"
EDGE = "#475569"


def render_svg(chart: Chart, active: frozenset[str] = frozenset()) -> str:
    """The chart as one SVG document; ``active`` holds dotted state paths (their ancestors
    count as active too; paths the chart does not have are ignored)."""
    states = len(chart.states) - 1
    edges = sum(max(1, len(t.targets)) for t in chart.transitions())
    if states > MAX_STATES or edges > MAX_EDGES:
        return _too_large(chart, states, edges)
    layout = layout_chart(chart)
    lit = _with_ancestors(chart, active)
    width = layout.width + 2 * MARGIN
    height = layout.height + 2 * MARGIN + TITLE_H
    parts = [_open(width, height, f"{chart.workflow} v{chart.version}"), _defs()]
    parts.append(_text(MARGIN, MARGIN + 14, f"{chart.workflow} v{chart.version}", "bold", 14))
    parts.append(f"<g transform='translate({MARGIN},{MARGIN + TITLE_H})'>")
    parts.extend(_states(chart, chart.root, layout, lit))
    parts.extend(_arrows(chart, layout))
    parts.append("</g></svg>")
    return "\n".join(parts) + "\n"


def _with_ancestors(chart: Chart, active: frozenset[str]) -> frozenset[str]:
    known = [path for path in active if path in chart.states and path != ROOT]
    return frozenset(p for path in known for p in (path, *chart.states[path].ancestors) if p)


def _open(width: int, height: int, title: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' class='chart' {FONT}>"
        f"<title>{escape(title)}</title>"
    )


def _defs() -> str:
    return (
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='8' "
        f"markerHeight='8' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
        f"fill='{EDGE}'/></marker></defs>"
    )


def _text(x: float, y: float, text: str, weight: str = "normal", size: int = 12) -> str:
    return (
        f"<text x='{_n(x)}' y='{_n(y)}' font-weight='{weight}' font-size='{size}' "
        f"fill='{TEXT}'>{escape(text)}</text>"
    )


def _n(value: float) -> str:
    """A coordinate, with at most one decimal and never ``-0``."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# -- states ----------------------------------------------------------------------------------


def _states(chart: Chart, node: StateNode, layout: Layout, lit: frozenset[str]) -> Iterator[str]:
    """Each state's group, parents before (under) their children, in document order."""
    for child in node.children:
        state = chart.states[child]
        yield _open_group(state, lit)
        yield from _state_shape(chart, state, layout, lit)
        yield from _states(chart, state, layout, lit)
        yield "</g>"
    yield from _initial_marker(node, layout)


def _open_group(node: StateNode, lit: frozenset[str]) -> str:
    classes = ["state", node.type]
    if node.path in lit:
        classes.append("active")
    return f"<g class={quoteattr(' '.join(classes))} data-state={quoteattr(node.path)}>"


def _style(node: StateNode, lit: frozenset[str]) -> tuple[str, str, str]:
    leaf = not node.children
    if node.path in lit:
        return ACTIVE_LEAF if leaf else ACTIVE_CONTAINER
    fill, stroke, width = IDLE if leaf else CONTAINER
    if node.status == "failed":
        stroke = FAILED
    return fill, stroke, width


def _state_shape(
    chart: Chart, node: StateNode, layout: Layout, lit: frozenset[str]
) -> Iterator[str]:
    box = layout.boxes[node.path]
    fill, stroke, width = _style(node, lit)
    yield f"<title>{escape(node.path)}</title>"
    if node.is_history:
        mark = "H*" if node.history_type == "deep" else "H"
        yield (
            f"<circle cx='{_n(box.cx)}' cy='{_n(box.cy)}' r='{_n(box.w / 2)}' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='{width}'/>"
        )
        yield _centred(box.cx, box.cy + 4, mark, "bold")
        return
    dash = " stroke-dasharray='6 4'" if _is_region(chart, node) else ""
    radius = 10 if not node.children else 6
    yield (
        f"<rect x='{box.x}' y='{box.y}' width='{box.w}' height='{box.h}' rx='{radius}' "
        f"fill='{fill}' stroke='{stroke}' stroke-width='{width}'{dash}/>"
    )
    if node.is_final:
        yield (
            f"<rect x='{box.x + 4}' y='{box.y + 4}' width='{box.w - 8}' height='{box.h - 8}' "
            f"rx='7' fill='none' stroke='{stroke}' stroke-width='1'/>"
        )
    yield from _labels(node, box, layout)


def _is_region(chart: Chart, node: StateNode) -> bool:
    return node.parent is not None and chart.states[node.parent].is_parallel


def _labels(node: StateNode, box: Box, layout: Layout) -> Iterator[str]:
    name = clip(title(node))
    notes = layout.notes[node.path]
    if not node.children:
        yield _centred(box.cx, box.y + 17, name, "bold")
        for i, line in enumerate(notes):
            yield _centred(box.cx, box.y + NAME_H + 11 + i * LINE_H, line, "normal", MUTED, 11)
        return
    yield _text(box.x + PAD, box.y + 17, name, "bold")
    for i, line in enumerate(notes):
        y = box.y + NAME_H + 11 + i * LINE_H
        yield (
            f"<text x='{box.x + PAD}' y='{y}' font-size='11' fill='{MUTED}'>{escape(line)}</text>"
        )


def _centred(x: float, y: float, text: str, weight: str, colour: str = TEXT, size: int = 12) -> str:
    return (
        f"<text x='{_n(x)}' y='{_n(y)}' text-anchor='middle' font-weight='{weight}' "
        f"font-size='{size}' fill='{colour}'>{escape(text)}</text>"
    )


def _initial_marker(node: StateNode, layout: Layout) -> Iterator[str]:
    if node.initial is None or node.initial not in layout.boxes:
        return
    target = layout.boxes[node.initial]
    y = target.cy if target.h < 60 else target.y + 14
    x = target.x - 18
    yield f"<circle class='initial' cx='{_n(x)}' cy='{_n(y)}' r='5' fill='{TEXT}'/>"
    yield (
        f"<line x1='{_n(x + 5)}' y1='{_n(y)}' x2='{target.x}' y2='{_n(y)}' stroke='{TEXT}' "
        "stroke-width='1.2' marker-end='url(#arrow)'/>"
    )


# -- arrows ----------------------------------------------------------------------------------


def _arrows(chart: Chart, layout: Layout) -> Iterator[str]:
    """Lines first, then every label on top of every line."""
    boxes = layout.boxes
    pairs = {(e.source, e.target) for e in layout.edges}
    segments = [
        _segment(boxes[e.source], boxes[e.target], (e.target, e.source) in pairs)
        for e in layout.edges
    ]
    for edge, (x1, y1, x2, y2) in zip(layout.edges, segments, strict=True):
        yield (
            f"<line class='transition' data-source={quoteattr(edge.source)} "
            f"data-target={quoteattr(edge.target)} x1='{_n(x1)}' y1='{_n(y1)}' x2='{_n(x2)}' "
            f"y2='{_n(y2)}' stroke='{EDGE}' stroke-width='1.2' marker-end='url(#arrow)'/>"
        )
    leaves = [path for path, node in chart.states.items() if path and not node.children]
    rects = place_labels(layout, segments, leaves)
    for edge, rect in zip(layout.edges, rects, strict=True):
        yield from _edge_label(edge, rect)


def _edge_label(edge: Edge, rect: Rect) -> Iterator[str]:
    left, top, right, bottom = rect
    yield (
        f"<rect class='label' x='{_n(left)}' y='{_n(top)}' width='{_n(right - left)}' "
        f"height='{_n(bottom - top)}' rx='3' fill='#ffffff' fill-opacity='0.9'/>"
    )
    x = (left + right) / 2
    for i, label in enumerate(edge.labels):
        yield _centred(x, top + 13 + i * LINE_H, label, "normal", TEXT, NOTE_SIZE)


def _segment(a: Box, b: Box, both_ways: bool) -> tuple[float, float, float, float]:
    """The line between two boxes' centres, cut where it leaves each box; moved aside
    (to its left) when an arrow runs the other way too."""
    x1, y1 = _border_point(a, b.cx, b.cy)
    x2, y2 = _border_point(b, a.cx, a.cy)
    if both_ways:
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        nx, ny = (y2 - y1) / length * SIDE_STEP, -(x2 - x1) / length * SIDE_STEP
        return x1 + nx, y1 + ny, x2 + nx, y2 + ny
    return x1, y1, x2, y2


def _border_point(box: Box, towards_x: float, towards_y: float) -> tuple[float, float]:
    dx, dy = towards_x - box.cx, towards_y - box.cy
    if dx == 0 and dy == 0:
        return box.cx, box.cy
    scale = min(
        (box.w / 2) / abs(dx) if dx else math.inf,
        (box.h / 2) / abs(dy) if dy else math.inf,
    )
    return box.cx + dx * scale, box.cy + dy * scale


# -- too large ----------------------------------------------------------------------------


def _too_large(chart: Chart, states: int, edges: int) -> str:
    message = (
        f"{chart.workflow} v{chart.version}: {states} states and {edges} arrows, over the "
        f"{MAX_STATES} states / {MAX_EDGES} arrows drawn; see the Mermaid text instead"
    )
    width = text_width(message, 12) + 2 * MARGIN
    return (
        _open(width, 48, f"{chart.workflow} v{chart.version}")
        + _text(MARGIN, 28, message)
        + "</svg>\n"
    )
