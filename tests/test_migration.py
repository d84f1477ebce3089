"""``$migrate`` (RSS v1.1 "Versions and migration of running instances"), step by step of the
spec: map the configuration, complete and check it, transform data, carry timers, pending
work and history over, switch the version; the refusals; and the load-time checks of
``migrate`` entries with their file:line."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.core.durations import format_instant, parse_instant_ms
from app.core.errors import ChartError, Diagnostic
from app.core.interpreter import StepResult
from app.core.loader import load_chart
from app.core.migration import illegal_configuration
from app.core.migration_build import check_migrations
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, Timer, timer_firing
from app.infra.chart_files import load_charts
from app.infra.outbox import journal_record
from app.spi.envelopes import CANCEL, MIGRATE, Event
from tests.helpers import T0, chart

MINUTE = 60_000


def at(minutes: float) -> str:
    """The instant ``minutes`` after T0."""
    return format_instant(parse_instant_ms(T0) + int(minutes * MINUTE))


@dataclass
class Instance:
    """One instance of workflow ``workflow`` routed through a registry of several versions
    (as the workers do), with numbered event ids and its own clock."""

    registry: ChartRegistry
    workflow: str
    snapshot: Snapshot | None = None
    now: str = T0
    results: list[StepResult] = field(default_factory=list)
    count: int = 0

    def event(self, type_: str, payload: dict[str, Any] | None = None, **extra: Any) -> Event:
        self.count += 1
        self.now = extra.pop("at", self.now)
        event_id = extra.pop("event_id", f"e{self.count}")
        return Event(self.workflow, "i-1", type_, event_id, self.now, payload or {}, **extra)

    def apply(self, event: Event) -> StepResult:
        result = self.registry.route(self.snapshot, event)
        if result.snapshot is not None:
            self.snapshot = result.snapshot
        self.results.append(result)
        return result

    def send(self, type_: str, payload: dict[str, Any] | None = None, **extra: Any) -> StepResult:
        return self.apply(self.event(type_, payload, **extra))

    def migrate(self, to: int, **extra: Any) -> StepResult:
        return self.send(MIGRATE, {"to": to}, **extra)

    def fire(self, timer: Timer) -> StepResult:
        self.now = timer.deadline
        return self.apply(timer_firing(self.workflow, "i-1", timer))

    @property
    def state(self) -> Snapshot:
        assert self.snapshot is not None
        return self.snapshot


def started(*texts: str, version: int = 1, **payload: Any) -> Instance:
    """An instance started on ``version`` of the charts ``texts`` (loaded together)."""
    charts = [chart(text, file=f"v{n}.yaml") for n, text in enumerate(texts, start=1)]
    instance = Instance(ChartRegistry(charts), charts[0].workflow)
    assert instance.send("$start", payload, version=version).trace.outcome == "applied"
    return instance


def assert_refused(instance: Instance, before: Snapshot, result: StepResult, reason: str) -> None:
    """The ``$migrate`` was journaled ignored with ``reason``; the instance is exactly as it
    was but for the delivery (next seq, event id remembered, time)."""
    assert (result.trace.outcome, result.trace.reason) == ("ignored", reason)
    assert result.trace.seq == before.seq + 1
    assert result.snapshot == before.with_delivery(last_id(instance), instance.now)
    assert (result.commands, result.messages) == ((), ())


def last_id(instance: Instance) -> str:
    """The id of the instance's last event (numbered ``e<n>``)."""
    return f"e{instance.count}"


# -- 1. and 2.: the configuration ------------------------------------------------------------

MAP_V1 = """\
rss: 1
workflow: m
version: 1
data: {n: 1}
initial: a
states:
  a: {on: {GO: b, SPLIT: p, INTO: job, STOP: end}}
  b: {on: {BACK: a}}
  p:
    type: parallel
    states:
      r1:
        initial: x
        states:
          x: {on: {NEXT1: y}}
          y: {}
      r2:
        initial: x
        states:
          x: {on: {NEXT2: y}}
          y: {}
  job:
    initial: s1
    states:
      s1: {on: {FIN: f}}
      f: {type: final}
    on_done: {assign: {finished: "true"}}
  end: {type: final}
"""


IDENTITY = "migrate: [{from: 1}]"


def version_2(workflow: str, states: str, migrate: str = IDENTITY) -> str:
    """Version 2 of ``workflow`` with these states (the YAML lines under ``states:``) and
    this ``migrate`` line."""
    return (
        f"rss: 1\nworkflow: {workflow}\nversion: 2\ninitial: a\nstates:\n"
        + textwrap.indent(textwrap.dedent(states), "  ")
        + migrate
        + "\n"
    )


def map_v2(states: str, migrate: str = IDENTITY) -> str:
    return version_2("m", states, migrate)


