"""Hypothesis strategies: random valid charts and random event streams for them; and
:class:`World`, instances of several charts that talk only by events (RSS v1.1 ``invoke``)."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import strategies as st

from app.core.guards import GuardRegistry
from app.core.interpreter import StepResult
from app.core.loader import load_chart
from app.core.model import Chart
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, timer_firing
from app.spi.envelopes import Event

EVENTS = ["E1", "E2", "E3"]
INTERNAL = ["I1", "I2"]  # names that transitions handle and actions `raise` (RSS v1.1)
# Some guards and assignments fail at run time on purpose (missing keys, wrong types).
WHENS = [
    "data.n % 2 == 0",
    "data.n > 2",
    "event.payload.x == 1",
    "data.missing > 1",
    "data.n",
    'in_state("s0")',
]
ASSIGNS = [
    "data.n + 1",
    "data.n * 2",
    "event.payload.x",
    "'text'",
    "data.n / 0",
    'in_state("s1") ? data.n : 7',
]
# Raised events: a name, or a name with a CEL payload (one of which fails at run time).
RAISES: list[Any] = [
    "I1",
    "I2",
    "E1",
    "E2",
    {"event": "I2", "payload": {"x": "data.n"}},
    {"event": "I1", "payload": {"x": "1"}},
    {"event": "I1", "payload": {"x": "data.n / 0"}},
]
KID = "kid"  # the workflow type generated charts invoke
# A child id: the default, a fixed one (a second start is refused), one from the data, and
# one that is not a string (the parent's step fails).
CHILD_IDS = [None, None, None, None, "'fixed'", "'k-' + string(data.n)", "data.n"]


@st.composite
def charts(draw: st.DrawFn, workflow: str = "rnd", invokes: str | None = KID) -> Chart:
    """A random valid chart: compound, parallel and history states, guards, timers, effects;
    RSS v1.1 ``raise`` actions, ``in_state`` calls, ``output`` on the final state, and (unless
    ``invokes`` is None) ``invoke`` entries starting ``invokes`` children."""
    top = draw(st.integers(min_value=2, max_value=4))
    names = [f"s{i}" for i in range(top)]
    states: dict[str, Any] = {}
    all_paths: list[str] = []
    for name in names[:-1]:
        states[name] = draw(_state(name, all_paths, depth=0, invokes=invokes))
    states[names[-1]] = {"type": "final", "status": draw(st.sampled_from(["done", "failed"]))}
    if draw(st.booleans()):
        states[names[-1]]["output"] = {"n": draw(st.sampled_from(["data.n", "data.n / 0"]))}
    all_paths = list(_walk(states, ""))
    doc = {
        "rss": 1,
        "workflow": workflow,
        "version": 1,
        "data": {"n": 0},
        "initial": names[0],
        "states": states,
    }
    # Make every top-level state reachable from the initial one.
    first = states[names[0]]
    first.setdefault("on", {}).update({f"JUMP_{n}": f"#{n}" for n in names[1:]})
    _add_transitions(draw, states, all_paths)
    return load_chart(yaml.safe_dump(doc, sort_keys=False), f"{workflow}.yaml", GuardRegistry())


@st.composite
def _state(
    draw: st.DrawFn, path: str, all_paths: list[str], depth: int, invokes: str | None = None
) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["atomic", "atomic", "compound", "parallel"] if depth < 2 else ["atomic"])
    )
    node: dict[str, Any] = {}
    if kind in ("compound", "parallel"):
        count = draw(st.integers(min_value=2, max_value=3))
        children = {
            f"c{i}": draw(_state(f"{path}.c{i}", all_paths, depth + 1, invokes))
            for i in range(count)
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
    if draw(st.integers(0, 4)) == 0:
        node["entry"] = {**node.get("entry", {}), "raise": [draw(st.sampled_from(RAISES))]}
    if invokes is not None and draw(st.integers(0, 2)) == 0:
        node["invoke"] = [draw(_invoke(path, invokes))]
        name = node["invoke"][0]["name"]
        node.setdefault("on", {}).update(
            {
                f"{name}.done": {"assign": {"n": "has(event.payload.n) ? event.payload.n : 0"}},
                f"{name}.failed": {"assign": {"failed": "event.payload.status"}},
                f"{name}.timeout": {"assign": {"timed_out": "true"}},
            }
        )
    return node


@st.composite
def _invoke(draw: st.DrawFn, path: str, workflow: str) -> dict[str, Any]:
    """One ``invoke`` entry; its name is unique in the chart (one per state)."""
    spec: dict[str, Any] = {"name": "kid_" + path.replace(".", "_"), "workflow": workflow}
    if draw(st.booleans()):
        spec["input"] = {"n": draw(st.sampled_from(["data.n", "data.n + 1", "'text'"]))}
    if draw(st.booleans()):
        spec["timeout"] = draw(st.sampled_from(["1s", "15m"]))
    child_id = draw(st.sampled_from(CHILD_IDS))
    if child_id is not None:
        spec["id"] = child_id
    return spec


def _add_transitions(draw: st.DrawFn, states: dict[str, Any], all_paths: list[str]) -> None:
    targets = list(all_paths)
    for path in all_paths:
        node = _node(states, path)
        if node.get("type") in ("final", "history"):
            continue
        for event in draw(st.lists(st.sampled_from(EVENTS + INTERNAL), max_size=2, unique=True)):
            transition: dict[str, Any] = {}
            if draw(st.booleans()):
                transition["target"] = "#" + draw(st.sampled_from(targets))
            if draw(st.booleans()):
                transition["when"] = draw(st.sampled_from(WHENS))
            if draw(st.booleans()):
                transition["assign"] = {"n": draw(st.sampled_from(ASSIGNS))}
            if draw(st.integers(0, 3)) == 0:  # now and then a raise loop: the step fails
                transition["raise"] = draw(
                    st.lists(st.sampled_from(RAISES), min_size=1, max_size=2)
                )
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
        return Event(
            chart.workflow,
            "i",
            timer.event,
            f"ev{n}",
            at,
            {},
            timer_id=timer.id,
            dispatch_id=timer.dispatch_id,  # an invoke's timeout names its dispatch
        )
    kind = "TICK" if kind == "$timer" else kind
    return Event(chart.workflow, "i", kind, f"ev{n}", at, payload)


# -- several instances talking by events (RSS v1.1 invoke) -----------------------------------


def over_the_wire(event: Event) -> Event:
    """``event`` as another process reads it: through JSON and back."""
    return Event.from_dict(json.loads(json.dumps(event.to_dict())))


@dataclass
class World:
    """Instances of the charts of ``registry``, each snapshot kept by its ``Event.key``; an
    event is routed through :meth:`ChartRegistry.route`, and the messages a step sends
    (child starts and cancels, answers to parents) are routed after it in FIFO order.
    Nothing reads another instance's snapshot: only events travel."""

    registry: ChartRegistry
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    log: list[tuple[Event, StepResult]] = field(default_factory=list)
    max_steps: int = 500  # per :meth:`send`: a bound for generated charts, never reached here

    def step(self, event: Event) -> StepResult:
        """One step of ``event``'s instance; its messages are returned, not routed."""
        event = over_the_wire(event)
        result = self.registry.route(self.snapshots.get(event.key), event)
        if result.snapshot is not None:
            self.snapshots[event.key] = result.snapshot
        self.log.append((event, result))
        return result

    def send(self, event: Event) -> list[tuple[Event, StepResult]]:
        """Step ``event``, then every message it causes, FIFO; the steps taken, in order."""
        queue = deque([event])
        first = len(self.log)
        while queue and len(self.log) - first < self.max_steps:
            queue.extend(self.step(queue.popleft()).messages)
        return self.log[first:]

    def snapshot(self, workflow: str, instance_id: str) -> Snapshot:
        return self.snapshots[f"{workflow}:{instance_id}"]

    def fire(self, workflow: str, instance_id: str, event_type: str) -> Event:
        """The firing of the instance's armed timer for ``event_type``, at its deadline."""
        snapshot = self.snapshot(workflow, instance_id)
        timer = next(t for t in snapshot.timers if t.event == event_type)
        return timer_firing(workflow, instance_id, timer)

    def journal(self, key: str) -> list[Event]:
        """The events ``key``'s instance accepted (journaled with a seq), in order."""
        return [e for e, r in self.log if e.key == key and r.trace.accepted]


