"""``omninode diff``: a static change report between two versions of one workflow.

What a reviewer of a pull request needs to see: states added, removed and renamed (a rename
is what the new chart's ``migrate`` entry from the old version maps), events no longer or
newly handled, transitions whose target or guard changed, effects and computes, timers,
invokes and schemas that changed, and whether running instances can be migrated at all.

States are paired old -> new by path, or through the ``migrate`` mapping; everything about
a state (its transitions, timers) is compared within its pair. Each change is one line, in
document order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.core.durations import format_duration
from app.core.expressions import Expr
from app.core.model import ROOT, AfterTimer, Chart, DispatchSpec, InvokeSpec, StateNode, Transition
from app.spi.envelopes import RetryPolicy

# Section key -> heading, in the order the report shows them.
SECTIONS = {
    "states": "states",
    "events": "events",
    "transitions": "transitions",
    "dispatches": "effects and computes",
    "timers": "timers",
    "invokes": "invokes",
    "schemas": "schemas",
}
CANNOT_MIGRATE = "running instances there cannot migrate"
# Kinds that name only where a state's instances go (``new``).
_DESTINATIONS = ("renamed to", "moved to", "instances migrate to")


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the report: ``subject: kind old -> new``. ``old``/``new`` are what the
    thing was and became (for ``added``/``removed``: a short description of it)."""

    subject: str
    kind: str
    old: str | None = None
    new: str | None = None
    note: str | None = None
    cel: bool = False  # old/new are CEL sources: quoted in the line

    def line(self) -> str:
        if self.kind in ("added", "removed"):
            detail = self.new if self.kind == "added" else self.old
            text = f"{self.subject}: {self.kind}" + (f" ({detail})" if detail else "")
        elif self.old is None and self.new is None:
            text = f"{self.subject}: {self.kind}"
        elif self.kind in _DESTINATIONS:
            text = f"{self.subject}: {self.kind} {self.new}"
        else:
            text = f"{self.subject}: {self.kind} {self._show(self.old)} -> {self._show(self.new)}"
        return f"{text}; {self.note}" if self.note else text

    def _show(self, value: str | None) -> str:
        if value is None:
            return "(none)"
        return json.dumps(value) if self.cel else value

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "change": self.kind,
            "old": self.old,
            "new": self.new,
            "note": self.note,
            "line": self.line(),
        }


@dataclass(frozen=True, slots=True)
class ChartDiff:
    workflow: str
    old_file: str
    old_version: int
    new_file: str
    new_version: int
    migrates: bool  # the new chart declares a migrate from the old version
    migration: str
    sections: Mapping[str, tuple[Change, ...]]

    def lines(self) -> list[str]:
        out = [
            f"{self.workflow}: version {self.old_version} -> {self.new_version}",
            self.migration,
        ]
        for key, heading in SECTIONS.items():
            if self.sections[key]:
                out += ["", f"{heading}:"]
                out += [f"  {change.line()}" for change in self.sections[key]]
        if not any(self.sections.values()):
            out.append("no changes")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "old": {"file": self.old_file, "version": self.old_version},
            "new": {"file": self.new_file, "version": self.new_version},
            "migrates": self.migrates,
            "migration": self.migration,
            **{key: [c.to_json() for c in self.sections[key]] for key in SECTIONS},
        }


def incomparable(old: Chart, new: Chart) -> str | None:
    """Why these two charts are not two versions of one workflow, newer second; else None."""
    if old.workflow != new.workflow:
        return (
            f"{old.file} is workflow '{old.workflow}' but {new.file} is workflow "
            f"'{new.workflow}': diff compares two versions of one workflow"
        )
    if new.version <= old.version:
        return (
            f"{new.file} has version {new.version}, not greater than version {old.version} "
            f"of {old.file}: give the older chart first"
        )
    return None


def diff_charts(old: Chart, new: Chart) -> ChartDiff:
    """The change report from ``old`` to ``new`` (check :func:`incomparable` first)."""
    spec = new.migrations.get(old.version)
    mapping: Mapping[str, str] = spec.states if spec is not None else {}
    states, pairs = _states(old, new, mapping)
    renamed = {o.path: n.path for o, n in pairs if o.path != n.path}
    if spec is None:
        migration = (
            f"instances on version {old.version} cannot be migrated: "
            f"{new.file} declares no migrate from {old.version}"
        )
    else:
        migration = (
            f"migrate from {old.version}: {_count(len(spec.states), 'state mapping')}, "
            f"{_count(len(spec.data), 'data assignment')}"
        )
    sections = {
        "states": states,
        "events": _events(old, new),
        "transitions": [c for o, n in pairs for c in _state_transitions(o, n, renamed)],
        "dispatches": _dispatches(old, new),
        "timers": _timers(old, new, pairs),
        "invokes": _invokes(old, new, pairs),
        "schemas": _schemas(old, new),
    }
    return ChartDiff(
        old.workflow,
        old.file,
        old.version,
        new.file,
        new.version,
        spec is not None,
        migration,
        {key: tuple(changes) for key, changes in sections.items()},
    )


