"""``invoke`` (RSS v1.1 sub-workflows): child starts, answers, cancels and timeouts are events
between instances, routed here by a tiny FIFO loop over :meth:`ChartRegistry.route`
(:class:`tests.strategies.World`); and ``output`` as the child's ``.done`` payload."""

from __future__ import annotations

from dataclasses import astuple

from app.core.composition_build import check_invocations
from app.core.interpreter import StepResult
from app.core.replay import replay
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, dumps
from app.infra.outbox import journal_record
from app.spi.envelopes import Event, ParentRef
from app.spi.limits import canonical_json
from tests.helpers import T0, chart
from tests.strategies import World, over_the_wire

PARENT = """\
rss: 1
workflow: parent
version: 1
data: {order_id: "o-1"}
initial: idle
states:
  idle:
    on: {GO: shipping, GO_CUSTOM: custom, GO_GHOST: ghost, GO_PASS: passing}
  shipping:
    invoke:
      - name: ship
        workflow: child
        input: {order_id: "data.order_id"}
        timeout: 1h
    on:
      ship.done: {target: shipped, assign: {answer: "event.payload"}}
      ship.failed: {target: refused, assign: {answer: "event.payload"}}
      ship.timeout: timed_out
      ABORT: idle
      RESTART: shipping
      BREAK: {assign: {broken: "1 / 0"}}
      FINISH: finished
  custom:
    invoke:
      - name: pinned
        workflow: child
        version: 1
        id: "data.order_id + '-ship'"
      - {name: second, workflow: child, input: {order_id: "'o-2'"}}
    on:
      pinned.done: {target: shipped, assign: {answer: "event.payload"}}
      pinned.failed: {target: refused, assign: {answer: "event.payload"}}
  ghost:
    invoke: [{name: haunt, workflow: ghost}]
    on:
      haunt.failed: {target: refused, assign: {answer: "event.payload"}}
  passing:
    invoke: [{name: never, workflow: child}]
    always: idle
  shipped: {type: final}
  refused: {}
  timed_out: {}
  finished: {type: final}
"""

# Version 1 answers with its data; version 2, the latest, with its final state's output.
CHILD = """\
rss: 1
workflow: child
version: {version}
events:
  $start: {{type: object, required: [order_id], properties: {{order_id: {{type: string}}}}}}
  PACKED: {{}}
  LOST: {{}}
  NOOP: {{}}
initial: packing
states:
  packing:
    on:
      PACKED: {{target: sent, assign: {{tracking: "'T-' + data.order_id"}}}}
      LOST: lost
      NOOP: {{assign: {{noops: "has(data.noops) ? data.noops + 1 : 1"}}}}
  sent: {{type: final{output}}}
  lost: {{type: final, status: failed}}
"""


def registry() -> ChartRegistry:
    return ChartRegistry(
        [
            chart(PARENT, file="parent.yaml"),
            chart(CHILD.format(version=1, output=""), file="child1.yaml"),
            chart(
                CHILD.format(version=2, output=', output: {tracking: "data.tracking", v: "2"}'),
                file="child2.yaml",
            ),
        ]
    )


def event(
    workflow: str, instance: str, type_: str, event_id: str, payload: dict | None = None, **kw
) -> Event:
    return Event(workflow, instance, type_, event_id, kw.pop("at", T0), payload or {}, **kw)


def started(go: str = "GO", **kw: object) -> World:
    """A parent ``p1`` that received ``go`` (its child started)."""
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    world.send(event("parent", "p1", go, "e2", **kw))
    return world


DISPATCH = "parent:p1:2:1"  # the invoke's dispatch id: workflow:instance:seq:n
CHILD_ID = "p1.ship.2"  # the default child id: <parent id>.<name>.<seq>


def parent(world: World) -> Snapshot:
    return world.snapshot("parent", "p1")


# -- starting a child ------------------------------------------------------------------------


def test_entering_an_invoking_state_sends_the_child_start_message() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    result = world.step(event("parent", "p1", "GO", "e2", correlation_id="corr-1"))
    assert result.commands == ()
    (start,) = result.messages
    assert start == Event(
        workflow_type="child",
        instance_id=CHILD_ID,
        type="$start",
        event_id=DISPATCH,
        occurred_at=T0,
        payload={"order_id": "o-1"},
        causation_id="e2",
        correlation_id="corr-1",
        parent=ParentRef("parent", "p1", "ship", DISPATCH),
        version=None,
    )
    assert start.key == "child:p1.ship.2"