def test_an_explicit_states_entry_maps_a_renamed_state() -> None:
    v2 = map_v2(
        """\
        a: {on: {GO: bee}}
        bee: {on: {BACK: a, AGAIN: bee}}
        """,
        "migrate: [{from: 1, states: {b: bee}}]",
    )
    instance = started(MAP_V1, v2)
    instance.send("GO")
    result = instance.migrate(2)
    assert result.trace.outcome == "applied"
    assert (instance.state.version, instance.state.configuration) == (2, ("bee",))
    # The instance now steps on version 2 (only its 'bee' handles AGAIN).
    assert instance.send("AGAIN").trace.transitions
    instance.send("BACK")
    assert instance.state.configuration == ("a",)


def test_a_state_the_new_chart_has_keeps_its_path_without_an_entry() -> None:
    v2 = map_v2("a: {on: {GO: bee}}\nbee: {}\n", "migrate: [{from: 1, states: {b: bee}}]")
    instance = started(MAP_V1, v2)
    assert instance.migrate(2).trace.outcome == "applied"
    assert (instance.state.version, instance.state.configuration) == (2, ("a",))
    instance.send("GO")
    assert instance.state.configuration == ("bee",)


def test_an_unmapped_state_fails_the_migration_leaving_the_instance_unchanged() -> None:
    instance = started(MAP_V1, map_v2("a: {}\n"), n=5)
    instance.send("GO")
    before = instance.state
    result = instance.migrate(2, at=at(3))
    reason = (
        "migration to version 2 failed: state 'b' has no place in version 2 "
        "(map it under migrate.states for from: 1)"
    )
    assert_refused(instance, before, result, reason)
    assert instance.state.version == 1
    instance.send("BACK")
    assert instance.state.configuration == ("a",)


def test_a_compound_target_is_entered_at_its_initial_state() -> None:
    v2 = map_v2(
        """\
        a: {on: {WORK: work}}
        work:
          initial: prep
          states:
            prep: {on: {READY: done}}
            done: {}
        """,
        "migrate: [{from: 1, states: {b: work}}]",
    )
    instance = started(MAP_V1, v2)
    instance.send("GO")
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.configuration == ("work.prep",)
    instance.send("READY")
    assert instance.state.configuration == ("work.done",)


def test_a_state_that_became_compound_at_the_same_path_is_entered_at_its_initial_state() -> None:
    v2 = map_v2(
        """\
        a: {on: {GO: b}}
        b:
          initial: first
          states:
            first: {on: {READY: second}}
            second: {}
        """
    )
    instance = started(MAP_V1, v2)
    instance.send("GO")
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.configuration == ("b.first",)


PARALLEL_V2 = """\
a: {on: {SPLIT: p, SOLO: solo}}
p:
  type: parallel
  states:
    r1:
      initial: x
      states:
        x: {on: {NEXT1: y}}
        y: {}
    r2:
      initial: x
      states:
        x: {on: {NEXT2: y}}
        y: {on: {NEXT2: z}}
        z: {}
solo:
  initial: one
  states:
    one: {on: {NEXT: two}}
    two: {}
"""


def test_a_target_in_a_parallel_state_enters_every_other_region_by_default() -> None:
    v2 = map_v2(PARALLEL_V2, "migrate: [{from: 1, states: {b: p.r1.y}}]")
    instance = started(MAP_V1, v2)
    instance.send("GO")
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.configuration == ("p.r1.y", "p.r2.x")


def test_a_parallel_state_keeps_the_active_state_of_each_region() -> None:
    """Both regions off their initial states: neither is filled by default beside them."""
    v2 = map_v2(PARALLEL_V2, "migrate: [{from: 1, states: {p.r2.y: p.r2.z}}]")
    instance = started(MAP_V1, v2)
    instance.send("SPLIT")
    instance.send("NEXT1")
    instance.send("NEXT2")
    assert instance.state.configuration == ("p.r1.y", "p.r2.y")
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.configuration == ("p.r1.y", "p.r2.z")


def test_two_children_of_one_compound_state_active_is_illegal() -> None:
    v2 = map_v2(PARALLEL_V2, "migrate: [{from: 1, states: {p.r1.x: solo.one, p.r2.x: solo.two}}]")
    instance = started(MAP_V1, v2)
    instance.send("SPLIT")
    before = instance.state
    result = instance.migrate(2)
    reason = "migration to version 2 failed: state 'solo' would have 2 active children"
    assert_refused(instance, before, result, f"{reason} (solo.one, solo.two)")


def test_a_configuration_leaving_a_region_empty_is_illegal() -> None:
    """The completion fills every region, so only a configuration built by hand misses one."""
    v2 = chart(map_v2(PARALLEL_V2), file="v2.yaml")
    missing = illegal_configuration(v2, {"", "p", "p.r1", "p.r1.x"})
    assert missing == "parallel state 'p' would miss regions (p.r2)"
    both = illegal_configuration(v2, {"", "a", "solo", "solo.one"})
    assert both == "the chart would have 2 active children (a, solo)"
    assert illegal_configuration(v2, {"", "p", "p.r1", "p.r1.x", "p.r2", "p.r2.z"}) is None