@st.composite
def world_scripts(draw: st.DrawFn, parent: Chart, child: Chart) -> list[tuple[str, str, int]]:
    """Items ``(who, type, pick)``: ``who`` is ``parent`` (the instance ``i``) or ``child``
    (the ``pick``-th child instance that exists then); ``$timer`` fires its earliest timer."""
    to_parent = [*event_types(parent), "$timer", "$timer"]
    to_child = [*event_types(child), "$timer"]
    length = draw(st.integers(min_value=0, max_value=12))
    items = []
    for _ in range(length):
        if draw(st.booleans()):
            items.append(("parent", draw(st.sampled_from(to_parent)), 0))
        else:
            items.append(("child", draw(st.sampled_from(to_child)), draw(st.integers(0, 3))))
    return items


def world_event(world: World, parent: Chart, item: tuple[str, str, int], n: int) -> Event | None:
    """A scripted item as an event for the world as it stands; None when it names a child
    and none exists yet."""
    who, kind, pick = item
    if who == "parent":
        workflow, instance = parent.workflow, "i"
    else:
        children = sorted(k for k in world.snapshots if not k.startswith(f"{parent.workflow}:"))
        if not children:
            return None
        workflow, _, instance = children[pick % len(children)].partition(":")
    snapshot = world.snapshots.get(f"{workflow}:{instance}")
    if kind == "$timer" and snapshot is not None and snapshot.timers:
        timer = min(snapshot.timers, key=lambda t: t.deadline)
        return timer_firing(workflow, instance, timer)
    at = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
    return Event(workflow, instance, "TICK" if kind == "$timer" else kind, f"w{n}", at, {})