def test_the_correlation_id_defaults_to_the_causing_event_id() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    (start,) = world.step(event("parent", "p1", "GO", "e2")).messages
    assert (start.causation_id, start.correlation_id) == ("e2", "e2")


def test_a_started_invoke_is_pending_of_kind_workflow_with_a_child_run_and_a_timer() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    world.step(event("parent", "p1", "GO", "e2"))
    snapshot = parent(world)
    (pending,) = snapshot.pending
    assert (
        pending.dispatch_id,
        pending.name,
        pending.kind,
        pending.mode,
        pending.owner,
        pending.child_workflow,
        pending.child_id,
    ) == (DISPATCH, "ship", "workflow", "await", "shipping", "child", CHILD_ID)
    assert [astuple(c) for c in snapshot.children] == [
        ("ship", "child", CHILD_ID, DISPATCH, "running")
    ]
    (timer,) = snapshot.timers
    assert (timer.event, timer.state, timer.index, timer.dispatch_id, timer.deadline) == (
        "ship.timeout",
        "shipping",
        -1,
        DISPATCH,
        "2026-01-01T01:00:00Z",
    )


def test_the_child_keeps_its_parent_and_starts_on_the_latest_version() -> None:
    world = started()
    child = world.snapshot("child", CHILD_ID)
    assert child.parent == ParentRef("parent", "p1", "ship", DISPATCH)
    assert (child.status, child.configuration, child.version) == ("active", ("packing",), 2)
    assert child.data == {"order_id": "o-1"}
    assert child.recent_event_ids == (DISPATCH,)


def test_a_cel_id_and_a_version_pin_and_two_invokes_start_in_document_order() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    result = world.step(event("parent", "p1", "GO_CUSTOM", "e2"))
    first, second = result.messages
    assert (first.instance_id, first.event_id, first.version) == (
        "o-1-ship",
        "parent:p1:2:1",
        1,
    )
    assert (second.instance_id, second.event_id, second.version) == (
        "p1.second.2",
        "parent:p1:2:2",
        None,
    )
    assert second.payload == {"order_id": "o-2"}
    world.send(first)
    assert world.snapshot("child", "o-1-ship").version == 1


def test_a_state_entered_and_left_in_one_macrostep_starts_no_child() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    result = world.step(event("parent", "p1", "GO_PASS", "e2"))
    assert result.messages == ()
    assert (parent(world).configuration, parent(world).pending, parent(world).children) == (
        ("idle",),
        (),
        (),
    )


# -- answers ---------------------------------------------------------------------------------


def test_a_child_done_answers_its_final_states_output() -> None:
    world = started()
    steps = world.send(event("child", CHILD_ID, "PACKED", "c1"))
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps] == [
        ("child:p1.ship.2", "PACKED", "applied"),
        ("parent:p1", "ship.done", "applied"),
    ]
    answer = steps[1][0]
    assert (answer.event_id, answer.dispatch_id, answer.causation_id) == (
        f"{DISPATCH}:answer",
        DISPATCH,
        "c1",
    )
    assert answer.payload == {"tracking": "T-o-1", "v": 2}
    snapshot = parent(world)
    assert (snapshot.status, snapshot.configuration) == ("done", ("shipped",))
    assert snapshot.data["answer"] == {"tracking": "T-o-1", "v": 2}
    assert (snapshot.pending, snapshot.timers) == ((), ())
    assert [c.status for c in snapshot.children] == ["done"]
    assert world.snapshot("child", CHILD_ID).output == {"tracking": "T-o-1", "v": 2}


def test_a_child_without_output_answers_its_data() -> None:
    world = started("GO_CUSTOM")
    world.send(event("child", "o-1-ship", "PACKED", "c1"))
    assert world.snapshot("child", "o-1-ship").output is None
    assert parent(world).data["answer"] == {"order_id": "o-1", "tracking": "T-o-1"}
    # Reaching the final state cancelled the other child, still running.
    assert [c.status for c in parent(world).children] == ["done", "cancelled"]


def test_a_child_ending_failed_answers_failed_with_error_and_status() -> None:
    world = started()
    world.send(event("child", CHILD_ID, "LOST", "c1"))
    assert parent(world).configuration == ("refused",)
    assert parent(world).data["answer"] == {
        "error": "reached final state 'lost' (status failed)",
        "status": "failed",
    }
    assert [c.status for c in parent(world).children] == ["failed"]