def test_a_final_state_target_is_refused() -> None:
    v2 = map_v2(
        "a: {on: {STOP: end}}\nend: {type: final}\n", "migrate: [{from: 1, states: {b: end}}]"
    )
    instance = started(MAP_V1, v2)
    instance.send("GO")
    before = instance.state
    reason = "migration to version 2 failed: 'end' is a final state: a migration cannot enter it"
    assert_refused(instance, before, instance.migrate(2), reason)


def test_a_final_child_the_instance_already_rests_in_keeps_its_place() -> None:
    """A compound state's final child, entered before (its done event handled then), is
    not entered by the migration: the identity migration keeps it."""
    v2 = map_v2(
        """\
        a: {on: {INTO: job}}
        job:
          initial: s1
          states:
            s1: {on: {FIN: f}}
            f: {type: final}
          on: {LEAVE: a}
        """
    )
    instance = started(MAP_V1, v2)
    instance.send("INTO")
    instance.send("FIN")
    assert (instance.state.configuration, instance.state.data["finished"]) == (("job.f",), True)
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.configuration == ("job.f",)
    instance.send("LEAVE")
    assert instance.state.configuration == ("a",)


def test_a_final_child_mapped_onto_another_final_state_is_refused() -> None:
    """Only the final state the instance rests in keeps its place, at its own path: another
    final state would be entered, and that is refused."""
    v2 = map_v2(
        "a: {on: {INTO: job}}\njob:\n  initial: s1\n  states:\n    s1: {on: {FIN: g}}\n"
        "    g: {type: final}\n",
        "migrate: [{from: 1, states: {job.f: job.g}}]",
    )
    instance = started(MAP_V1, v2)
    instance.send("INTO")
    instance.send("FIN")
    before = instance.state
    reason = "migration to version 2 failed: 'job.g' is a final state: a migration cannot enter it"
    assert_refused(instance, before, instance.migrate(2), reason)


# -- 3.: data --------------------------------------------------------------------------------

DATA_V1 = """\
rss: 1
workflow: d
version: 1
data: {n: 1, note: keep, meta: {a: 1}}
initial: a
states:
  a: {}
"""


def data_v2(transforms: str, schema: str = "") -> str:
    return (
        f"rss: 1\nworkflow: d\nversion: 2\n{schema}initial: a\nstates:\n  a: {{}}\n"
        f"migrate:\n  - from: 1\n    data: {transforms}\n"
    )


def test_data_transforms_set_their_keys_over_the_old_data_and_keep_the_others() -> None:
    transforms = (
        '{n: "data.n * 10", later: "data.n", meta.by: "\'migration\'", to: "event.payload.to"}'
    )
    instance = started(DATA_V1, data_v2(transforms))
    assert instance.migrate(2).trace.outcome == "applied"
    # `later` reads the old n (1), not the n the first transform just set (10).
    assert instance.state.data == {
        "n": 10,
        "note": "keep",
        "meta": {"a": 1, "by": "migration"},
        "later": 1,
        "to": 2,
    }


def test_data_failing_the_new_data_schema_fails_the_migration() -> None:
    schema = "data_schema: {type: object, properties: {n: {type: string}}}\n"
    instance = started(DATA_V1, data_v2("{note: \"'changed'\"}", schema))
    before = instance.state
    reason = "migration to version 2 failed: data fails data_schema at n: 1 is not of type 'string'"
    assert_refused(instance, before, instance.migrate(2), reason)
    assert before.data["note"] == "keep"


def test_data_transforms_can_make_the_data_fit_the_new_schema() -> None:
    schema = "data_schema: {type: object, properties: {n: {type: string}}}\n"
    instance = started(DATA_V1, data_v2('{n: "string(data.n)"}', schema))
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.data["n"] == "1"


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("data.n / 0", "division by zero"),
        ("data.missing + 1", "missing"),
        ("data.n.deeper", ""),
    ],
)
def test_a_data_transform_that_fails_at_run_time_fails_the_migration(
    expression: str, error: str
) -> None:
    instance = started(DATA_V1, data_v2(f'{{m: "{expression}"}}'))
    before = instance.state
    result = instance.migrate(2)
    assert result.trace.outcome == "ignored"
    assert result.trace.reason is not None
    assert result.trace.reason.startswith(
        f"migration to version 2 failed: CEL expression {expression!r} (line 9): "
    )
    assert error in result.trace.reason
    assert result.snapshot == before.with_delivery(last_id(instance), instance.now)


