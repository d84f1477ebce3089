"""Golden-journal replay, in the style of Temporal's replayer tests.

``tests/golden/<workflow>/<name>.jsonl`` are the journals the simulator's runs of the example
scenarios write (``tests/golden/generate.py``). Every one must replay identically through the
charts in ``rss/``, ending in the snapshots stored beside it. And a changed chart must make
replay fail, at the record and on the field the change first shows: a condition, an effect's
input, a target, a timer's delay, an added effect, a removed state, a child's output. What
the journal cannot show (a changed ``assign`` that no later step reads) only the final
snapshot does. A journal with ``$migrate`` replays by switching charts at it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.cli.replay_cmd import read_journal_file
from app.core.loader import load_chart
from app.core.replay import replay_journal
from app.core.router import ChartRegistry
from app.infra.kafka_journal import by_instance
from app.infra.outbox import journal_record
from app.spi.envelopes import MIGRATE, Event, JournalRecord
from app.spi.limits import DEFAULT_LIMITS
from tests.golden.generate import (
    GOLDEN,
    RSS,
    example_charts,
    journal_text,
    run_world,
    scenario_world,
    scenarios,
    snapshots_text,
)

JOURNALS = sorted(GOLDEN.glob("*/*.jsonl"))


@pytest.fixture(scope="module")
def charts() -> ChartRegistry:
    return example_charts()


def golden(workflow: str, name: str) -> dict[str, list[JournalRecord]]:
    """A golden file's journals, by instance key, each in seq order."""
    return by_instance(read_journal_file(str(GOLDEN / workflow / f"{name}.jsonl"), DEFAULT_LIMITS))


def stored_snapshots(journal: Path) -> dict[str, dict[str, object]]:
    text = journal.with_name(f"{journal.stem}.snapshots.json").read_text(encoding="utf-8")
    found: dict[str, dict[str, object]] = json.loads(text)
    return found


def test_there_is_a_golden_journal_for_every_scenario() -> None:
    expected = {f"{p.parent.name}/{p.name}" for p in scenarios()}
    assert {f"{p.parent.name}/{p.name}" for p in JOURNALS} == expected
    assert len(JOURNALS) >= 12