def test_a_child_cancelled_by_someone_else_answers_failed_cancelled() -> None:
    world = started()
    world.send(event("child", CHILD_ID, "$cancel", "c1"))
    assert parent(world).data["answer"] == {"error": "cancelled", "status": "cancelled"}


def test_a_finished_child_does_not_answer_twice() -> None:
    world = started()
    world.send(event("child", CHILD_ID, "PACKED", "c1"))
    steps = world.send(event("child", CHILD_ID, "$cancel", "c2"))
    assert [(e.type, r.trace.outcome, r.trace.reason) for e, r in steps] == [
        ("$cancel", "ignored", "instance is done")
    ]
    assert steps[0][1].messages == ()


# -- stale answers and cancellation ----------------------------------------------------------

STALE = "result for a dispatch that is no longer pending"


def cancel_of(message: Event) -> tuple[str, str, str, str, str | None]:
    return (message.key, message.type, message.event_id, message.occurred_at, message.causation_id)


def test_exiting_the_invoking_state_cancels_the_child_and_its_answer_is_stale() -> None:
    world = started()
    result = world.step(event("parent", "p1", "ABORT", "e3"))
    (cancel,) = result.messages
    assert cancel_of(cancel) == ("child:p1.ship.2", "$cancel", f"{DISPATCH}:cancel", T0, "e3")
    assert (parent(world).configuration, parent(world).pending, parent(world).timers) == (
        ("idle",),
        (),
        (),
    )
    assert [c.status for c in parent(world).children] == ["cancelled"]
    # The child had finished before the cancel reached it: its answer is stale.
    answer_steps = world.send(event("child", CHILD_ID, "PACKED", "c1"))
    assert [(e.type, r.trace.outcome, r.trace.reason) for e, r in answer_steps] == [
        ("PACKED", "applied", None),
        ("ship.done", "ignored", STALE),
    ]
    assert parent(world).configuration == ("idle",)
    assert [c.status for c in parent(world).children] == ["cancelled"]
    late = world.send(cancel)
    assert [(r.trace.outcome, r.trace.reason) for _, r in late] == [("ignored", "instance is done")]


def test_reentering_the_invoking_state_cancels_the_old_child_and_starts_a_new_one() -> None:
    world = started()
    result = world.step(event("parent", "p1", "RESTART", "e3"))
    assert [(m.type, m.instance_id, m.event_id) for m in result.messages] == [
        ("$cancel", CHILD_ID, f"{DISPATCH}:cancel"),
        ("$start", "p1.ship.3", "parent:p1:3:1"),
    ]
    assert [(c.instance_id, c.status) for c in parent(world).children] == [
        (CHILD_ID, "cancelled"),
        ("p1.ship.3", "running"),
    ]
    for message in result.messages:
        world.send(message)
    # The first child's answer (it was cancelled) ties to the old dispatch: stale.
    steps = world.log[-3:]
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps] == [
        ("child:p1.ship.2", "$cancel", "applied"),
        ("parent:p1", "ship.failed", "ignored"),
        ("child:p1.ship.3", "$start", "applied"),
    ]
    world.send(event("child", "p1.ship.3", "PACKED", "c1"))
    assert parent(world).configuration == ("shipped",)


def test_the_parents_cancel_cancels_the_child() -> None:
    world = started()
    steps = world.send(event("parent", "p1", "$cancel", "e3"))
    assert [(e.key, e.type, r.trace.outcome, r.trace.reason) for e, r in steps] == [
        ("parent:p1", "$cancel", "applied", None),
        ("child:p1.ship.2", "$cancel", "applied", None),
        ("parent:p1", "ship.failed", "ignored", "instance is cancelled"),
    ]
    assert cancel_of(steps[1][0]) == ("child:p1.ship.2", "$cancel", f"{DISPATCH}:cancel", T0, "e3")
    assert (parent(world).status, [c.status for c in parent(world).children]) == (
        "cancelled",
        ["cancelled"],
    )
    assert world.snapshot("child", CHILD_ID).status == "cancelled"