def test_a_data_transform_into_a_key_that_is_not_a_map_fails_the_migration() -> None:
    instance = started(DATA_V1, data_v2('{note.inner: "1"}'))
    before = instance.state
    reason = "migration to version 2 failed: cannot assign data.note.inner: data.note is not a map"
    assert_refused(instance, before, instance.migrate(2), reason)


def test_in_state_in_a_data_transform_answers_over_the_configuration_migrated_to() -> None:
    """The load checks ``in_state`` paths against the new chart: they are its states."""
    v2 = map_v2(
        "a: {on: {GO: bee}}\nbee: {}\n",
        "migrate: [{from: 1, states: {b: bee}, "
        "data: {in_bee: \"in_state('bee')\", in_a: \"in_state('a')\"}}]",
    )
    instance = started(MAP_V1, v2)
    instance.send("GO")
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.data == {"n": 1, "in_bee": True, "in_a": False}


# -- 4.: timers --------------------------------------------------------------------------------

TIMER_V1 = """\
rss: 1
workflow: t
version: 1
initial: a
states:
  a:
    after: [{delay: 10m, target: b}]
    on: {GO: b}
  b:
    after: [{delay: 1h, target: a}]
"""


def timer_v2(states: str, migrate: str = IDENTITY) -> str:
    return version_2("t", states, migrate)


MIGRATE_A_TO_W = "migrate: [{from: 1, states: {a: w}}]"


def test_a_state_keeping_its_path_and_delays_keeps_its_timers_deadline() -> None:
    v2 = timer_v2(
        """\
        a:
          after: [{delay: 10m, target: c}]
          on: {GO: b}
        b: {}
        c: {}
        """
    )
    instance = started(TIMER_V1, v2)
    armed = instance.state.timers
    assert [t.deadline for t in armed] == [at(10)]
    assert instance.migrate(2, at=at(5)).trace.outcome == "applied"
    assert instance.state.timers == armed
    # The kept timer fires on version 2's transition.
    fired = instance.fire(armed[0])
    assert (fired.trace.outcome, instance.state.configuration) == ("applied", ("c",))


def test_a_newly_active_state_gets_its_timers_armed_from_the_migrate_time() -> None:
    v2 = timer_v2(
        """\
        a: {on: {GO: w}}
        w:
          after: [{delay: 30m, target: a}, {delay: 2h, target: a}]
        """,
        MIGRATE_A_TO_W,
    )
    instance = started(TIMER_V1, v2)
    old = instance.state.timers[0]
    assert instance.migrate(2, at=at(5)).trace.outcome == "applied"
    timers = instance.state.timers
    assert [(t.state, t.index, t.deadline) for t in timers] == [("w", 0, at(35)), ("w", 1, at(125))]
    assert old.id not in {t.id for t in timers}
    stale = instance.fire(old)
    assert (stale.trace.outcome, stale.trace.reason) == ("ignored", "timer is no longer armed")
    instance.fire(timers[0])
    assert instance.state.configuration == ("a",)


def test_a_state_whose_delay_changed_gets_its_new_timer_from_the_migrate_time() -> None:
    v2 = timer_v2("a:\n  after: [{delay: 20m, target: b}]\nb: {}\n")
    instance = started(TIMER_V1, v2)
    old = instance.state.timers[0]
    instance.migrate(2, at=at(5))
    [timer] = instance.state.timers
    assert (timer.state, timer.deadline) == ("a", at(25))
    assert timer.id != old.id
    assert instance.fire(old).trace.reason == "timer is no longer armed"
    instance.fire(timer)
    assert instance.state.configuration == ("b",)


def test_timers_of_states_gone_are_cancelled() -> None:
    v2 = timer_v2("b: {}\n", "migrate: [{from: 1, states: {a: b}}]").replace(
        "initial: a", "initial: b"
    )
    instance = started(TIMER_V1, v2)
    instance.migrate(2, at=at(5))
    assert (instance.state.configuration, instance.state.timers) == (("b",), ())


def test_timers_of_a_state_left_are_cancelled_even_when_the_new_chart_still_has_it() -> None:
    """'a' keeps its path and delays in version 2, but the instance is mapped out of it."""
    v2 = timer_v2(
        """\
        a:
          after: [{delay: 10m, target: b}]
        b: {}
        """,
        "migrate: [{from: 1, states: {a: b}}]",
    )
    instance = started(TIMER_V1, v2)
    instance.migrate(2, at=at(5))
    assert (instance.state.configuration, instance.state.timers) == (("b",), ())


def test_a_state_mapped_onto_another_trades_its_timers_for_the_others() -> None:
    """Both states unchanged in version 2: 'a''s timer goes, 'b''s is armed from $migrate."""
    v2 = TIMER_V1.replace("version: 1", "version: 2") + "migrate: [{from: 1, states: {a: b}}]\n"
    instance = started(TIMER_V1, v2)
    instance.migrate(2, at=at(5))
    assert [(t.state, t.deadline) for t in instance.state.timers] == [("b", at(65))]