@pytest.mark.parametrize("path", JOURNALS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_journal_replays_identically(charts: ChartRegistry, path: Path) -> None:
    journals = by_instance(read_journal_file(str(path), DEFAULT_LIMITS))
    snapshots = stored_snapshots(path)
    assert journals.keys() == snapshots.keys()
    for key, journal in journals.items():
        assert [r.seq for r in journal] == list(range(1, len(journal) + 1))
        result = replay_journal(charts, journal)
        assert result.divergence is None, f"{key}: {result.divergence}"
        assert result.snapshot is not None
        assert result.snapshot.to_dict() == snapshots[key]


@pytest.mark.parametrize("scenario", scenarios(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_files_are_what_the_generator_writes(charts: ChartRegistry, scenario: Path) -> None:
    """The checked-in files are reproducible: `python -m tests.golden.generate` after a
    deliberate change, and review the diff."""
    world = scenario_world(charts, scenario)
    target = GOLDEN / scenario.parent.name / scenario.name
    assert journal_text(world.records) == target.read_text(encoding="utf-8")
    snapshots = target.with_name(f"{scenario.stem}.snapshots.json")
    assert snapshots_text(world.snapshots) == snapshots.read_text(encoding="utf-8")


# -- a changed chart fails replay ------------------------------------------------------------


def changed(charts: ChartRegistry, workflow: str, *edits: tuple[str, str]) -> ChartRegistry:
    """The example charts, with ``rss/<workflow>.yaml`` edited (each ``old`` once) and loaded
    in place of the original."""
    text = (RSS / f"{workflow}.yaml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    edited = load_chart(text, f"{workflow}.yaml")
    return ChartRegistry([c for c in charts if c.workflow != workflow] + [edited])


PICKING = """\
          picking:
            on:
              PICKED: packed
"""
LABELLING = """\
  labelling:
    entry:
      effects:
        - name: print_label
          input: {order_id: data.order_id, booking: data.booking}
          # The label printer works through a queue of its own: a label may take an hour.
          timeout: 1h
          retry: {max_attempts: 2}
    on:
      print_label.done:
        target: shipped
        assign: {tracking: "event.payload.tracking"}
      print_label.failed:
        target: failed
        assign: {error: "event.payload.error"}
      print_label.timeout:
        target: failed
        assign: {error: "'the label printer did not answer'"}
"""
SHORT_PAYMENT = '        - assign: {paid: "event.payload.amount"}\n'
REMIND = (
    SHORT_PAYMENT
    + "          effects: [{name: ask_for_the_rest, mode: fire_and_forget,"
    + ' input: {due: "data.total - data.paid"}}]\n'
)

# (why, workflow edited, its edits, golden journal, instance, seq, field)
CHANGES = [
    (
        "a when condition: >= became >",
        "order_fulfillment",
        [("event.payload.amount >= data.total", "event.payload.amount > data.total")],
        ("order_fulfillment", "happy"),
        "order_fulfillment:sim-1",
        3,
        "configuration",
    ),
    (
        "a when threshold of an always transition",
        "loan_application",
        [('"data.score >= 700"', '"data.score >= 600"')],
        ("loan_application", "hold_resume"),
        "loan_application:sim-1",
        3,
        "configuration",
    ),
    (
        "an effect's input: the amount in cents",
        "order_fulfillment",
        [("amount: data.total}", "amount: data.total * 100}")],
        ("order_fulfillment", "happy"),
        "order_fulfillment:sim-1",
        3,
        "outputs",
    ),
    (
        "a target: a shipment timeout now counts as a cancel",
        "order_fulfillment",
        [("ship.timeout: failed", "ship.timeout: cancelled_after_payment")],
        ("order_fulfillment", "shipment_times_out"),
        "order_fulfillment:sim-1",
        7,
        "configuration",
    ),
    (
        "an added effect: a reminder on a short payment",
        "order_fulfillment",
        [(SHORT_PAYMENT, REMIND)],
        ("order_fulfillment", "happy"),
        "order_fulfillment:sim-1",
        2,
        "outputs",
    ),
    (
        "a removed state: packing no longer waits for PICKED",
        "order_fulfillment",
        [(PICKING, ""), ("reserve_stock.done: picking", "reserve_stock.done: packed")],
        ("order_fulfillment", "happy"),
        "order_fulfillment:sim-1",
        6,
        "configuration",
    ),
    (
        "a removed state: no label, a booked shipment is done",
        "shipment",
        [
            (LABELLING, ""),
            ("target: labelling", "target: shipped"),
            (
                '{booking: "event.payload.booking"}',
                '{booking: "event.payload.booking", tracking: "\'none\'"}',
            ),
        ],
        ("shipment", "standalone"),
        "shipment:sim-1",
        2,
        "status",
    ),
    (
        "a timer's delay: the unpaid order expires after 12h, not 24h",
        "order_fulfillment",
        [("delay: 24h", "delay: 12h")],
        ("order_fulfillment", "unpaid_expires"),
        "order_fulfillment:sim-1",
        3,
        "timer",
    ),
    (
        "a reminder's delay, in a journal where it fired",
        "document_approval",
        [("delay: 24h", "delay: 1d1h")],
        ("document_approval", "expired"),
        "document_approval:sim-1",
        4,
        "timer",
    ),
    (
        "a child's output: the parent's answer loses the booking",
        "shipment",
        [
            (
                "output: {tracking: data.tracking, booking: data.booking}",
                "output: {tracking: data.tracking}",
            )
        ],
        ("order_fulfillment", "happy"),
        "shipment:sim-1.ship.7",
        3,
        "outputs",
    ),
    (
        "the version bumped with the old one gone: the journal's $start pins version 2",
        "order_fulfillment",
        [("version: 2", "version: 3")],
        ("order_fulfillment", "happy"),
        "order_fulfillment:sim-1",
        1,
        "outcome",
    ),
]


@pytest.mark.parametrize(
    ("workflow", "edits", "journal", "key", "seq", "what"),
    [case[1:] for case in CHANGES],
    ids=[case[0] for case in CHANGES],
)
def test_a_changed_chart_fails_replay(
    charts: ChartRegistry,
    workflow: str,
    edits: list[tuple[str, str]],
    journal: tuple[str, str],
    key: str,
    seq: int,
    what: str,
) -> None:
    journals = golden(*journal)
    registry = changed(charts, workflow, *edits)
    divergence = replay_journal(registry, journals[key]).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.what) == (seq, what), str(divergence)
    # The other instances of the world replay as before, unless they run the changed chart.
    for other, records in journals.items():
        if other != key and not other.startswith(f"{workflow}:"):
            assert replay_journal(registry, records).divergence is None, other


def test_a_changed_condition_names_the_states_either_way(charts: ChartRegistry) -> None:
    registry = changed(charts, "order_fulfillment", (">= data.total", "> data.total"))
    divergence = replay_journal(
        registry, golden("order_fulfillment", "happy")["order_fulfillment:sim-1"]
    ).divergence
    assert str(divergence) == (
        "seq 3 (PAY): configuration differs: journal has ['charging'], "
        "replay gives ['awaiting_payment']"
    )


def test_a_changed_delay_shows_at_the_firing_not_in_the_per_record_fields(
    charts: ChartRegistry,
) -> None:
    """A firing carries its timer's id, so the replayed instance would apply it even when
    the chart arms that timer for another time: the journal's per-record fields all agree.
    What differs is the firing's time (a timer fires at its deadline) and the deadline
    replay armed, which replay checks before stepping the firing."""
    registry = changed(charts, "order_fulfillment", ("delay: 24h", "delay: 12h"))
    journal = golden("order_fulfillment", "unpaid_expires")["order_fulfillment:sim-1"]
    divergence = replay_journal(registry, journal).divergence
    assert str(divergence) == (
        "seq 3 ($after.awaiting_payment.0): timer differs: journal has a firing at "
        "2026-03-02T10:00:00Z, replay gives the timer armed for 2026-03-01T22:00:00Z"
    )
    assert divergence is not None and divergence.what == "timer"


def test_a_data_change_no_step_reads_shows_only_in_the_snapshot(charts: ChartRegistry) -> None:
    """Replay compares what the journal keeps: the instance's data is not in it. A changed
    ``assign`` that nothing later reads replays identically; the stored snapshot differs."""
    registry = changed(
        charts,
        "order_fulfillment",
        ('assign: {tracking: "event.payload.tracking"}', "assign: {tracking: \"'unknown'\"}"),
    )
    journal = golden("order_fulfillment", "happy")["order_fulfillment:sim-1"]
    result = replay_journal(registry, journal)
    assert result.divergence is None and result.snapshot is not None
    stored = stored_snapshots(GOLDEN / "order_fulfillment" / "happy.jsonl")
    assert stored["order_fulfillment:sim-1"]["data"] != result.snapshot.data
    assert result.snapshot.data["tracking"] == "unknown"


# -- $migrate --------------------------------------------------------------------------------

TICKET_V1 = """\
rss: 1
workflow: ticket
version: 1
data: {notes: 0}
initial: open
states:
  open:
    on:
      NOTE: {assign: {notes: "data.notes + 1"}}
      WORK: in_progress
  in_progress:
    after:
      - {delay: 1h, target: escalated}
    on: {DONE: closed}
  escalated: {on: {DONE: closed}}
  closed: {type: final}
"""
TICKET_V2 = """\
rss: 1
workflow: ticket
version: 2
data: {notes: 0, priority: low}
initial: open
migrate:
  - from: 1
    states: {in_progress: working.active}
    data: {priority: "data.notes > 1 ? 'high' : 'normal'"}
states:
  open: {on: {WORK: working}}
  working:
    initial: active
    on: {DONE: closed}
    states:
      active:
        on: {PAUSE: paused}
        entry:
          effects: [{name: notify_assignee, mode: fire_and_forget, input: {p: data.priority}}]
      paused: {on: {RESUME: active}}
  closed: {type: final}
"""
TICKET_SCRIPT = """\
{"type": "$start", "at": "2026-04-01T08:00:00Z"}
{"type": "NOTE"}
{"type": "NOTE"}
{"type": "WORK", "at": "2026-04-01T08:10:00Z"}
{"type": "$migrate", "payload": {"to": 2}, "at": "2026-04-01T08:20:00Z"}
{"type": "PAUSE"}
{"type": "RESUME"}
{"type": "DONE"}
"""


def ticket_journal(
    v1: str = TICKET_V1, v2: str = TICKET_V2
) -> tuple[list[JournalRecord], dict[str, Any]]:
    """The ticket run on v1, migrated to v2 half way, as the runtime journals it."""
    first, second = load_chart(v1, "ticket.v1.yaml"), load_chart(v2, "ticket.v2.yaml")
    world = run_world(first, [second], TICKET_SCRIPT, "ticket.jsonl")
    return world.records, world.snapshots["ticket:sim-1"].to_dict()


def test_a_journal_with_migrate_replays_by_switching_charts() -> None:
    journal, final = ticket_journal()
    migrated = next(r for r in journal if r.event.type == MIGRATE)
    assert (migrated.seq, migrated.ignored, migrated.workflow_version) == (5, False, 2)
    assert migrated.configuration == ("working.active",)
    assert [r.workflow_version for r in journal] == [1, 1, 1, 1, 2, 2, 2, 2]
    both = ChartRegistry([load_chart(TICKET_V1, "v1.yaml"), load_chart(TICKET_V2, "v2.yaml")])
    result = replay_journal(both, journal)
    assert result.divergence is None
    assert result.snapshot is not None and result.snapshot.to_dict() == final
    assert result.snapshot.data["priority"] == "high"  # the migration's data transform ran


def test_a_migrate_journal_without_the_target_version_diverges_at_the_migrate() -> None:
    journal, _ = ticket_journal()
    only_v1 = ChartRegistry([load_chart(TICKET_V1, "v1.yaml")])
    divergence = replay_journal(only_v1, journal).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.event_type, divergence.what) == (5, MIGRATE, "ignored")


def test_a_changed_migration_diverges_at_the_migrate() -> None:
    journal, _ = ticket_journal()
    remapped = TICKET_V2.replace("in_progress: working.active", "in_progress: working.paused")
    both = ChartRegistry([load_chart(TICKET_V1, "v1.yaml"), load_chart(remapped, "v2.yaml")])
    divergence = replay_journal(both, journal).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.what) == (5, "configuration")
    assert divergence.recorded == "['working.active']"


def test_a_changed_target_version_diverges_after_the_migrate() -> None:
    """The chart of version 2 changed: steps after the switch replay through it."""
    journal, _ = ticket_journal()
    changed_v2 = TICKET_V2.replace("{RESUME: active}", '{RESUME: "#closed"}')
    both = ChartRegistry([load_chart(TICKET_V1, "v1.yaml"), load_chart(changed_v2, "v2.yaml")])
    divergence = replay_journal(both, journal).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.event_type, divergence.what) == (7, "RESUME", "status")