# -- states ---------------------------------------------------------------------------------


def _states(
    old: Chart, new: Chart, mapping: Mapping[str, str]
) -> tuple[list[Change], list[tuple[StateNode, StateNode]]]:
    """State changes in document order, and the pairs (old node, new node) that stand for
    the same state."""
    changes: list[Change] = []
    pairs: list[tuple[StateNode, StateNode]] = []
    # A rename: a state gone from the new chart mapped to one the old chart lacks (and that no
    # other old state is mapped to; several old states mapped to one are moved there).
    shared = Counter(mapping.values())
    renames = {
        o: n
        for o, n in mapping.items()
        if o not in new.states and n not in old.states and shared[n] == 1
    }
    for path, node in _nodes(old):
        target = mapping.get(path, path)
        if path in new.states or path in renames:
            pair = (node, new.states[path if path in new.states else target])
            pairs.append(pair)
            if path in renames:
                changes.append(Change(path, "renamed to", new=target))
            elif target != path:
                changes.append(Change(path, "instances migrate to", new=target))
            if _type(pair[0]) != _type(pair[1]):
                changes.append(Change(_label(*pair), "type", _type(pair[0]), _type(pair[1])))
        elif path in mapping:
            changes.append(Change(path, "moved to", new=target))
        else:
            note = CANNOT_MIGRATE if _may_hold_instances(node) else None
            changes.append(Change(path, "removed", old=node.type, note=note))
    changes += [
        Change(p, "added", new=n.type)
        for p, n in _nodes(new)
        if p not in old.states and p not in renames.values()
    ]
    return changes, pairs


def _may_hold_instances(node: StateNode) -> bool:
    # A running instance rests in atomic states; a top-level final state has ended it.
    return node.type == "atomic" or (node.is_final and node.parent != ROOT)


def _nodes(chart: Chart) -> Iterator[tuple[str, StateNode]]:
    return ((p, n) for p, n in chart.states.items() if p != ROOT)


def _type(node: StateNode) -> str:
    # A top-level final state's status is part of what it is: reaching it ends the instance.
    return f"final ({node.status})" if node.status == "failed" else node.type


def _label(old: StateNode, new: StateNode) -> str:
    return new.path if old.path == new.path else f"{new.path} (was {old.path})"


# -- events and transitions -----------------------------------------------------------------


def _handled(chart: Chart) -> dict[str, None]:
    """Event types some transition handles, in document order (timers and on_done apart)."""
    return {
        t.event: None
        for t in chart.transitions()
        if t.event is not None and not t.event.startswith(("$after.", "$done."))
    }


def _events(old: Chart, new: Chart) -> list[Change]:
    before, after = _handled(old), _handled(new)
    return [Change(e, "no longer handled") for e in before if e not in after] + [
        Change(e, "newly handled") for e in after if e not in before
    ]


def _groups(node: StateNode) -> dict[str, tuple[Transition, ...]]:
    """A state's transitions by what selects them: ``on EVENT``, ``after[i]``, ``on_done``,
    ``always`` (timer and done events name the state's path: a rename would hide the pair)."""
    groups: dict[str, tuple[Transition, ...]] = {}
    for event, group in node.transitions.items():
        if event.startswith("$after."):
            groups[f"after[{event.rpartition('.')[2]}]"] = group
        elif event.startswith("$done."):
            groups["on_done"] = group
        else:
            groups[f"on {event}"] = group
    if node.always:
        groups["always"] = node.always
    return groups


def _state_transitions(old: StateNode, new: StateNode, renamed: Mapping[str, str]) -> list[Change]:
    before, after = _groups(old), _groups(new)
    label = _label(old, new)
    changes: list[Change] = []
    for key in [*before, *(k for k in after if k not in before)]:
        subject = f"{label} {key}"
        if key.startswith("after["):
            if key in before and key in after:  # timers added or removed: the timers section
                changes += _compare_groups(subject, before[key], after[key], renamed)
        elif key not in after:
            changes.append(Change(subject, "removed", old=_describe_group(before[key])))
        elif key not in before:
            changes.append(Change(subject, "added", new=_describe_group(after[key])))
        else:
            changes += _compare_groups(subject, before[key], after[key], renamed)
    return changes


