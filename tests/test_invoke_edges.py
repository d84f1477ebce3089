"""Edges of ``invoke`` found in review, each a way a parent could wait for ever or a child
be cancelled by a stranger: a child id reused after the child ended, two parents whose
default child ids collide, a child event too large to be accepted where it is sent, an
answer without its dispatch id, and an outside ``$after`` sent before the timer is due."""

from __future__ import annotations

from app.core.loader import load_chart
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.spi.envelopes import Event, ParentRef
from app.spi.limits import Limits

T = "2026-01-01T00:00:00Z"

PARENT = """\
rss: 1
workflow: {name}
version: 1
data: {{order_id: "o7"}}
initial: idle
states:
  idle: {{on: {{GO: shipping}}}}
  shipping:
    invoke: [{{name: ship, workflow: child, {extra}}}]
    on:
      ship.done: done
      ship.failed: refused
      STOP: idle
  done: {{type: final}}
  refused: {{type: final, status: failed}}
"""
CHILD = """\
rss: 1
workflow: child
version: 1
initial: packing
states:
  packing: {on: {PACKED: shipped}}
  shipped: {type: final}
"""


def world(*parents: str, limits: Limits | None = None) -> ChartRegistry:
    texts = enumerate((*parents, CHILD))
    if limits is None:
        return ChartRegistry([load_chart(text, f"{i}.yaml") for i, text in texts])
    return ChartRegistry([load_chart(text, f"{i}.yaml", limits=limits) for i, text in texts])


def event(workflow: str, instance: str, type_: str, event_id: str, **extra: object) -> Event:
    return Event(workflow, instance, type_, event_id, T, {}, **extra)  # type: ignore[arg-type]


def started(registry: ChartRegistry, workflow: str, instance: str) -> tuple[Snapshot, Event]:
    """The parent in ``shipping``, and the child ``$start`` it sent."""
    first = registry.route(None, event(workflow, instance, "$start", f"{instance}-s")).snapshot
    going = registry.route(first, event(workflow, instance, "GO", f"{instance}-go"))
    assert going.snapshot is not None
    (start,) = going.messages
    return going.snapshot, start


def test_a_child_start_to_an_instance_that_already_ended_answers_failed() -> None:
    registry = world(PARENT.format(name="order", extra="id: \"data.order_id + '-ship'\""))
    _, start = started(registry, "order", "a")
    child = registry.route(None, start).snapshot
    ended = registry.route(child, event("child", "o7-ship", "PACKED", "p")).snapshot
    assert ended is not None and ended.status == "done"
    again = Event(
        "child",
        "o7-ship",
        "$start",
        "other-dispatch",
        T,
        {},
        parent=ParentRef("order", "b", "ship", "other-dispatch"),
    )
    result = registry.route(ended, again)
    assert result.trace.ignored and result.trace.reason == "an instance with that id already exists"
    (answer,) = result.messages
    assert (answer.key, answer.type, answer.dispatch_id) == (
        "order:b",
        "ship.failed",
        "other-dispatch",
    )
    assert answer.payload["status"] == "rejected"


def test_a_cancel_from_another_parent_does_not_cancel_the_child() -> None:
    """``order:42`` and ``refund:42`` both default to the child id ``42.ship.2``: the refund's
    cancel names the refund as parent, and the order's child ignores it."""
    registry = world(PARENT.format(name="order", extra=""), PARENT.format(name="refund", extra=""))
    _, order_start = started(registry, "order", "42")
    refund, refund_start = started(registry, "refund", "42")
    assert order_start.key == refund_start.key == "child:42.ship.2"
    child = registry.route(None, order_start).snapshot
    stopped = registry.route(refund, event("refund", "42", "STOP", "stop"))
    (cancel,) = stopped.messages
    assert (
        cancel.type == "$cancel"
        and cancel.parent is not None
        and cancel.parent.workflow == "refund"
    )
    result = registry.route(child, cancel)
    assert result.trace.ignored
    assert result.snapshot is not None and result.snapshot.status == "active"


def test_the_child_of_the_same_parent_is_cancelled_by_its_cancel() -> None:
    registry = world(PARENT.format(name="order", extra=""))
    parent, start = started(registry, "order", "42")
    child = registry.route(None, start).snapshot
    (cancel,) = registry.route(parent, event("order", "42", "STOP", "stop")).messages
    result = registry.route(child, cancel)
    assert result.snapshot is not None and result.snapshot.status == "cancelled"


def test_a_child_start_too_large_to_be_accepted_fails_the_parent_instead_of_hanging() -> None:
    """A ``$start`` over the event limit would be dead-lettered where it is sent, before
    any answer: the parent's step fails instead, with the reason, and sends nothing."""
    big = PARENT.format(name="order", extra="input: {blob: data.blob}").replace(
        'data: {order_id: "o7"}', 'data: {order_id: "o7", blob: "' + "x" * 2_500 + '"}'
    )
    registry = world(big, limits=Limits(event_bytes=2_000))
    first = registry.route(None, event("order", "a", "$start", "s")).snapshot
    result = registry.route(first, event("order", "a", "GO", "go"))
    assert result.trace.outcome == "failed" and result.messages == ()
    assert result.snapshot is not None and result.snapshot.configuration == ("idle",)
    reason = result.snapshot.reason or ""
    assert (
        reason.startswith("the $start to child:a.ship.2 would be ") and "MAX_EVENT_BYTES" in reason
    )


def test_a_default_child_key_over_the_key_limit_fails_the_parent() -> None:
    registry = world(PARENT.format(name="order", extra=""), limits=Limits(key_bytes=40))
    long_id = "p" * 30  # parent key 36 bytes: fits; child key child:<30>.ship.2 does not
    first = registry.route(None, event("order", long_id, "$start", "s")).snapshot
    result = registry.route(first, event("order", long_id, "GO", "go"))
    assert result.trace.outcome == "failed"
    assert result.snapshot is not None and "OMNINODE_MAX_KEY_BYTES" in (
        result.snapshot.reason or ""
    )
    assert all(m.type != "$start" for m in result.messages)


def test_an_answer_without_its_dispatch_id_does_not_settle_the_invoke() -> None:
    registry = world(PARENT.format(name="order", extra=""))
    parent, _ = started(registry, "order", "a")
    result = registry.route(parent, event("order", "a", "ship.failed", "fake"))
    assert result.trace.ignored
    assert result.snapshot is not None and [p.name for p in result.snapshot.pending] == ["ship"]


TIMED = """\
rss: 1
workflow: timed
version: 1
initial: a
states:
  a:
    after: [{delay: 30d, target: expired}]
  expired: {type: final, status: failed}
"""


def test_an_outside_after_event_cannot_fire_a_timer_before_it_is_due() -> None:
    registry = ChartRegistry([load_chart(TIMED, "timed.yaml")])
    first = registry.route(None, event("timed", "i", "$start", "s")).snapshot
    early = Event("timed", "i", "$after.a.0", "early", "2026-01-01T00:00:01Z", {})
    result = registry.route(first, early)
    assert result.trace.ignored and result.trace.reason == "timer is no longer armed"
    assert result.snapshot is not None and result.snapshot.configuration == ("a",)
    due = Event("timed", "i", "$after.a.0", "due", "2026-01-31T00:00:00Z", {})
    assert registry.route(result.snapshot, due).snapshot.configuration == ("expired",)  # type: ignore[union-attr]
