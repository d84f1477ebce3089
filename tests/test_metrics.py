"""Prometheus metrics: what the reducer, the command runner and the dead-letter sender
record, and the gauges read when scraped (instances by status, armed timers, lag)."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from app.core.handlers import HandlerRegistry
from app.core.router import ChartRegistry
from app.infra.instance_store import TableInstanceStore
from app.infra.metrics import (
    UNKNOWN,
    Metrics,
    StateCollector,
    consumer_lag,
    instances_gauge,
    use_collector,
)
from app.infra.outbox import KafkaStepOutbox, send_dead_letter
from app.infra.reducer_agent import Reducer
from app.infra.wire import encode_command, encode_event
from app.infra.worker_agent import CommandRunner
from app.spi.envelopes import Command, Event, RetryPolicy
from tests.helpers import ListOutbox, chart

FLOW = chart("""
    rss: 1
    workflow: w
    version: 1
    initial: a
    events: {$start: {type: object}, GO: {type: object}, NOTE: {type: object}}
    states:
      a:
        on: {GO: {target: b, effects: [{name: ship}]}}
      b: {on: {ship.done: c}}
      c: {type: final}
""")


def feed(reducer: Reducer, event: Event, offset: int) -> None:
    key = event.key.encode()
    asyncio.run(reducer.handle(key, encode_event(event), ("omninode.events", 0, offset)))


def sample(registry: CollectorRegistry, metric: str, **labels: str) -> float:
    return registry.get_sample_value(metric, labels) or 0.0


def test_the_reducer_counts_events_by_outcome_steps_and_commands() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.known_workflows.add("w")
    store = TableInstanceStore({}, {})
    reducer = Reducer(ChartRegistry([FLOW]), store, KafkaStepOutbox(ListOutbox()), metrics=metrics)
    t = "2026-01-01T00:00:00Z"
    feed(reducer, Event("w", "i", "$start", "e1", t), 1)
    feed(reducer, Event("w", "i", "GO", "e2", t), 2)
    feed(reducer, Event("w", "i", "NOTE", "e3", t), 3)  # declared, handled nowhere: ignored
    feed(reducer, Event("w", "i", "GO", "e2", t), 9)  # the same id again: a duplicate
    feed(reducer, Event("w", "nobody", "GO", "e4", t), 4)  # no such instance: rejected
    feed(reducer, Event("zz", "i", "$start", "e5", t), 5)  # a type no chart loaded
    outcomes = {
        o: sample(registry, "omninode_events_total", workflow="w", outcome=o)
        for o in ("applied", "ignored", "duplicate", "rejected")
    }
    assert outcomes == {"applied": 2, "ignored": 1, "duplicate": 1, "rejected": 1}
    assert sample(registry, "omninode_events_total", workflow=UNKNOWN, outcome="rejected") == 1
    assert sample(registry, "omninode_commands_total", kind="effect", name="ship") == 1
    assert sample(registry, "omninode_step_seconds_count") == 6


def test_every_dead_letter_is_counted_by_stage() -> None:
    before = sample(REGISTRY, "omninode_dead_letters_total", stage="route")
    source = ("omninode.events", 0, 1)
    asyncio.run(send_dead_letter(ListOutbox(), "why", "route", source, b"k", b"v"))
    assert sample(REGISTRY, "omninode_dead_letters_total", stage="route") == before + 1


def test_handler_runs_are_timed_by_name_and_outcome() -> None:
    handlers = HandlerRegistry()
    handlers.register("effect", "metered", lambda data, ctx: {"ok": True})
    runner = CommandRunner(handlers, ListOutbox())
    command = Command("w:i:1:1", "w", "i", 1, "effect", "metered", "await", {}, RetryPolicy(), 1000)
    labels = {"name": "metered", "outcome": "done"}
    before = sample(REGISTRY, "omninode_handler_seconds_count", **labels)
    asyncio.run(runner.handle(b"w:i", encode_command(command), ("omninode.commands.default", 0, 1)))
    assert sample(REGISTRY, "omninode_handler_seconds_count", **labels) == before + 1


def test_instances_by_status_come_from_the_status_counts() -> None:
    rows = [
        (b"w:a", b"3"),
        (b"w:(status:active)", b"3"),
        (b"w:(status:done)", b"5"),
        (b"v:(cancelled)", b"1"),
        (b"v:(status:cancelled)", b"1"),
    ]
    gauge = instances_gauge(rows)
    found = {(s.labels["workflow"], s.labels["status"]): s.value for s in gauge.samples}
    assert found == {("w", "active"): 3, ("w", "done"): 5, ("v", "cancelled"): 1}


def test_lag_is_the_end_offset_less_the_next_offset_to_read() -> None:
    end = {("t", 0): 100, ("t", 1): 50, ("t", 2): 10}
    read = {("t", 0): 89}  # read up to 89: 90 is next
    committed = {("t", 1): 50}
    assert consumer_lag(end, read, committed) == {("t", 0): 10, ("t", 1): 0, ("t", 2): 10}


def test_the_scrape_time_collector_exposes_its_gauges_and_can_be_replaced() -> None:
    registry = CollectorRegistry()
    collector = StateCollector(
        counts=lambda: [(b"w:(status:failed)", b"2")],
        timers=lambda: 7,
        lag=lambda: {("omninode.events", 3): 4},
    )
    use_collector(collector, registry)
    use_collector(StateCollector(timers=lambda: 9), registry)  # replaces, no duplicate error
    text = generate_latest(registry).decode()
    assert "omninode_timers_armed 9.0" in text
    assert "omninode_instances" not in text
    use_collector(collector, registry)
    text = generate_latest(registry).decode()
    assert 'omninode_instances{status="failed",workflow="w"} 2.0' in text
    assert 'omninode_consumer_lag{partition="3",topic="omninode.events"} 4.0' in text