def _compare_groups(
    subject: str,
    before: tuple[Transition, ...],
    after: tuple[Transition, ...],
    renamed: Mapping[str, str],
) -> list[Change]:
    changes: list[Change] = []
    if len(before) != len(after):
        changes.append(Change(subject, "transitions", str(len(before)), str(len(after))))
    indexed = len(before) > 1 or len(after) > 1
    for index, (a, b) in enumerate(zip(before, after, strict=False)):
        where = f"{subject}[{index}]" if indexed else subject
        # A target renamed by the migration is the same target: the rename has its own line.
        if tuple(renamed.get(t, t) for t in a.targets) != b.targets:
            changes.append(Change(where, "target", _targets(a), _targets(b)))
        if a.guard != b.guard:
            changes.append(Change(where, "guard", a.guard, b.guard))
        if _source(a.when) != _source(b.when):
            changes.append(Change(where, "when", _source(a.when), _source(b.when), cel=True))
    return changes


def _targets(transition: Transition) -> str:
    return ", ".join(transition.targets) or "no target"


def _describe_group(group: tuple[Transition, ...]) -> str:
    if len(group) > 1:
        return f"{len(group)} transitions"
    (only,) = group
    text = f"target {_targets(only)}"
    if only.guard:
        text += f", guard {only.guard}"
    if only.when is not None:
        text += f", when {json.dumps(only.when.source)}"
    return text


def _source(expr: Expr | None) -> str | None:
    return expr.source if expr is not None else None


# -- effects, computes, timers, invokes -----------------------------------------------------


def _declared(chart: Chart) -> dict[str, list[DispatchSpec]]:
    """Every effect and compute declaration by name, in document order."""
    actions = [a for node in chart.states.values() for a in (node.entry, node.exit)]
    actions += [t.actions for t in chart.transitions()]
    specs = sorted(
        (spec for a in actions for spec in (*a.effects, *a.computes)), key=lambda s: s.line
    )
    found: dict[str, list[DispatchSpec]] = {}
    for spec in specs:
        found.setdefault(spec.name, []).append(spec)
    return found


def _dispatches(old: Chart, new: Chart) -> list[Change]:
    before, after = _declared(old), _declared(new)
    changes: list[Change] = []
    for name, specs in before.items():
        if name not in after:
            changes.append(Change(f"{specs[0].kind} {name}", "removed"))
            continue
        subject = f"{after[name][0].kind} {name}"
        if len(specs) != len(after[name]):
            changes.append(Change(subject, "declarations", str(len(specs)), str(len(after[name]))))
        indexed = len(specs) > 1 or len(after[name]) > 1
        for index, (a, b) in enumerate(zip(specs, after[name], strict=False)):
            changes += _compare_dispatch(f"{subject}[{index}]" if indexed else subject, a, b)
    changes += [Change(f"{s[0].kind} {n}", "added") for n, s in after.items() if n not in before]
    return changes


def _compare_dispatch(subject: str, a: DispatchSpec, b: DispatchSpec) -> list[Change]:
    changes = _compare_input(subject, a.input, b.input)
    fields = [
        ("kind", a.kind, b.kind),
        ("mode", a.mode, b.mode),
        ("retry", _retry(a.retry), _retry(b.retry)),
        ("timeout", _duration(a.timeout_ms), _duration(b.timeout_ms)),
        ("compensate", a.compensate, b.compensate),
        ("queue", a.queue, b.queue),
    ]
    return changes + [Change(subject, k, x, y) for k, x, y in fields if x != y]


def _compare_input(
    subject: str,
    before: tuple[tuple[str, Expr], ...] | None,
    after: tuple[tuple[str, Expr], ...] | None,
) -> list[Change]:
    """Input changes key by key; a switch to or from the default (all data) as one line."""
    if before is None or after is None:
        if before is after:
            return []
        return [Change(subject, "input", _input_text(before), _input_text(after))]
    old, new = dict(before), dict(after)
    changes = []
    for key in [*old, *(k for k in new if k not in old)]:
        was, now = _source(old.get(key)), _source(new.get(key))
        if was != now:
            changes.append(Change(subject, f"input.{key}", was, now, cel=True))
    return changes