def test_the_parent_failing_on_a_cel_error_cancels_the_child() -> None:
    world = started()
    steps = world.send(event("parent", "p1", "BREAK", "e3"))
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps] == [
        ("parent:p1", "BREAK", "failed"),
        ("child:p1.ship.2", "$cancel", "applied"),
        ("parent:p1", "ship.failed", "ignored"),
    ]
    assert cancel_of(steps[1][0]) == ("child:p1.ship.2", "$cancel", f"{DISPATCH}:cancel", T0, "e3")
    snapshot = parent(world)
    assert snapshot.status == "failed"
    assert snapshot.reason is not None and snapshot.reason.startswith("CEL expression '1 / 0'")
    assert (snapshot.configuration, snapshot.pending, snapshot.timers) == (("shipping",), (), ())
    assert [c.status for c in snapshot.children] == ["cancelled"]
    assert world.snapshot("child", CHILD_ID).status == "cancelled"


def test_the_parent_reaching_a_final_state_cancels_the_child() -> None:
    world = started()
    steps = world.send(event("parent", "p1", "FINISH", "e3"))
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps] == [
        ("parent:p1", "FINISH", "applied"),
        ("child:p1.ship.2", "$cancel", "applied"),
        ("parent:p1", "ship.failed", "ignored"),
    ]
    snapshot = parent(world)
    assert (snapshot.status, snapshot.configuration) == ("done", ("finished",))
    assert [c.status for c in snapshot.children] == ["cancelled"]


# -- timeout ---------------------------------------------------------------------------------


def test_a_timeout_fires_with_the_dispatch_id_cancels_the_child_and_its_answer_is_stale() -> None:
    world = started()
    firing = world.fire("parent", "p1", "ship.timeout")
    assert (firing.type, firing.dispatch_id, firing.occurred_at) == (
        "ship.timeout",
        DISPATCH,
        "2026-01-01T01:00:00Z",
    )
    result = world.step(firing)
    assert result.trace.outcome == "applied"
    (cancel,) = result.messages
    assert cancel_of(cancel)[:3] == ("child:p1.ship.2", "$cancel", f"{DISPATCH}:cancel")
    assert cancel.occurred_at == "2026-01-01T01:00:00Z"
    snapshot = parent(world)
    assert (snapshot.configuration, snapshot.pending, snapshot.timers) == (("timed_out",), (), ())
    assert [c.status for c in snapshot.children] == ["timeout"]
    steps = world.send(event("child", CHILD_ID, "PACKED", "c1"))  # before the cancel arrives
    assert [(e.type, r.trace.outcome, r.trace.reason) for e, r in steps] == [
        ("PACKED", "applied", None),
        ("ship.done", "ignored", STALE),
    ]
    assert parent(world).configuration == ("timed_out",)


def test_an_answer_before_the_timeout_disarms_it() -> None:
    world = started()
    firing = world.fire("parent", "p1", "ship.timeout")
    world.send(event("child", CHILD_ID, "PACKED", "c1"))
    assert parent(world).timers == ()
    late = world.step(firing)
    assert (late.trace.outcome, late.trace.reason, late.messages) == (
        "ignored",
        "instance is done",
        (),
    )


# -- cascading cancel ------------------------------------------------------------------------

LEVEL = """\
rss: 1
workflow: {name}
version: 1
initial: waiting
states:
  waiting:
    {invoke}
    on: {{NEVER: over}}
    exit: {{effects: [{{name: note_exit, mode: fire_and_forget}}]}}
  over: {{type: final}}
"""


def three_levels() -> World:
    charts = [
        chart(LEVEL.format(name="top", invoke="invoke: [{name: mid, workflow: mid}]"), file="t"),
        chart(LEVEL.format(name="mid", invoke="invoke: [{name: leaf, workflow: leaf}]"), file="m"),
        chart(LEVEL.format(name="leaf", invoke=""), file="l"),
    ]
    assert check_invocations(charts) == []
    world = World(ChartRegistry(charts))
    world.send(event("top", "t1", "$start", "e1"))
    return world


def test_a_cancel_cascades_down_three_levels() -> None:
    world = three_levels()
    assert sorted(world.snapshots) == ["leaf:t1.mid.1.leaf.1", "mid:t1.mid.1", "top:t1"]
    steps = world.send(event("top", "t1", "$cancel", "x1"))
    assert [(e.key, e.type, r.trace.outcome, r.trace.reason) for e, r in steps] == [
        ("top:t1", "$cancel", "applied", None),
        ("mid:t1.mid.1", "$cancel", "applied", None),
        ("leaf:t1.mid.1.leaf.1", "$cancel", "applied", None),
        ("top:t1", "mid.failed", "ignored", "instance is cancelled"),
        ("mid:t1.mid.1", "leaf.failed", "ignored", "instance is cancelled"),
    ]
    assert {key: s.status for key, s in world.snapshots.items()} == {
        "top:t1": "cancelled",
        "mid:t1.mid.1": "cancelled",
        "leaf:t1.mid.1.leaf.1": "cancelled",
    }
    # Each level ran its exit actions as it was cancelled.
    assert [[c.name for c in r.commands] for _, r in steps[:3]] == [["note_exit"]] * 3
    assert [c.status for c in world.snapshot("mid", "t1.mid.1").children] == ["cancelled"]


