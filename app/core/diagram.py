"""Diagrams of a chart: Mermaid ``stateDiagram-v2`` and Graphviz DOT.

Compound states and parallel regions are nested clusters; edges carry the event, the guard,
the events the transition raises and the effects/computes it dispatches. A state that
invokes child workflows says which (a note in Mermaid, a label line in DOT).
"""

from __future__ import annotations

from collections.abc import Iterator

from app.core.durations import format_duration
from app.core.model import ROOT, Chart, InvokeSpec, StateNode, Transition


def edge_label(chart: Chart, transition: Transition) -> str:
    """``EVENT [guard] / raise X, effects, computes`` as one line (in the order they run)."""
    event = _event_label(chart, transition)
    parts = [event]
    if transition.guard:
        parts.append(f"[{transition.guard}]")
    elif transition.when is not None:
        parts.append(f"[{transition.when.source}]")
    work = [f"raise {r.event}" for r in transition.actions.raises]
    work += [f"{d.name}{'' if d.mode == 'await' else ' (ff)'}" for d in transition.actions.effects]
    work += [f"{d.name} (compute)" for d in transition.actions.computes]
    if work:
        parts.append("/ " + ", ".join(work))
    return " ".join(parts)


def invoke_label(spec: InvokeSpec) -> str:
    """``invoke ship → shipment v2 (timeout 2h)``; without a pin the latest version runs."""
    pin = f" v{spec.version}" if spec.version is not None else ""
    limit = f" (timeout {format_duration(spec.timeout_ms)})" if spec.timeout_ms is not None else ""
    return f"invoke {spec.name} → {spec.workflow}{pin}{limit}"


def _history_mark(node: StateNode) -> str:
    return "H*" if node.history_type == "deep" else "H"


def _event_label(chart: Chart, transition: Transition) -> str:
    event = transition.event
    if event is None:
        return "always"
    if event.startswith("$after."):
        node = chart.states[transition.source]
        timer = next(t for t in node.after if t.event == event)
        return f"after {format_duration(timer.delay_ms)}"
    if event.startswith("$done."):
        return "done"
    return event


def _edges(chart: Chart) -> Iterator[tuple[str, str, str]]:
    for transition in chart.transitions():
        label = edge_label(chart, transition)
        for target in transition.targets or (transition.source,):
            yield transition.source, target, label


# -- Mermaid -------------------------------------------------------------------------------


def _mid(path: str) -> str:
    return path.replace(".", "__")


def _mermaid_text(text: str) -> str:
    for raw, code in (
        (":", "#58;"),
        (";", "#59;"),
        ('"', "#quot;"),
        ("{", "#123;"),
        ("}", "#125;"),
    ):
        text = text.replace(raw, code)
    return text


def to_mermaid(chart: Chart) -> str:
    lines = ["stateDiagram-v2"]
    if chart.description:
        lines.insert(0, f"%% {chart.workflow} v{chart.version}: {chart.description}")
    lines.extend(_mermaid_children(chart, chart.root, "    "))
    for source, target, label in _edges(chart):
        lines.append(f"    {_mid(source)} --> {_mid(target)} : {_mermaid_text(label)}")
    return "\n".join(lines) + "\n"


def _mermaid_children(chart: Chart, node: StateNode, indent: str) -> Iterator[str]:
    if node.is_compound or node.path == ROOT:
        yield f"{indent}[*] --> {_mid(node.initial or '')}"
    for index, child_path in enumerate(node.children):
        if node.is_parallel and index:
            yield f"{indent}--"
        yield from _mermaid_state(chart, chart.states[child_path], indent)


def _mermaid_note(node: StateNode, indent: str) -> Iterator[str]:
    """The child workflows a state invokes, as a note beside it at its own level (a note
    outside a state's composite would re-parent the state in Mermaid)."""
    if node.invoke:
        yield f"{indent}note right of {_mid(node.path)}"
        yield from (f"{indent}    {invoke_label(spec)}" for spec in node.invoke)
        yield f"{indent}end note"


def _mermaid_state(chart: Chart, node: StateNode, indent: str) -> Iterator[str]:
    ident = _mid(node.path)
    if node.is_history:
        yield f'{indent}state "{_history_mark(node)}" as {ident}'
        return
    if node.children:
        kind = " (parallel)" if node.is_parallel else ""
        yield f'{indent}state "{node.name}{kind}" as {ident} {{'
        yield from _mermaid_children(chart, node, indent + "    ")
        yield f"{indent}}}"
        yield from _mermaid_note(node, indent)
        return
    yield f'{indent}state "{node.name}" as {ident}'
    yield from _mermaid_note(node, indent)
    if node.is_final:
        yield f"{indent}{ident} --> [*]"


# -- DOT -----------------------------------------------------------------------------------


def _dot_id(path: str) -> str:
    return '"' + (path or "root") + '"'


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(chart: Chart) -> str:
    lines = [
        f'digraph "{chart.workflow}" {{',
        "    compound=true; rankdir=LR; node [shape=box, style=rounded, fontname=Helvetica];",
        f'    label="{_dot_text(chart.workflow)} v{chart.version}"; labelloc=t;',
        '    "__start" [shape=point];',
        f'    "__start" -> {_dot_id(_anchor(chart, chart.root.initial or ""))};',
    ]
    for child in chart.root.children:
        lines.extend(_dot_state(chart, chart.states[child], "    "))
    for source, target, label in _edges(chart):
        attrs = [f'label="{_dot_text(label)}"']
        if chart.states[source].children:
            attrs.append(f'ltail="cluster_{source}"')
        if chart.states[target].children:
            attrs.append(f'lhead="cluster_{target}"')
        src, dst = _dot_id(_anchor(chart, source)), _dot_id(_anchor(chart, target))
        lines.append(f"    {src} -> {dst} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _anchor(chart: Chart, path: str) -> str:
    """Edges to or from a cluster attach to an invisible point inside it."""
    return f"{path}.__anchor" if chart.states[path].children else path


def _dot_state(chart: Chart, node: StateNode, indent: str) -> Iterator[str]:
    ident = _dot_id(node.path)
    if node.is_history:
        yield f'{indent}{ident} [label="{_history_mark(node)}", shape=circle];'
        return
    invokes = "".join(f"\\n{_dot_text(invoke_label(spec))}" for spec in node.invoke)
    if not node.children:
        shape = ", peripheries=2" if node.is_final else ""
        yield f'{indent}{ident} [label="{node.name}{invokes}"{shape}];'
        return
    style = "dashed" if node.is_parallel else "rounded"
    kind = " (parallel)" if node.is_parallel else ""
    yield f'{indent}subgraph "cluster_{node.path}" {{'
    yield f'{indent}    label="{node.name}{kind}{invokes}"; style={style};'
    yield f"{indent}    {_dot_id(node.path + '.__anchor')} [shape=point, style=invis];"
    for child in node.children:
        yield from _dot_state(chart, chart.states[child], indent + "    ")
    yield f"{indent}}}"