def test_a_timer_that_already_fired_is_not_armed_again_by_the_migration() -> None:
    v1 = TIMER_V1.replace("target: b}]", "assign: {rang: 'true'}}]")
    instance = started(v1, v1.replace("version: 1", "version: 2") + IDENTITY)
    instance.fire(instance.state.timers[0])
    assert (instance.state.configuration, instance.state.timers) == (("a",), ())
    instance.migrate(2, at=at(15))
    assert instance.state.timers == ()


def test_a_timer_armed_past_year_9999_fails_the_migration() -> None:
    v2 = timer_v2("a: {on: {GO: w}}\nw:\n  after: [{delay: 365d, target: a}]\n", MIGRATE_A_TO_W)
    instance = started(TIMER_V1, v2)
    before = instance.state
    reason = (
        "migration to version 2 failed: timer deadline of $after.w.0 (365d after "
        "9999-06-01T00:00:00Z) is past year 9999"
    )
    assert_refused(instance, before, instance.migrate(2, at="9999-06-01T00:00:00Z"), reason)


# -- 4.: pending dispatches ------------------------------------------------------------------

PENDING_V1 = """\
rss: 1
workflow: p
version: 1
initial: a
states:
  a: {on: {GO: work, SHIP: shipping}}
  work:
    entry: {effects: [{name: charge}]}
    on: {charge.done: paid}
  paid: {}
  shipping:
    invoke: [{name: ship, workflow: kid, timeout: 1h}]
    on: {ship.done: paid}
"""


def pending_v2(states: str, migrate: str = IDENTITY) -> str:
    return version_2("p", states, migrate)


def test_a_pending_dispatch_whose_owner_stays_active_is_kept_and_its_result_accepted() -> None:
    v2 = pending_v2(
        """\
        a: {on: {GO: work}}
        work:
          entry: {effects: [{name: charge}]}
          on: {charge.done: {target: settled, assign: {amount: event.payload.amount}}}
        settled: {}
        """
    )
    instance = started(PENDING_V1, v2)
    instance.send("GO")
    [pending] = instance.state.pending
    migrated = instance.migrate(2)
    # No entry action runs: version 2's 'work' dispatches no second charge.
    assert (migrated.trace.outcome, migrated.commands) == ("applied", ())
    assert instance.state.pending == (pending,)
    result = instance.send("charge.done", {"amount": 7}, dispatch_id=pending.dispatch_id)
    assert result.trace.outcome == "applied"
    assert (instance.state.configuration, instance.state.data) == (("settled",), {"amount": 7})


def test_a_pending_dispatch_whose_owner_is_gone_is_dropped_and_its_late_result_stale() -> None:
    v2 = pending_v2(
        """\
        a: {on: {AGAIN: later, WAIT: waiting}}
        waiting: {on: {charge.done: paid}}
        later:
          entry: {effects: [{name: charge}]}
        paid: {}
        """,
        "migrate: [{from: 1, states: {work: waiting}}]",
    )
    instance = started(PENDING_V1, v2)
    instance.send("GO")
    [pending] = instance.state.pending
    result = instance.migrate(2)
    assert (result.trace.outcome, result.messages) == ("applied", ())
    assert instance.state.pending == ()
    late = instance.send("charge.done", {}, dispatch_id=pending.dispatch_id)
    assert late.trace.outcome == "ignored"
    assert late.trace.reason == "result for a dispatch that is no longer pending"
    assert instance.state.configuration == ("waiting",)


def test_a_child_workflow_whose_state_is_gone_gets_a_cancel() -> None:
    v2 = pending_v2(
        "a: {on: {GO: manual}}\nmanual: {}\n", "migrate: [{from: 1, states: {shipping: manual}}]"
    )
    instance = started(PENDING_V1, v2)
    instance.send("SHIP")
    [pending] = instance.state.pending
    assert pending.kind == "workflow" and len(instance.state.timers) == 1  # the 1h timeout
    migrate = instance.event(MIGRATE, {"to": 2})
    result = instance.apply(migrate)
    assert result.trace.outcome == "applied"
    [cancel] = result.messages
    assert (cancel.type, cancel.workflow_type, cancel.instance_id) == (
        CANCEL,
        "kid",
        pending.child_id,
    )
    assert (cancel.event_id, cancel.causation_id) == (
        f"{pending.dispatch_id}:cancel",
        migrate.event_id,
    )
    state = instance.state
    assert (state.pending, state.timers) == ((), ())
    assert [(c.dispatch_id, c.status) for c in state.children] == [
        (pending.dispatch_id, "cancelled")
    ]