# -- partitions: only events travel ----------------------------------------------------------


def test_a_child_on_another_partition_needs_only_events() -> None:
    """Two partitions, each with its own registry (the parent's does not even know the child
    chart) and its own snapshots; a bus moves each message to the partition of its key."""
    charts = registry()
    left = World(ChartRegistry([charts.get("parent")]))
    right = World(ChartRegistry([charts.get("child", 1), charts.get("child", 2)]))
    bus = [event("parent", "p1", "$start", "e1"), event("parent", "p1", "GO", "e2")]
    while bus:
        message = bus.pop(0)
        partition = left if message.workflow_type == "parent" else right
        bus.extend(partition.step(message).messages)
        if message.type == "$start" and message.workflow_type == "child":
            bus.append(event("child", CHILD_ID, "PACKED", "c1"))
    assert list(left.snapshots) == ["parent:p1"]
    assert list(right.snapshots) == ["child:p1.ship.2"]
    assert (parent(left).status, parent(left).data["answer"]) == (
        "done",
        {"tracking": "T-o-1", "v": 2},
    )
    assert all(r.trace.outcome == "applied" for _, r in left.log + right.log)


# -- refused starts --------------------------------------------------------------------------


def test_a_child_id_that_exists_with_another_parent_dispatch_is_a_refused_start() -> None:
    world = World(registry())
    world.send(event("child", "o-1-ship", "$start", "x1", {"order_id": "mine"}))
    world.send(event("parent", "p1", "$start", "e1"))
    steps = world.send(event("parent", "p1", "GO_CUSTOM", "e2"))
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps[:3]] == [
        ("parent:p1", "GO_CUSTOM", "applied"),
        ("child:o-1-ship", "$start", "ignored"),
        ("child:p1.second.2", "$start", "applied"),
    ]
    refusal = steps[3][0]
    assert (refusal.type, refusal.event_id, refusal.dispatch_id) == (
        "pinned.failed",
        "parent:p1:2:1:answer",
        "parent:p1:2:1",
    )
    assert parent(world).data["answer"] == {
        "error": "an instance with that id already exists",
        "status": "rejected",
    }
    existing = world.snapshot("child", "o-1-ship")
    assert (existing.parent, existing.data, existing.status) == (
        None,
        {"order_id": "mine"},
        "active",
    )


def test_a_start_failing_the_childs_start_schema_is_refused() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1", {"order_id": 42}))
    steps = world.send(event("parent", "p1", "GO", "e2"))
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps] == [
        ("parent:p1", "GO", "applied"),
        ("child:p1.ship.2", "$start", "rejected"),
        ("parent:p1", "ship.failed", "applied"),
    ]
    assert "child:p1.ship.2" not in world.snapshots
    assert parent(world).data["answer"] == {
        "error": "payload of $start fails its declared schema at order_id: "
        "42 is not of type 'string'",
        "status": "rejected",
    }
    assert [c.status for c in parent(world).children] == ["failed"]


def test_a_start_failing_the_childs_data_schema_is_refused() -> None:
    """The spec lists input failing the child's data_schema among rejected starts."""
    strict = chart(
        """\
rss: 1
workflow: child
version: 3
data_schema: {type: object, properties: {order_id: {type: string, maxLength: 3}}}
initial: packing
states:
  packing: {}
""",
        file="child3.yaml",
    )
    charts = registry()
    world = World(ChartRegistry([charts.get("parent"), strict]))
    world.send(event("parent", "p1", "$start", "e1", {"order_id": "too-long"}))
    steps = world.send(event("parent", "p1", "GO", "e2"))
    assert [(e.type, r.trace.outcome) for e, r in steps] == [
        ("GO", "applied"),
        ("$start", "rejected"),
        ("ship.failed", "applied"),
    ]
    assert "child:p1.ship.2" not in world.snapshots
    assert parent(world).data["answer"] == {
        "error": "data fails data_schema at order_id: 'too-long' is too long",
        "status": "rejected",
    }
    # A plain $start (no parent) failing data_schema still starts a failed instance (v1).
    plain = world.send(event("child", "solo", "$start", "s1", {"order_id": "too-long"}))
    assert [(r.trace.outcome, r.messages) for _, r in plain] == [("failed", ())]
    assert world.snapshot("child", "solo").status == "failed"


