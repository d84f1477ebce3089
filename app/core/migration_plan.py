"""Planning a migration (``omninode migrate plan``), purely: for each active instance of a
workflow on another version, what ``$migrate`` to the target version would make of it, and
the spec's replay check.

The mapped configuration comes from the real ``$migrate`` step (the registry routes the
event to :func:`app.core.migration.migrate`), run on the event ``apply`` sends: the same
deterministic id (:func:`migrate_event_id`), timed at the snapshot's last update. So the
plan is what apply does to the instance as it was read; the configuration does not depend
on the time (only newly armed timers' deadlines, and a data transform that reads
``event.occurred_at``, do).

The replay check folds the instance's journal, seq 1 up to the snapshot's seq, through the
target chart alone from an empty snapshot. ``$migrate`` records are not applied, but still
count their seq, so that the timers and dispatches armed after them get the ids the
journal's timer firings and results carry; a timer firing whose state the new chart renamed
fires the replay's timer of the same id and deadline under its new name. It agrees when it
ends in the configuration the migration maps to. It cannot replay when the target chart
rejects an event; when a timer firing comes at another time than the replay armed that
timer for (a changed delay: the journal holds no firing at the new deadline, as
:func:`app.core.replay.timer_moved` says); or when the journal does not hold every seq from
1 (records deleted by retention).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from app.core.bounds import bounded_step
from app.core.errors import CoreError
from app.core.model import Chart
from app.core.replay import timer_moved
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.spi.envelopes import MIGRATE, Event, JournalRecord, instance_key

Verdict = Literal["agrees", "disagrees", "cannot-replay", "cannot-map"]
VERDICTS: tuple[Verdict, ...] = ("agrees", "disagrees", "cannot-replay", "cannot-map")


@dataclass(frozen=True, slots=True)
class Plan:
    """One instance: where it is, where ``$migrate`` takes it, what replay says."""

    key: str
    version: int
    target: int
    seq: int
    configuration: tuple[str, ...]
    verdict: Verdict
    mapped: tuple[str, ...] | None = None  # None: cannot map (``reason`` says why)
    replayed: tuple[str, ...] | None = None  # the replay's configuration, when it ran through
    replayed_status: str | None = None
    reason: str | None = None  # why it cannot map, or cannot replay
    event_id: str = ""  # the id of the $migrate that apply sends (migrate_event_id)

    @property
    def maps(self) -> bool:
        return self.mapped is not None

    @property
    def check(self) -> str:
        """The spec's words for the replay check (or why there is none)."""
        if self.verdict == "cannot-map":
            return f"cannot map: {self.reason}"
        if self.verdict == "cannot-replay":
            return f"cannot replay: {self.reason}"
        if self.verdict == "agrees":
            return "replay agrees"
        status = "" if self.replayed_status == "active" else f" ({self.replayed_status})"
        return (
            f"replay disagrees: mapped {_states(self.mapped)}, "
            f"replay {_states(self.replayed)}{status}"
        )


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """Every instance of a workflow that a migration to ``target`` concerns."""

    workflow: str
    target: int
    plans: tuple[Plan, ...]
    on_target: int = 0  # active instances already on the target version (left alone)
    finished: int = 0  # instances no longer active (a migration ignores them)

    @property
    def ok(self) -> bool:
        """Every instance maps and its replay agrees (also when there is none to migrate)."""
        return all(p.verdict == "agrees" for p in self.plans)

    def counts(self) -> dict[Verdict, int]:
        return {v: sum(1 for p in self.plans if p.verdict == v) for v in VERDICTS}

    def counts_by_version(self) -> dict[int, dict[Verdict, int]]:
        """Per version migrated from, the count of each verdict."""
        rows: dict[int, dict[Verdict, int]] = {}
        for plan in sorted(self.plans, key=lambda p: p.version):
            row = rows.setdefault(plan.version, dict.fromkeys(VERDICTS, 0))
            row[plan.verdict] += 1
        return rows


