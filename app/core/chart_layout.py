"""Where each state of a chart goes in its drawing (:mod:`app.core.chart_svg` draws it).

A deterministic, dependency-free layout. Every compound state (and the root) lays its
children out in columns, left to right: a child's column is its distance from the
container's initial child over the transitions between the children (a transition deeper
down counts for the children that hold its ends); children nothing reaches come last. A
parallel state stacks its regions top to bottom. Sizes come from the text each box holds,
measured with a fixed average character width, so the same chart always gives the same
numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.core.diagram import edge_label, invoke_label
from app.core.model import ROOT, Actions, Chart, StateNode, Transition

EM_REGULAR = 60  # average character width, in hundredths of the font size (DejaVu Sans)
EM_BOLD = 68
NAME_SIZE = 12  # font sizes: state names
NOTE_SIZE = 11  # notes and edge labels
NAME_H = 24  # a box's name line
LINE_H = 15  # each note line
PAD = 10  # inside a box, around its children
INIT_W = 26  # left of a container's children: the initial marker
GAP_X = 90  # between columns: room for the edge labels
GAP_Y = 22  # between boxes in a column, and between regions
MIN_W = 96
HISTORY = 28  # diameter of a history state's circle
LABEL_CLEARANCE = 6  # between an arrow's label and its source box
TEXT_MAX = 46  # characters of one line of text; longer lines end in an ellipsis


@dataclass(frozen=True, slots=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True, slots=True)
class Edge:
    """An arrow from one box to another, with every label of the transitions it stands for."""

    source: str
    target: str
    labels: tuple[str, ...]


@dataclass
class Layout:
    boxes: dict[str, Box] = field(default_factory=dict)  # state path -> absolute box
    notes: dict[str, list[str]] = field(default_factory=dict)  # state path -> note lines
    edges: list[Edge] = field(default_factory=list)
    far: set[int] = field(default_factory=set)  # edges labelled next to their target
    width: int = 0
    height: int = 0


@dataclass
class _Size:
    w: int
    h: int
    offsets: dict[str, tuple[int, int]]  # child path -> position inside this box


def clip(text: str, limit: int = TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_width(text: str, size: int = NOTE_SIZE, bold: bool = False) -> int:
    """An estimate of the text's width in pixels (generous: wide fonts fit)."""
    return -(-len(text) * size * (EM_BOLD if bold else EM_REGULAR) // 100)


def label_size(labels: tuple[str, ...]) -> tuple[int, int]:
    """Width and height of an edge's label block."""
    return max(text_width(label) for label in labels) + 8, LINE_H * len(labels) + 4


def is_related(a: str, b: str) -> bool:
    """One state is the other or lies inside it (such a transition is a note, not an arrow)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".") or not a or not b


def layout_chart(chart: Chart) -> Layout:
    result = Layout()
    for node in chart.states.values():
        result.notes[node.path] = [clip(line) for line in _notes(chart, node)]
    result.edges = _edges(chart)
    sizes: dict[str, _Size] = {}
    _measure(chart, chart.root, result, sizes)
    _place(chart, ROOT, 0, 0, sizes, result.boxes)
    root = sizes[ROOT]
    result.width, result.height = root.w, root.h
    return result


# -- notes and edges -------------------------------------------------------------------------


def _action_words(actions: Actions) -> list[str]:
    words = [f"raise {r.event}" for r in actions.raises]
    words += [d.name + ("" if d.mode == "await" else " (ff)") for d in actions.effects]
    return words + [f"{d.name} (compute)" for d in actions.computes]


def _notes(chart: Chart, node: StateNode) -> Iterator[str]:
    """What a box says under its name: invokes, entry/exit work, and the transitions that
    stay inside it (to itself, to a descendant, or with no target)."""
    if not node.path:
        return
    yield from (invoke_label(spec) for spec in node.invoke)
    for word, actions in (("entry", node.entry), ("exit", node.exit)):
        if not actions.is_empty and (work := _action_words(actions)):
            yield f"{word} / {', '.join(work)}"
    for transition in _own_transitions(node):
        ends = [t for t in transition.targets if is_related(transition.source, t)]
        if transition.targets and not ends:
            continue
        where = ", ".join(t[len(node.path) + 1 :] or "self" for t in ends)
        yield f"↻ {edge_label(chart, transition)}" + (f" → {where}" if where else "")


def _own_transitions(node: StateNode) -> list[Transition]:
    found = [t for group in node.transitions.values() for t in group]
    return sorted([*found, *node.always], key=lambda t: t.order)


def _edges(chart: Chart) -> list[Edge]:
    labels: dict[tuple[str, str], list[str]] = {}
    for transition in chart.transitions():
        for target in transition.targets:
            if not is_related(transition.source, target):
                pair = (transition.source, target)
                labels.setdefault(pair, []).append(clip(edge_label(chart, transition)))
    return [Edge(source, target, tuple(text)) for (source, target), text in labels.items()]


# -- sizes -------------------------------------------------------------------------------------


def _header_width(node: StateNode, layout: Layout) -> int:
    widths = [text_width(clip(title(node)), NAME_SIZE, bold=True)]
    widths += [text_width(line) for line in layout.notes[node.path]]
    return max(MIN_W, max(widths) + 2 * PAD)


def title(node: StateNode) -> str:
    return f"{node.name} (parallel)" if node.is_parallel else node.name


def _header_height(layout: Layout, path: str) -> int:
    return NAME_H + LINE_H * len(layout.notes[path]) if path else 0


def _measure(chart: Chart, node: StateNode, layout: Layout, sizes: dict[str, _Size]) -> _Size:
    for child in node.children:
        _measure(chart, chart.states[child], layout, sizes)
    if node.is_history:
        size = _Size(HISTORY, HISTORY, {})
    elif not node.children:
        width = _header_width(node, layout)
        size = _Size(width, _header_height(layout, node.path) + 6, {})
    elif node.is_parallel:
        size = _measure_regions(chart, node, layout, sizes)
    else:
        size = _measure_columns(chart, node, layout, sizes)
    sizes[node.path] = size
    return size


def _measure_regions(
    chart: Chart, node: StateNode, layout: Layout, sizes: dict[str, _Size]
) -> _Size:
    """Regions stacked top to bottom, each as wide as the widest."""
    top = _header_height(layout, node.path)
    widest = max(sizes[child].w for child in node.children)
    offsets: dict[str, tuple[int, int]] = {}
    y = top
    for child in node.children:
        sizes[child] = _stretched(sizes[child], widest)
        offsets[child] = (PAD, y)
        y += sizes[child].h + GAP_Y
    width = max(widest + 2 * PAD, _header_width(node, layout))
    return _Size(width, y - GAP_Y + PAD, offsets)


def _stretched(size: _Size, width: int) -> _Size:
    """A region made as wide as its siblings, its children centred in the new width."""
    shift = (width - size.w) // 2
    offsets = {path: (x + shift, y) for path, (x, y) in size.offsets.items()}
    return _Size(width, size.h, offsets)


def _measure_columns(
    chart: Chart, node: StateNode, layout: Layout, sizes: dict[str, _Size]
) -> _Size:
    top = _header_height(layout, node.path) + (0 if node.path else PAD)
    links = _sibling_links(node.path, node.children, layout.edges)
    columns = _columns(node, links)
    gaps = _gaps(columns, links, _leaving(node.path, layout.edges))
    _mark_far(node.path, columns, layout)
    tallest = max(_column_height(col, sizes) for col in columns)
    offsets: dict[str, tuple[int, int]] = {}
    x = PAD + INIT_W
    for index, column in enumerate(columns):
        col_w = max(sizes[child].w for child in column)
        y = top + (tallest - _column_height(column, sizes)) // 2
        for child in column:
            offsets[child] = (x + (col_w - sizes[child].w) // 2, y)
            y += sizes[child].h + GAP_Y
        x += col_w + gaps[index]
    width = max(x - gaps[-1] + PAD, _header_width(node, layout))
    return _Size(width, top + tallest + PAD, offsets)


def _column_height(column: list[str], sizes: dict[str, _Size]) -> int:
    return sum(sizes[child].h for child in column) + GAP_Y * (len(column) - 1)


def _gaps(
    columns: list[list[str]], links: dict[str, dict[str, int]], leaving: dict[str, int]
) -> list[int]:
    """The room after each column: at least :data:`GAP_X`, and enough for the labels drawn
    there, both ways: an arrow's label sits next to the box it leaves (or, crossing a
    column, the box it enters). Arrows leaving the container are taken to go right."""
    where = {child: i for i, column in enumerate(columns) for child in column}
    rightward = [0] * len(columns)  # labels against the gap's left side
    leftward = [0] * len(columns)  # labels against its right side
    for child, width in leaving.items():
        rightward[where[child]] = max(rightward[where[child]], width + LABEL_CLEARANCE)
    for source, targets in links.items():
        for target, width in targets.items():
            gap, side = _label_gap(where[source], where[target])
            if gap is not None:
                need = rightward if side == "right" else leftward
                need[gap] = max(need[gap], width + LABEL_CLEARANCE)
    return [
        max(GAP_X, right + left + 24 if right and left else right + left + 32)
        for right, left in zip(rightward, leftward, strict=True)
    ]


def _label_gap(source: int, target: int) -> tuple[int | None, str]:
    """Which gap holds the label of an arrow between two columns, and against which side:
    next to the source, or next to the target when the arrow crosses a column between."""
    if target == source:
        return None, ""
    if target > source:
        return (source, "right") if target == source + 1 else (target - 1, "left")
    return (source - 1, "left") if target == source - 1 else (target, "right")


def _mark_far(container: str, columns: list[list[str]], layout: Layout) -> None:
    """Remember the arrows whose labels go next to their target (see :func:`_label_gap`)."""
    where = {child: i for i, column in enumerate(columns) for child in column}
    prefix = container + "." if container else ""
    for index, edge in enumerate(layout.edges):
        if not (edge.source.startswith(prefix) and edge.target.startswith(prefix)):
            continue
        a = where.get(prefix + edge.source[len(prefix) :].split(".")[0])
        b = where.get(prefix + edge.target[len(prefix) :].split(".")[0])
        if a is not None and b is not None and abs(a - b) > 1:
            layout.far.add(index)


def _columns(node: StateNode, links: dict[str, dict[str, int]]) -> list[list[str]]:
    """The container's children by their distance from its initial child (breadth first),
    a child moved one column on where a child found before it in its column leads to it;
    document order within a column; children nothing reaches fill one last column."""
    start = node.initial or node.children[0]
    rank = {start: 0}
    found = [start]
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for nxt in links.get(current, {}):
            if nxt not in rank:
                rank[nxt] = rank[current] + 1
                found.append(nxt)
                queue.append(nxt)
    _spread(found, rank, links)
    last = max(rank.values()) + 1
    columns: list[list[str]] = [[] for _ in range(last + 1)]
    for child in node.children:
        columns[rank.get(child, last)].append(child)
    return [column for column in columns if column]


def _spread(found: list[str], rank: dict[str, int], links: dict[str, dict[str, int]]) -> None:
    """In discovery order (so each move is final and the loop ends): a child that an earlier
    found child of its column leads to goes one column further, so the arrow between them
    runs across a gap rather than along a column."""
    order = {child: index for index, child in enumerate(found)}
    for child in found:
        for nxt in links.get(child, {}):
            if nxt in rank and rank[nxt] == rank[child] and order[nxt] > order[child]:
                rank[nxt] = rank[child] + 1


def _leaving(container: str, edges: list[Edge]) -> dict[str, int]:
    """The widest label of the arrows from each child (or inside it) to outside the
    container."""
    prefix = container + "." if container else ""
    found: dict[str, int] = {}
    for edge in edges:
        if edge.source.startswith(prefix) and not edge.target.startswith(prefix):
            child = prefix + edge.source[len(prefix) :].split(".")[0]
            found[child] = max(found.get(child, 0), label_size(edge.labels)[0])
    return found


def _sibling_links(
    container: str, children: tuple[str, ...], edges: list[Edge]
) -> dict[str, dict[str, int]]:
    """Edges lifted to the container's children that hold their ends, in document order,
    with the width of the widest label between each pair."""
    prefix = container + "." if container else ""
    links: dict[str, dict[str, int]] = {}
    for edge in edges:
        if not (edge.source.startswith(prefix) and edge.target.startswith(prefix)):
            continue
        a = prefix + edge.source[len(prefix) :].split(".")[0]
        b = prefix + edge.target[len(prefix) :].split(".")[0]
        if a != b and a in children and b in children:
            targets = links.setdefault(a, {})
            targets[b] = max(targets.get(b, 0), label_size(edge.labels)[0])
    return links


# -- absolute positions ------------------------------------------------------------------------


def _place(
    chart: Chart, path: str, x: int, y: int, sizes: dict[str, _Size], boxes: dict[str, Box]
) -> None:
    size = sizes[path]
    boxes[path] = Box(x, y, size.w, size.h)
    for child in chart.states[path].children:
        dx, dy = size.offsets[child]
        _place(chart, child, x + dx, y + dy, sizes, boxes)