def test_an_unknown_workflow_type_is_refused_by_the_router() -> None:
    world = World(registry())
    world.send(event("parent", "p1", "$start", "e1"))
    steps = world.send(event("parent", "p1", "GO_GHOST", "e2"))
    assert [(e.key, e.type, r.trace.outcome) for e, r in steps] == [
        ("parent:p1", "GO_GHOST", "applied"),
        ("ghost:p1.haunt.2", "$start", "rejected"),
        ("parent:p1", "haunt.failed", "applied"),
    ]
    assert parent(world).data["answer"] == {
        "error": "unknown workflow type 'ghost' (known: child, parent)",
        "status": "rejected",
    }


def test_a_pinned_version_that_is_not_loaded_is_refused_by_the_router() -> None:
    charts = registry()
    world = World(ChartRegistry([charts.get("parent"), charts.get("child", 2)]))
    world.send(event("parent", "p1", "$start", "e1"))
    world.send(event("parent", "p1", "GO_CUSTOM", "e2"))
    assert parent(world).data["answer"] == {
        "error": "workflow 'child' has no version 1 loaded",
        "status": "rejected",
    }


def test_the_same_start_resent_is_a_duplicate_even_after_more_than_64_later_events() -> None:
    world = started()
    start = next(e for e, _ in world.log if e.type == "$start" and e.workflow_type == "child")
    for n in range(70):
        world.send(event("child", CHILD_ID, "NOOP", f"n{n}"))
    before = world.snapshot("child", CHILD_ID)
    assert (before.seq, before.data["noops"]) == (71, 70)
    assert DISPATCH not in before.recent_event_ids  # out of the de-duplication window
    again = world.step(start)
    assert (again.trace.outcome, again.trace.seq, again.messages) == ("duplicate", None, ())
    assert dumps(world.snapshot("child", CHILD_ID)) == dumps(before)


# -- replay ----------------------------------------------------------------------------------


def refold(registry: ChartRegistry, events: list[Event]) -> list[StepResult]:
    """Fold one instance's journaled events again from seq 1."""
    snapshot: Snapshot | None = None
    results = []
    for journaled in events:
        result = registry.route(snapshot, over_the_wire(journaled))
        results.append(result)
        snapshot = result.snapshot
    return results


def wire(result: StepResult) -> tuple[str | None, list[str]]:
    snapshot = dumps(result.snapshot) if result.snapshot is not None else None
    return snapshot, [canonical_json(m.to_dict()) for m in result.messages]


def test_refolding_parent_and_child_journals_gives_the_same_snapshots_and_messages() -> None:
    world = started()
    world.step(event("parent", "p1", "RESTART", "e3"))  # a cancel and a start, held back
    world.send(event("child", CHILD_ID, "PACKED", "c1"))  # the old child's answer: stale
    world.send(event("child", "p1.ship.3", "$start", "parent:p1:3:1"))  # not the parent's
    world.send(next(m for _, r in world.log for m in r.messages if m.instance_id == "p1.ship.3"))
    world.send(event("child", "p1.ship.3", "NOOP", "c2"))
    world.send(world.fire("parent", "p1", "ship.timeout"))
    reg = registry()
    keys = sorted(world.snapshots)
    assert keys == ["child:p1.ship.2", "child:p1.ship.3", "parent:p1"]
    for key in keys:
        live = [wire(r) for e, r in world.log if e.key == key and r.trace.accepted]
        again = [wire(r) for r in refold(reg, world.journal(key))]
        assert again == live, key
        assert again[-1][0] == dumps(world.snapshots[key])
        records = [
            record
            for e, r in world.log
            if e.key == key and (record := journal_record(e, r)) is not None
        ]
        workflow = key.partition(":")[0]
        replayed = replay(reg.get(workflow, world.snapshots[key].version), records)
        assert replayed.snapshot is not None and dumps(replayed.snapshot) == live[-1][0]
    assert parent(world).configuration == ("timed_out",)
    assert world.snapshot("child", "p1.ship.3").status == "cancelled"