def test_a_child_workflow_whose_state_stays_keeps_running_with_its_timeout() -> None:
    v2 = pending_v2(
        """\
        a: {on: {SHIP: shipping}}
        shipping:
          invoke: [{name: ship, workflow: kid, timeout: 1h}]
          on: {ship.done: {target: shipped, assign: {answer: event.payload}}}
        shipped: {}
        """
    )
    instance = started(PENDING_V1, v2)
    instance.send("SHIP")
    before = instance.state
    result = instance.migrate(2, at=at(30))
    assert (result.trace.outcome, result.messages) == ("applied", ())
    state = instance.state
    assert (state.pending, state.timers, state.children) == (
        before.pending,
        before.timers,
        before.children,
    )
    [pending] = state.pending
    answer = instance.send("ship.done", {"ok": 1}, dispatch_id=pending.dispatch_id)
    assert answer.trace.outcome == "applied"
    assert (instance.state.configuration, instance.state.data) == (
        ("shipped",),
        {"answer": {"ok": 1}},
    )


def test_a_state_entered_by_the_migration_runs_no_entry_actions_and_starts_no_invoke() -> None:
    v2 = pending_v2(
        """\
        a: {on: {GO: busy}}
        busy:
          entry:
            assign: {entered: "true"}
            effects: [{name: charge}]
          invoke: [{name: ship, workflow: kid}]
        """,
        "migrate: [{from: 1, states: {a: busy}}]",
    )
    instance = started(PENDING_V1, v2)
    result = instance.migrate(2)
    assert (result.trace.outcome, result.commands, result.messages) == ("applied", (), ())
    state = instance.state
    assert (state.configuration, state.data, state.pending, state.children) == (
        ("busy",),
        {},
        (),
        (),
    )


# -- 4.: history ----------------------------------------------------------------------------

HISTORY_V1 = """\
rss: 1
workflow: h
version: 1
initial: a
states:
  a: {on: {GO: job}}
  job:
    initial: s1
    states:
      s1: {on: {NEXT: s2}}
      s2: {on: {NEXT: s3}}
      s3: {}
      h: {type: history}
    on: {PAUSE: paused}
  paused: {on: {RESUME: "#job.h"}}
"""


def paused_in_s2(v2: str) -> Instance:
    instance = started(HISTORY_V1, v2)
    for event in ("GO", "NEXT", "PAUSE"):
        instance.send(event)
    assert (instance.state.configuration, instance.state.history) == (
        ("paused",),
        {"job.h": ("job.s2",)},
    )
    return instance


def test_history_is_kept_where_its_paths_still_exist() -> None:
    instance = paused_in_s2(HISTORY_V1.replace("version: 1", "version: 2") + IDENTITY)
    instance.migrate(2)
    assert instance.state.history == {"job.h": ("job.s2",)}
    instance.send("RESUME")
    assert instance.state.configuration == ("job.s2",)


def test_history_naming_a_state_gone_is_dropped() -> None:
    v2 = HISTORY_V1.replace("version: 1", "version: 2").replace(
        "s2: {on: {NEXT: s3}}", "s2b: {on: {NEXT: s3}}"
    )
    instance = paused_in_s2(v2.replace("NEXT: s2}", "NEXT: s2b}") + IDENTITY)
    instance.migrate(2)
    assert instance.state.history == {}
    # Resuming enters the history's default: the compound state's initial state.
    instance.send("RESUME")
    assert instance.state.configuration == ("job.s1",)


def test_history_of_a_history_state_gone_is_dropped() -> None:
    v2 = HISTORY_V1.replace("version: 1", "version: 2").replace("      h: {type: history}\n", "")
    instance = paused_in_s2(v2.replace('"#job.h"', "job") + IDENTITY)
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.state.history == {}


# -- 5.: the version switch and the refusals ------------------------------------------------

V1 = "rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {on: {GO: b}}\n  b: {}\n"
V2 = V1.replace("version: 1", "version: 2") + "migrate: [{from: 1}]\n"
V3 = V1.replace("version: 1", "version: 3") + "migrate: [{from: 2}]\n"


def test_the_migration_switches_the_version_as_one_journaled_step() -> None:
    instance = started(V1, V2)
    before = instance.state
    event = instance.event(MIGRATE, {"to": 2}, at=at(1))
    result = instance.apply(event)
    assert (result.trace.outcome, result.trace.seq, result.trace.reason) == ("applied", 2, None)
    assert (result.commands, result.messages) == ((), ())
    state = instance.state
    assert (state.version, state.seq, state.configuration) == (2, before.seq + 1, ("a",))
    assert (state.recent_event_ids, state.updated_at) == ((*before.recent_event_ids, "e2"), at(1))
    record = journal_record(event, result, before)
    assert record is not None
    assert (record.seq, record.ignored, record.workflow_version, record.reason) == (
        2,
        False,
        2,
        None,
    )
    assert record.configuration == ("a",)


def test_a_migration_to_the_own_version_is_ignored() -> None:
    instance = started(V1, V2)
    before = instance.state
    assert_refused(instance, before, instance.migrate(1), "instance is already on version 1")