def target_problem(registry: ChartRegistry, workflow: str, target: int) -> str | None:
    """Why ``target`` cannot be planned for at all (bad input), or None."""
    versions = loaded_versions(registry, workflow)
    if not versions:
        known = ", ".join(sorted({c.workflow for c in registry})) or "none"
        return f"unknown workflow '{workflow}' (loaded: {known})"
    if target not in versions:
        loaded = ", ".join(str(v) for v in versions)
        return f"workflow '{workflow}' has no version {target} loaded (loaded: {loaded})"
    return None


def loaded_versions(registry: ChartRegistry, workflow: str) -> list[int]:
    return [chart.version for chart in registry if chart.workflow == workflow]


def migrate_event_id(snapshot: Snapshot, target: int) -> str:
    """The id of the ``$migrate`` that moves ``snapshot`` to ``target``: the same for the same
    instance at the same seq, so sending it twice migrates once."""
    key = instance_key(snapshot.workflow, snapshot.instance_id)
    return f"migrate:{key}:{snapshot.version}->{target}@{snapshot.seq}"


def migrate_event(snapshot: Snapshot, target: int, occurred_at: str | None = None) -> Event:
    """The ``$migrate`` event for ``snapshot``; timed at its last update unless told."""
    return Event(
        workflow_type=snapshot.workflow,
        instance_id=snapshot.instance_id,
        type=MIGRATE,
        event_id=migrate_event_id(snapshot, target),
        occurred_at=occurred_at or snapshot.updated_at,
        payload={"to": target},
    )


def plan_migration(
    registry: ChartRegistry,
    workflow: str,
    target: int,
    snapshots: Iterable[Snapshot],
    journals: Mapping[str, Sequence[JournalRecord]],
) -> MigrationPlan:
    """Plan every instance of ``workflow`` among ``snapshots`` (journals by instance key)."""
    plans: list[Plan] = []
    on_target = finished = 0
    for snapshot in sorted(snapshots, key=lambda s: s.instance_id):
        if snapshot.workflow != workflow:
            continue
        if not snapshot.is_active:
            finished += 1
        elif snapshot.version == target:
            on_target += 1
        else:
            records = journals.get(instance_key(snapshot.workflow, snapshot.instance_id), ())
            plans.append(plan_instance(registry, snapshot, records, target))
    return MigrationPlan(workflow, target, tuple(plans), on_target, finished)


def plan_instance(
    registry: ChartRegistry, snapshot: Snapshot, records: Sequence[JournalRecord], target: int
) -> Plan:
    """One instance's plan: the ``$migrate`` step's configuration, then the replay check."""
    plan = Plan(
        key=instance_key(snapshot.workflow, snapshot.instance_id),
        version=snapshot.version,
        target=target,
        seq=snapshot.seq,
        configuration=tuple(snapshot.configuration),
        verdict="cannot-map",
        event_id=migrate_event_id(snapshot, target),
    )
    mapped, reason = mapped_configuration(registry, snapshot, target)
    if mapped is None:
        return replace(plan, reason=reason)
    chart = registry.get(snapshot.workflow, target)
    replayed, problem = replay_on(chart, records, snapshot.seq)
    if replayed is None:
        return replace(plan, mapped=mapped, verdict="cannot-replay", reason=problem)
    same = replayed.is_active and sorted(replayed.configuration) == sorted(mapped)
    return replace(
        plan,
        mapped=mapped,
        verdict="agrees" if same else "disagrees",
        replayed=tuple(replayed.configuration),
        replayed_status=replayed.status,
    )


def mapped_configuration(
    registry: ChartRegistry, snapshot: Snapshot, target: int
) -> tuple[tuple[str, ...] | None, str | None]:
    """The configuration ``$migrate`` moves ``snapshot`` to, or (None, why it does not)."""
    try:
        result = registry.route(snapshot, migrate_event(snapshot, target))
    except CoreError as exc:  # a plan never crashes on one instance: the reason is shown
        return None, f"migration to version {target} failed: {exc}"
    trace, after = result.trace, result.snapshot
    if trace.outcome != "applied" or after is None or after.version != target:
        return None, trace.reason or f"$migrate was {trace.outcome}"
    return tuple(after.configuration), None


