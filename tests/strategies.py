"""Hypothesis strategies: random valid charts and random event streams for them."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

from app.core.guards import GuardRegistry
from app.core.loader import load_chart
from app.core.model import Chart
from app.core.snapshot import Snapshot
from app.spi.envelopes import Event

EVENTS = ["E1", "E2", "E3"]
# Some guards and assignments fail at run time on purpose (missing keys, wrong types).
WHENS = ["data.n % 2 == 0", "data.n > 2", "event.payload.x == 1", "data.missing > 1", "data.n"]
ASSIGNS = ["data.n + 1", "data.n * 2", "event.payload.x", "'text'", "data.n / 0"]


@st.composite
def charts(draw: st.DrawFn) -> Chart:
    """A random valid chart: compound, parallel and history states, guards, timers, effects."""
    top = draw(st.integers(min_value=2, max_value=4))
    names = [f"s{i}" for i in range(top)]
    states: dict[str, Any] = {}
    all_paths: list[str] = []
    for name in names[:-1]:
        states[name] = draw(_state(name, all_paths, depth=0))
    states[names[-1]] = {"type": "final", "status": draw(st.sampled_from(["done", "failed"]))}
    all_paths = list(_walk(states, ""))
    doc = {
        "rss": 1,
        "workflow": "rnd",
        "version": 1,
        "data": {"n": 0},
        "initial": names[0],
        "states": states,
    }
    # Make every top-level state reachable from the initial one.
    first = states[names[0]]
    first.setdefault("on", {}).update({f"JUMP_{n}": f"#{n}" for n in names[1:]})
    _add_transitions(draw, states, all_paths)
    return load_chart(yaml.safe_dump(doc, sort_keys=False), "random.yaml", GuardRegistry())


@st.composite
def _state(draw: st.DrawFn, path: str, all_paths: list[str], depth: int) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["atomic", "atomic", "compound", "parallel"] if depth < 2 else ["atomic"])
    )
    node: dict[str, Any] = {}
    if kind in ("compound", "parallel"):
        count = draw(st.integers(min_value=2, max_value=3))
        children = {
            f"c{i}": draw(_state(f"{path}.c{i}", all_paths, depth + 1)) for i in range(count)
        }
        node["states"] = children
        if kind == "parallel":
            node["type"] = "parallel"
        else:
            node["initial"] = "c0"
            if draw(st.booleans()):
                children[f"c{count - 1}"] = {"type": "final"}
                node["on_done"] = {"assign": {"done_count": "1"}}
            if draw(st.booleans()):
                node["states"]["h"] = {
                    "type": "history",
                    "history": draw(st.sampled_from(["shallow", "deep"])),
                }
            # every child reachable: the compound state itself can move to each one
            node["on"] = {f"GO_{c}": f"#{path}.{c}" for c in children if c not in ("c0", "h")}
    if draw(st.booleans()):
        node["entry"] = {"assign": {"n": draw(st.sampled_from(ASSIGNS))}}
    if draw(st.booleans()):
        node["entry"] = {
            **node.get("entry", {}),
            "effects": [{"name": "work", "compensate": "undo"}],
        }
        node.setdefault("on", {})["work.done"] = {"assign": {"worked": "true"}}
    if draw(st.booleans()):
        node["after"] = [
            {
                "delay": draw(st.sampled_from(["0s", "1s", "15m"])),
                "when": draw(st.sampled_from(WHENS[:3])),
            }
        ]
    return node


def _add_transitions(draw: st.DrawFn, states: dict[str, Any], all_paths: list[str]) -> None:
    targets = list(all_paths)
    for path in all_paths:
        node = _node(states, path)
        if node.get("type") in ("final", "history"):
            continue
        for event in draw(st.lists(st.sampled_from(EVENTS), max_size=2, unique=True)):
            transition: dict[str, Any] = {}
            if draw(st.booleans()):
                transition["target"] = "#" + draw(st.sampled_from(targets))
            if draw(st.booleans()):
                transition["when"] = draw(st.sampled_from(WHENS))
            if draw(st.booleans()):
                transition["assign"] = {"n": draw(st.sampled_from(ASSIGNS))}
            node.setdefault("on", {})[event] = transition
        if draw(st.integers(0, 5)) == 0 and "states" not in node:
            node["always"] = {"when": "data.n < 3", "assign": {"n": "data.n + 1"}}
        if path.count(".") and draw(st.integers(0, 4)) == 0:
            parent = path.rpartition(".")[0]
            if "h" in _node(states, parent).get("states", {}):
                node.setdefault("on", {})["BACK"] = f"#{parent}.h"


def _walk(states: dict[str, Any], prefix: str) -> Any:
    for name, node in states.items():
        path = f"{prefix}.{name}" if prefix else name
        if node.get("type") != "history":
            yield path
        yield from _walk(node.get("states", {}), path)


def _node(states: dict[str, Any], path: str) -> dict[str, Any]:
    parts = path.split(".")
    node = states[parts[0]]
    for part in parts[1:]:
        node = node["states"][part]
    return node


def event_types(chart: Chart) -> list[str]:
    found = {e for node in chart.states.values() for e in node.transitions if not e.startswith("$")}
    return sorted(found | {"$cancel", "UNKNOWN"})


@st.composite
def event_scripts(draw: st.DrawFn, chart: Chart) -> list[tuple[str, dict[str, Any]]]:
    """Event types with payloads; ``$timer`` means: fire the earliest armed timer."""
    choices = [*event_types(chart), "$timer", "$timer"]
    length = draw(st.integers(min_value=0, max_value=12))
    payloads = st.fixed_dictionaries({}, optional={"x": st.sampled_from([1, 2, 1.5, "a", None])})
    return [(draw(st.sampled_from(choices)), draw(payloads)) for _ in range(length)]


def materialize(
    chart: Chart, snapshot: Snapshot | None, kind: str, payload: dict[str, Any], n: int
) -> Event:
    """Turn a scripted item into a concrete event for the current snapshot."""
    at = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
    if kind == "$timer" and snapshot is not None and snapshot.timers:
        timer = min(snapshot.timers, key=lambda t: t.deadline)
        at = max(at, timer.deadline)
        return Event(chart.workflow, "i", timer.event, f"ev{n}", at, {}, timer_id=timer.id)
    kind = "TICK" if kind == "$timer" else kind
    return Event(chart.workflow, "i", kind, f"ev{n}", at, payload)