def test_an_instance_started_before_a_newer_version_was_loaded_replays_on_its_own() -> None:
    """A ``$start`` without a pin ran on the latest version loaded then; with version 2
    loaded now, replay still starts it on the version its journal records (1)."""
    journal, final = ticket_journal()
    unpinned = [replace(journal[0], event=replace(journal[0].event, version=None)), *journal[1:]]
    assert unpinned[0].workflow_version == 1 and unpinned[0].event.version is None
    both = ChartRegistry([load_chart(TICKET_V1, "v1.yaml"), load_chart(TICKET_V2, "v2.yaml")])
    result = replay_journal(both, unpinned)
    assert result.divergence is None
    assert result.snapshot is not None and result.snapshot.to_dict() == final


def test_a_migrate_ignored_because_its_target_was_not_loaded_replays_once_it_is() -> None:
    """During a rolling deploy a $migrate reached workers without version 2: journaled
    ignored. Replay with version 2 loaded now reproduces the journal (nothing moved)."""
    only_v1 = ChartRegistry([load_chart(TICKET_V1, "v1.yaml")])
    first = only_v1.route(None, Event("ticket", "t", "$start", "s", "2026-04-01T08:00:00Z", {}))
    migrate = Event("ticket", "t", "$migrate", "m", "2026-04-01T08:01:00Z", {"to": 2})
    ignored = only_v1.route(first.snapshot, migrate)
    assert ignored.trace.ignored and "version 2 is not loaded" in (ignored.trace.reason or "")
    journal = [
        journal_record(first_event, result)
        for first_event, result in (
            (Event("ticket", "t", "$start", "s", "2026-04-01T08:00:00Z", {}), first),
            (migrate, ignored),
        )
    ]
    both = ChartRegistry([load_chart(TICKET_V1, "v1.yaml"), load_chart(TICKET_V2, "v2.yaml")])
    result = replay_journal(both, [r for r in journal if r is not None])
    assert result.divergence is None
    assert result.snapshot is not None and result.snapshot.version == 1