def test_a_migration_to_a_version_not_loaded_is_ignored() -> None:
    instance = started(V1, V2)
    before = instance.state
    reason = "version 9 is not loaded (loaded: 1, 2)"
    assert_refused(instance, before, instance.migrate(9), reason)


def test_a_target_declaring_no_migrate_from_the_current_version_is_ignored() -> None:
    instance = started(V1, V2, V3)
    before = instance.state
    reason = "version 3 declares no migrate from version 1"
    assert_refused(instance, before, instance.migrate(3), reason)
    # One version at a time: 1 -> 2 -> 3.
    assert instance.migrate(2).trace.outcome == "applied"
    assert instance.migrate(3).trace.outcome == "applied"
    assert instance.state.version == 3


def test_a_version_without_any_migrate_is_ignored() -> None:
    instance = started(V1, V1.replace("version: 1", "version: 2"))
    before = instance.state
    reason = "version 2 declares no migrate from version 1"
    assert_refused(instance, before, instance.migrate(2), reason)


@pytest.mark.parametrize(
    "payload", [{}, {"to": "2"}, {"to": 0}, {"to": -1}, {"to": True}, {"to": 2.0}]
)
def test_a_bad_payload_is_rejected(payload: dict[str, Any]) -> None:
    instance = started(V1, V2)
    before = instance.state
    result = instance.send(MIGRATE, payload)
    assert result.trace.outcome == "rejected"
    assert result.trace.seq is None
    assert result.trace.reason == (f'$migrate needs a payload {{"to": <version>}}, not {payload!r}')
    assert result.snapshot is before


def test_a_duplicate_migrate_event_is_a_duplicate() -> None:
    instance = started(V1, V2)
    first = instance.migrate(2, event_id="m-1")
    assert first.trace.outcome == "applied"
    again = instance.migrate(2, event_id="m-1")
    assert (again.trace.outcome, again.trace.reason) == ("duplicate", "already applied")
    assert again.snapshot is first.snapshot


def test_a_migrate_on_a_finished_instance_is_ignored() -> None:
    ends = V1.replace("a: {on: {GO: b}}", "a: {on: {GO: b, END: z}}") + "  z: {type: final}\n"
    instance = started(ends, V2)
    instance.send("END")
    before = instance.state
    assert before.status == "done"
    assert_refused(instance, before, instance.migrate(2), "instance is done")


def test_a_migrate_for_an_unknown_instance_is_rejected() -> None:
    registry = ChartRegistry([chart(V1, file="v1.yaml"), chart(V2, file="v2.yaml")])
    result = registry.route(None, Event("w", "nobody", MIGRATE, "m-1", T0, {"to": 2}))
    assert (result.snapshot, result.trace.outcome) == (None, "rejected")
    assert result.trace.reason == "no such instance: the first event must be $start"


def test_a_migrate_for_an_instance_on_a_version_no_longer_loaded_is_rejected() -> None:
    instance = started(V1, V2)
    only_v2 = ChartRegistry([chart(V2, file="v2.yaml")])
    result = only_v2.route(instance.state, instance.event(MIGRATE, {"to": 2}))
    assert (result.trace.outcome, result.trace.reason) == (
        "rejected",
        "workflow 'w' has no version 1 loaded",
    )


# -- load-time checks ---------------------------------------------------------------------------


def problems(text: str, file: str = "v2.yaml") -> list[tuple[int, str]]:
    with pytest.raises(ChartError) as refused:
        load_chart(textwrap.dedent(text), file)
    assert all(d.file == file for d in refused.value.diagnostics)
    return [(d.line, d.message) for d in refused.value.diagnostics]


def test_a_migrate_from_a_version_not_older_is_an_error_on_its_line() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 2
        initial: a
        states:
          a: {}
        migrate:
          - from: 1
          - from: 2
          - from: 3
        """
    )
    assert found == [
        (9, "migrate from 2: not older than version 2"),
        (10, "migrate from 3: not older than version 2"),
    ]


def test_a_migrate_from_the_same_version_twice_is_an_error_on_its_line() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 3
        initial: a
        states:
          a: {}
        migrate:
          - from: 1
          - from: 2
          - from: 1
            states: {b: a}
        """
    )
    assert found == [(10, "migrate from 1 is declared twice")]