def _input_text(value: tuple[tuple[str, Expr], ...] | None) -> str:
    return "all data" if value is None else "{" + ", ".join(k for k, _ in value) + "}"


def _retry(policy: RetryPolicy) -> str:
    return (
        f"{_count(policy.max_attempts, 'attempt')}, {policy.backoff} "
        f"{format_duration(policy.initial_ms)}..{format_duration(policy.max_ms)}"
    )


def _duration(ms: int | None) -> str | None:
    return format_duration(ms) if ms is not None else None


def _timers(old: Chart, new: Chart, pairs: list[tuple[StateNode, StateNode]]) -> list[Change]:
    """Timers by state (paired through renames) and index in its ``after`` list."""
    partner = {o.path: n for o, n in pairs}
    changes: list[Change] = []
    for path, node in _nodes(old):
        other = partner.get(path)
        if other is None:
            changes += _timers_one_side(path, node.after, "removed")
            continue
        label = _label(node, other)
        for a, b in zip(node.after, other.after, strict=False):
            if a.delay_ms != b.delay_ms:
                was, now = format_duration(a.delay_ms), format_duration(b.delay_ms)
                changes.append(Change(f"{label} after[{a.index}]", "delay", was, now))
        changes += _timers_one_side(label, node.after[len(other.after) :], "removed")
        changes += _timers_one_side(label, other.after[len(node.after) :], "added")
    matched = {n.path for n in partner.values()}
    for path, node in _nodes(new):
        if path not in matched:
            changes += _timers_one_side(path, node.after, "added")
    return changes


def _timers_one_side(label: str, timers: Iterable[AfterTimer], kind: str) -> list[Change]:
    return [
        _presence(f"{label} after[{t.index}]", kind, f"delay {format_duration(t.delay_ms)}")
        for t in timers
    ]


def _presence(subject: str, kind: str, detail: str) -> Change:
    """An ``added`` (detail: what it is now) or ``removed`` (what it was) change."""
    return (
        Change(subject, kind, new=detail) if kind == "added" else Change(subject, kind, old=detail)
    )


def _invocations(chart: Chart) -> dict[str, tuple[StateNode, InvokeSpec]]:
    return {spec.name: (node, spec) for node, spec in chart.invocations()}


def _invokes(old: Chart, new: Chart, pairs: list[tuple[StateNode, StateNode]]) -> list[Change]:
    before, after = _invocations(old), _invocations(new)
    partner = {o.path: n.path for o, n in pairs}
    changes: list[Change] = []
    for name, (node, a) in before.items():
        subject = f"invoke {name}"
        if name not in after:
            changes.append(Change(subject, "removed", old=_invoke_text(node, a)))
            continue
        other, b = after[name]
        if partner.get(node.path) != other.path:
            changes.append(Change(subject, "state", node.path, other.path))
        changes += _compare_invoke(subject, a, b)
    changes += [
        Change(f"invoke {name}", "added", new=_invoke_text(node, spec))
        for name, (node, spec) in after.items()
        if name not in before
    ]
    return changes


def _compare_invoke(subject: str, a: InvokeSpec, b: InvokeSpec) -> list[Change]:
    changes = _compare_input(subject, a.input, b.input)
    if _source(a.id) != _source(b.id):
        changes.append(Change(subject, "id", _source(a.id), _source(b.id), cel=True))
    fields = [
        ("workflow", a.workflow, b.workflow),
        ("version", _pin(a.version), _pin(b.version)),
        ("timeout", _duration(a.timeout_ms), _duration(b.timeout_ms)),
    ]
    return changes + [Change(subject, k, x, y) for k, x, y in fields if x != y]


def _invoke_text(node: StateNode, spec: InvokeSpec) -> str:
    return f"workflow {spec.workflow} {_pin(spec.version)} in {node.path}"


def _pin(version: int | None) -> str:
    return "latest" if version is None else f"v{version}"


# -- schemas --------------------------------------------------------------------------------


def _schemas(old: Chart, new: Chart) -> list[Change]:
    changes = list(_compare_schema("data_schema", old.data_schema, new.data_schema))
    for name in [*old.events, *(e for e in new.events if e not in old.events)]:
        changes += _compare_schema(f"events.{name}", old.events.get(name), new.events.get(name))
    return changes


def _compare_schema(
    subject: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> Iterable[Change]:
    if before is None and after is not None:
        yield Change(subject, "added")
    elif after is None and before is not None:
        yield Change(subject, "removed")
    elif before != after:
        yield Change(subject, "changed")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