def replay_on(
    chart: Chart, records: Sequence[JournalRecord], seq: int
) -> tuple[Snapshot | None, str | None]:
    """Fold the journal's events, seq 1 to ``seq``, through ``chart`` from an empty snapshot:
    the snapshot reached, or (None, why the chart cannot replay them)."""
    journal, problem = _complete_journal(records, seq)
    if problem is not None:
        return None, problem
    snapshot: Snapshot | None = None
    for record in journal:
        event = record.event
        if event.type == MIGRATE and snapshot is not None:
            # Not applied; its seq still counts, so later ids match the journal's.
            snapshot = snapshot.with_delivery(event.event_id, event.occurred_at)
            continue
        moved = timer_moved(snapshot, record)
        if moved is not None:  # a changed delay: the journal has no firing at the new time
            return None, str(moved)
        result = bounded_step(chart, snapshot, _readdressed(snapshot, event))
        if not result.trace.accepted or result.snapshot is None:
            why = result.trace.reason or result.trace.outcome
            return None, f"seq {record.seq} ({event.type}) is {result.trace.outcome}: {why}"
        snapshot = result.snapshot
    return snapshot, None


def _readdressed(snapshot: Snapshot | None, event: Event) -> Event:
    """The journal's event as the new chart's replay knows it. Ids number what a step sends
    in order, so a version that sends one more thing earlier in a step shifts them: a result
    whose dispatch id the replay has not pending goes to the one dispatch of that name it
    has, and a firing whose timer id it has not armed to the one timer of that event and
    deadline. A timer firing also names its state in its type (``$after.<state>.<i>``):
    when the replay armed the same timer (same id and deadline) in a state the new chart
    renamed, it fires under the new name, as the live timer would have."""
    if snapshot is None:
        return event
    if event.dispatch_id is not None and event.timer_id is None:
        return _result_readdressed(snapshot, event)
    if event.timer_id is None:
        return event
    timer = next((t for t in snapshot.timers if t.id == event.timer_id), None)
    if timer is None:
        same = [t for t in snapshot.timers if t.event == event.type]
        same = [t for t in same if t.deadline == event.occurred_at]
        return replace(event, timer_id=same[0].id) if len(same) == 1 else event
    if event.dispatch_id is not None or timer.deadline != event.occurred_at:
        return event
    return event if timer.event == event.type else replace(event, type=timer.event)


def _result_readdressed(snapshot: Snapshot, event: Event) -> Event:
    if any(p.dispatch_id == event.dispatch_id for p in snapshot.pending):
        return event
    name = event.type.rpartition(".")[0]
    named = [p for p in snapshot.pending if p.name == name]
    return replace(event, dispatch_id=named[0].dispatch_id) if len(named) == 1 else event


def _complete_journal(
    records: Sequence[JournalRecord], seq: int
) -> tuple[list[JournalRecord], str | None]:
    """The records of seq 1 to ``seq``, once each, or why the journal does not hold them all
    (records past ``seq`` were written after the snapshot was read, and are left out)."""
    by_seq: dict[int, JournalRecord] = {}
    for record in records:
        by_seq.setdefault(record.seq, record)
    if not by_seq:
        return [], "no journal records (deleted by retention, or not written yet)"
    first, last = min(by_seq), max(by_seq)
    if first > 1:
        return [], f"the journal starts at seq {first}: earlier records were deleted (retention)"
    if last < seq:
        return [], f"the journal ends at seq {last}, the snapshot is at seq {seq}"
    missing = next((s for s in range(1, seq + 1) if s not in by_seq), None)
    if missing is not None:
        return [], f"seq {missing} is missing from the journal"
    return [by_seq[s] for s in range(1, seq + 1)], None


def _states(configuration: tuple[str, ...] | None) -> str:
    return ", ".join(configuration or ()) or "-"