def test_a_migrate_target_that_is_not_a_state_of_the_chart_is_an_error_on_its_line() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 2
        initial: a
        states:
          a:
            initial: x
            states:
              x: {}
              h: {type: history}
        migrate:
          - from: 1
            states:
              b: a.x
              c: "#a.x"
              d: nowhere
              e: a.h
              f: "#"
        """
    )
    assert found == [
        (16, "migrate from 1: 'nowhere' is not a state of this chart"),
        (17, "migrate from 1: 'a.h' is not a state of this chart"),
        (18, "migrate from 1: '#' is not a state of this chart"),
    ]


def test_a_migrate_data_expression_is_checked_at_load_on_its_line() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 2
        initial: a
        states:
          a: {}
        migrate:
          - from: 1
            data:
              ok: "data.n + 1"
              broken: "data.n +"
              where: "in_state('nowhere')"
        """
    )
    assert [line for line, _ in found] == [11, 12]
    assert found[0][1].startswith("CEL syntax error in 'data.n +' at column 9")
    assert found[1][1] == "in_state('nowhere'): no state 'nowhere' in this chart"


def test_a_migrate_target_written_with_a_hash_is_the_same_path() -> None:
    loaded = load_chart(
        "rss: 1\nworkflow: w\nversion: 2\ninitial: a\nstates:\n  a: {}\n"
        'migrate: [{from: 1, states: {b: "#a", c: a}}]\n',
        "v2.yaml",
    )
    assert dict(loaded.migrations[1].states) == {"b": "a", "c": "a"}


CROSS_V1 = """\
rss: 1
workflow: w
version: 1
initial: a
states:
  a: {on: {GO: job, END: done}}
  job:
    initial: s1
    states:
      s1: {}
  done: {type: final}
"""
CROSS_V2 = """\
rss: 1
workflow: w
version: 2
initial: a
states:
  a: {}
migrate:
  - from: 1
    states:
      job.s1: a
      job: a
      ghost: a
      done: a
"""


def test_an_old_path_that_is_not_an_atomic_state_of_the_old_version_is_an_error() -> None:
    v1, v2 = chart(CROSS_V1, file="v1.yaml"), chart(CROSS_V2, file="v2.yaml")
    assert check_migrations([v1, v2]) == [
        Diagnostic(
            "v2.yaml",
            11,
            "migrate from 1: 'job' is a compound state, not an atomic one of version 1",
        ),
        Diagnostic("v2.yaml", 12, "migrate from 1: 'ghost' is no state of version 1"),
    ]
    # Without the old version loaded there is nothing to check against.
    assert check_migrations([v2]) == []


def test_load_charts_refuses_the_newer_chart_whose_old_paths_do_not_exist(tmp_path: Path) -> None:
    (tmp_path / "w1.yaml").write_text(CROSS_V1, encoding="utf-8")
    (tmp_path / "w2.yaml").write_text(CROSS_V2, encoding="utf-8")
    loaded = load_charts(sorted(tmp_path.glob("*.yaml")))
    v2 = str(tmp_path / "w2.yaml")
    assert [(d.file, d.line) for d in loaded.problems] == [(v2, 11), (v2, 12)]
    assert [chart.version for _, chart in loaded.loaded] == [1]


# -- found in review: names the new chart drops, states only a migration enters --------------

DROPS_V1 = """\
rss: 1
workflow: w
version: 1
initial: a
states:
  a:
    entry: {effects: [{name: old_check}]}
    on: {old_check.done: b, GO: b}
  b: {type: final}
"""
DROPS_V2 = """\
rss: 1
workflow: w
version: 2
migrate: [{from: 1}]
initial: a
states:
  a:
    on: {GO: b}
  b: {type: final}
"""


def test_a_pending_dispatch_whose_name_the_new_chart_drops_is_dropped() -> None:
    registry = ChartRegistry([load_chart(DROPS_V1, "v1.yaml"), load_chart(DROPS_V2, "v2.yaml")])
    started = registry.route(None, Event("w", "i", "$start", "s", T0, {}, version=1)).snapshot
    assert started is not None and [p.name for p in started.pending] == ["old_check"]
    migrated = registry.route(started, Event("w", "i", "$migrate", "m", T0, {"to": 2})).snapshot
    assert migrated is not None and migrated.version == 2 and migrated.pending == ()


KEPT_FOR_MIGRATION = """\
rss: 1
workflow: w
version: 2
migrate:
  - from: 1
    states: {legacy: legacy_hold}
initial: a
states:
  a: {on: {GO: b}}
  legacy_hold: {on: {GO: b}}
  b: {type: final}
"""


def test_a_state_only_a_migration_enters_is_reachable() -> None:
    chart = load_chart(KEPT_FOR_MIGRATION, "v2.yaml")
    assert chart.migrations[1].states == {"legacy": "legacy_hold"}


def test_migrate_problems_are_reported_with_the_charts_other_problems() -> None:
    text = KEPT_FOR_MIGRATION.replace("legacy_hold}", "nowhere}").replace("GO: b}}", "GO: zz}}", 1)
    with pytest.raises(ChartError) as raised:
        load_chart(text, "v2.yaml")
    messages = [str(d) for d in raised.value.diagnostics]
    assert any("'nowhere' is not a state of this chart" in m for m in messages), messages
    assert any("unknown target 'zz'" in m for m in messages), messages
