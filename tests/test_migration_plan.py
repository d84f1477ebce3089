"""``omninode migrate plan``: the pure planner (mapped configuration and the spec's replay
check) on two versions of a small review workflow, and the CLI's formatting."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.cli import migrate_cmd
from app.cli.main import main
from app.core.loader import load_chart
from app.core.migration_plan import (
    MigrationPlan,
    Plan,
    migrate_event,
    plan_instance,
    plan_migration,
    replay_on,
    target_problem,
)
from app.core.ports import StoredInstance
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, timer_firing
from app.infra import migration_reads, topics
from app.infra.instance_store import encode_stored
from app.infra.kafka_client import Record
from app.infra.migration_reads import Progress
from app.infra.outbox import journal_record
from app.infra.settings import Settings
from app.infra.wire import encode_journal
from app.spi.envelopes import MIGRATE, Event, JournalRecord
from tests.helpers import T0, chart

# Version 1: two approvals publish a document; a pending review reminds after an hour.
V1 = """
rss: 1
workflow: review
version: 1
data: {approvals: 0}
initial: draft
states:
  draft:
    on: {SUBMIT: pending}
  pending:
    on:
      APPROVE:
        - when: "data.approvals >= 1"
          target: approved
        - assign: {approvals: "data.approvals + 1"}
    after:
      - delay: 1h
        target: reminded
  reminded:
    on: {APPROVE: approved}
  approved:
    on: {PUBLISH: published}
  published:
    type: final
"""

# Version 2: `pending` is now `waiting`, one approval is enough, an approval names its
# reviewer, and `approved` is gone (`accepted` replaces it, with no mapping).
V2 = """
rss: 1
workflow: review
version: 2
migrate:
  - from: 1
    states: {pending: waiting}
data: {approvals: 0}
events:
  SUBMIT: {}
  APPROVE:
    type: object
    required: [reviewer]
    properties: {reviewer: {type: string}}
  PUBLISH: {}
initial: draft
states:
  draft:
    on: {SUBMIT: waiting}
  waiting:
    on:
      APPROVE:
        - when: "data.approvals >= 0"
          target: accepted
    after:
      - delay: 1h
        target: reminded
  reminded:
    on: {APPROVE: accepted}
  accepted:
    on: {PUBLISH: published}
  published:
    type: final
"""

# Version 3: version 2 again, migrating from 2 only.
V3 = V2.replace("version: 2", "version: 3").replace(
    "  - from: 1\n    states: {pending: waiting}", "  - from: 2"
)


def registry(*texts: str) -> ChartRegistry:
    return ChartRegistry([chart(text, file=f"v{i}.yaml") for i, text in enumerate(texts, 1)])


@dataclass
class World:
    """Instances driven through the registry, as the workers do, with their journals."""

    registry: ChartRegistry
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    journals: dict[str, list[JournalRecord]] = field(default_factory=dict)
    changelog: list[tuple[str, Snapshot]] = field(default_factory=list)  # every write
    now: str = T0
    count: int = 0

    def send(self, instance: str, type_: str, payload: dict[str, Any] | None = None) -> None:
        self.count += 1
        event = Event("review", instance, type_, f"e{self.count}", self.now, payload or {})
        self.apply(event)

    def start(self, instance: str, version: int | None = None) -> None:
        self.count += 1
        self.apply(Event("review", instance, "$start", f"e{self.count}", self.now, version=version))

    def fire(self, instance: str, state: str) -> None:
        snapshot = self.snapshots[f"review:{instance}"]
        timer = next(t for t in snapshot.timers if t.state == state)
        self.apply(timer_firing("review", instance, timer))

    def migrate(self, instance: str, target: int) -> None:
        self.apply(migrate_event(self.snapshots[f"review:{instance}"], target))

    def apply(self, event: Event) -> None:
        result = self.registry.route(self.snapshots.get(event.key), event)
        assert result.trace.accepted, result.trace
        assert result.snapshot is not None and result.trace.seq is not None
        self.snapshots[event.key] = result.snapshot
        self.changelog.append((event.key, result.snapshot))
        record = JournalRecord(
            result.trace.seq,
            event,
            result.trace.ignored,
            result.snapshot.status,
            result.snapshot.version,
            result.snapshot.configuration,
            result.trace.reason,
        )
        self.journals.setdefault(event.key, []).append(record)

    def plan(self, target: int, key: str) -> Plan:
        return plan_instance(self.registry, self.snapshots[key], self.journals[key], target)


@pytest.fixture
def world() -> World:
    return World(registry(V1, V2))


def test_a_history_the_new_chart_takes_the_same_way_agrees(world: World) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    plan = world.plan(2, "review:r-1")
    assert (plan.verdict, plan.configuration, plan.mapped) == ("agrees", ("pending",), ("waiting",))
    assert plan.check == "replay agrees"
    assert plan.event_id == "migrate:review:r-1:1->2@2"


def test_timer_firings_replay_against_the_timers_the_new_chart_arms(world: World) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    world.fire("r-1", "pending")
    plan = world.plan(2, "review:r-1")
    assert (plan.verdict, plan.mapped, plan.replayed) == ("agrees", ("reminded",), ("reminded",))


@pytest.mark.parametrize(
    ("v2", "state"),
    [
        (V2.replace("delay: 1h", "delay: 2h"), "waiting"),  # renamed, and a new delay
        (  # the same path, a new delay
            V1.replace("version: 1", "version: 2\nmigrate:\n  - from: 1").replace("1h", "2h"),
            "pending",
        ),
    ],
)
def test_a_timer_firing_at_another_time_than_the_new_timer_cannot_replay(
    v2: str, state: str
) -> None:
    world = World(registry(V1, v2))
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    world.fire("r-1", "pending")  # at 1h; version 2's timer is due after 2h
    plan = world.plan(2, "review:r-1")
    assert (plan.verdict, plan.mapped) == ("cannot-replay", ("reminded",))
    assert plan.check == (
        "cannot replay: seq 3 ($after.pending.0): timer differs: journal has a firing at "
        "2026-01-01T01:00:00Z, replay gives the timer armed for 2026-01-01T02:00:00Z"
    )


def test_a_changed_guard_taking_the_history_elsewhere_disagrees(world: World) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    world.send("r-1", "APPROVE", {"reviewer": "ann"})  # v1 counts it; v2 accepts on one
    plan = world.plan(2, "review:r-1")
    assert plan.verdict == "disagrees"
    assert (plan.mapped, plan.replayed, plan.replayed_status) == (
        ("waiting",),
        ("accepted",),
        "active",
    )
    assert plan.check == "replay disagrees: mapped waiting, replay accepted"


def test_an_event_the_new_chart_rejects_cannot_replay(world: World) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    world.send("r-1", "APPROVE")  # no reviewer: v2's declared schema refuses it
    plan = world.plan(2, "review:r-1")
    assert (plan.verdict, plan.mapped) == ("cannot-replay", ("waiting",))
    assert plan.check.startswith("cannot replay: seq 3 (APPROVE) is rejected: payload of APPROVE")
    assert "reviewer" in plan.check


def test_a_state_with_no_place_in_the_new_version_cannot_map(world: World) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    world.send("r-1", "APPROVE")
    world.send("r-1", "APPROVE")
    plan = world.plan(2, "review:r-1")
    assert (plan.verdict, plan.configuration, plan.mapped) == ("cannot-map", ("approved",), None)
    assert plan.check == (
        "cannot map: migration to version 2 failed: state 'approved' has no place in "
        "version 2 (map it under migrate.states for from: 1)"
    )


def test_a_version_that_declares_no_migrate_from_the_instances_cannot_map() -> None:
    world = World(registry(V1, V2, V3))
    world.start("r-1", version=1)
    plan = world.plan(3, "review:r-1")
    assert plan.check == "cannot map: version 3 declares no migrate from version 1"


def test_the_plan_is_what_the_migrate_step_does(world: World) -> None:
    """apply sends the planned event; the live step lands where the plan said."""
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    plan = world.plan(2, "review:r-1")
    world.migrate("r-1", 2)
    after = world.snapshots["review:r-1"]
    assert (after.version, after.configuration) == (2, plan.mapped)
    assert world.journals["review:r-1"][-1].event.event_id == plan.event_id


def test_migrate_steps_in_the_journal_are_skipped_but_keep_the_seq_numbering() -> None:
    """A timer armed after an earlier migration fires with an id that holds its seq."""
    world = World(registry(V1, V2, V3))
    world.start("r-1", version=1)
    world.migrate("r-1", 2)  # seq 2, still in draft
    world.send("r-1", "SUBMIT")  # seq 3: waiting, its timer armed at seq 3
    world.fire("r-1", "waiting")  # seq 4: reminded
    journal = world.journals["review:r-1"]
    assert [r.event.type for r in journal][1] == MIGRATE
    plan = world.plan(3, "review:r-1")
    assert (plan.version, plan.verdict, plan.replayed) == (2, "agrees", ("reminded",))


def test_a_data_transform_that_raises_is_a_reason_not_a_crash() -> None:
    broken = V2.replace(
        "states: {pending: waiting}",
        "states: {pending: waiting}\n    data: {n: 'data.missing + 1'}",
    )
    world = World(registry(V1))
    world.start("r-1", version=1)
    plan = plan_instance(registry(V1, broken), world.snapshots["review:r-1"], [], 2)
    assert plan.verdict == "cannot-map"
    assert plan.check.startswith("cannot map: migration to version 2 failed: CEL expression")


@pytest.mark.parametrize(
    ("keep", "reason"),
    [
        (
            lambda r: r.seq > 1,
            "the journal starts at seq 2: earlier records were deleted (retention)",
        ),
        (lambda r: r.seq != 2, "seq 2 is missing from the journal"),
        (lambda r: r.seq < 3, "the journal ends at seq 2, the snapshot is at seq 3"),
        (lambda r: False, "no journal records (deleted by retention, or not written yet)"),
    ],
)
def test_a_journal_without_every_seq_from_1_cannot_replay(
    world: World, keep: Any, reason: str
) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    world.send("r-1", "APPROVE", {"reviewer": "ann"})
    records = [r for r in world.journals["review:r-1"] if keep(r)]
    plan = plan_instance(world.registry, world.snapshots["review:r-1"], records, 2)
    assert (plan.verdict, plan.reason) == ("cannot-replay", reason)


def test_records_past_the_snapshot_and_redelivered_ones_are_left_out(world: World) -> None:
    world.start("r-1", version=1)
    world.send("r-1", "SUBMIT")
    snapshot = world.snapshots["review:r-1"]
    world.send("r-1", "APPROVE", {"reviewer": "ann"})  # written after the snapshot was read
    records = world.journals["review:r-1"]
    replayed, problem = replay_on(
        world.registry.get("review", 2), [*records, records[0]], snapshot.seq
    )
    assert problem is None and replayed is not None
    assert (replayed.seq, replayed.configuration) == (2, ("waiting",))


def plan_world() -> World:
    world = World(registry(V1, V2))
    world.start("a-agrees", version=1)
    world.send("a-agrees", "SUBMIT")
    world.start("b-disagrees", version=1)
    world.send("b-disagrees", "SUBMIT")
    world.send("b-disagrees", "APPROVE", {"reviewer": "ann"})
    world.start("c-cannot-replay", version=1)
    world.send("c-cannot-replay", "SUBMIT")
    world.send("c-cannot-replay", "APPROVE")
    world.start("d-cannot-map", version=1)
    world.send("d-cannot-map", "SUBMIT")
    world.send("d-cannot-map", "APPROVE")
    world.send("d-cannot-map", "APPROVE")
    world.start("e-on-v2")  # the latest: already on the target
    world.start("f-finished", version=1)
    for event in ("SUBMIT", "APPROVE", "APPROVE", "PUBLISH"):
        world.send("f-finished", event)
    return world


def whole_plan() -> MigrationPlan:
    world = plan_world()
    return plan_migration(world.registry, "review", 2, world.snapshots.values(), world.journals)


def test_the_workflow_plan_skips_instances_on_the_target_and_finished_ones() -> None:
    plan = whole_plan()
    assert [(p.key, p.verdict) for p in plan.plans] == [
        ("review:a-agrees", "agrees"),
        ("review:b-disagrees", "disagrees"),
        ("review:c-cannot-replay", "cannot-replay"),
        ("review:d-cannot-map", "cannot-map"),
    ]
    assert (plan.on_target, plan.finished, plan.ok) == (1, 1, False)
    assert plan.counts() == {"agrees": 1, "disagrees": 1, "cannot-replay": 1, "cannot-map": 1}
    assert plan.counts_by_version() == {1: plan.counts()}


def test_a_plan_is_ok_when_every_instance_agrees_or_there_is_none() -> None:
    world = plan_world()
    agreeing = {k: s for k, s in world.snapshots.items() if k.endswith("a-agrees")}
    plan = plan_migration(world.registry, "review", 2, agreeing.values(), world.journals)
    assert plan.ok
    assert plan_migration(world.registry, "review", 2, [], {}).ok


def test_bad_targets() -> None:
    reg = registry(V1, V2)
    assert target_problem(reg, "review", 2) is None
    assert target_problem(reg, "reviews", 2) == "unknown workflow 'reviews' (loaded: review)"
    assert (
        target_problem(reg, "review", 5)
        == "workflow 'review' has no version 5 loaded (loaded: 1, 2)"
    )


# -- what the CLI prints (its Kafka reads are covered by the broker tests) -------------------


def test_plan_report() -> None:
    lines = migrate_cmd.plan_report(whole_plan())
    assert lines[0] == (
        "review: migration to version 2: 4 active instances on other versions "
        "(1 already on version 2, 1 finished)"
    )
    assert lines[2:6] == [
        "review:a-agrees         v1 pending -> v2 waiting  replay agrees",
        "review:b-disagrees      v1 pending -> v2 waiting  replay disagrees: mapped waiting, replay accepted",
        lines[4],
        "review:d-cannot-map     v1 approved -> v2 ?  cannot map: migration to version 2 failed: "
        "state 'approved' has no place in version 2 (map it under migrate.states for from: 1)",
    ]
    assert lines[4].startswith(
        "review:c-cannot-replay  v1 pending -> v2 waiting  cannot replay: seq 3 (APPROVE) is rejected"
    )
    assert lines[7:] == [
        "from   agrees  disagrees  cannot-replay  cannot-map  total",
        "v1          1          1              1           1      4",
        "total       1          1              1           1      4",
        "",
        "not ready: 3 of 4 instances do not map or their replay does not agree "
        "(apply --only-agreeing sends the 1 that do)",
    ]


def test_plan_report_with_nothing_to_migrate() -> None:
    plan = MigrationPlan("review", 2, (), on_target=3, finished=1)
    assert migrate_cmd.plan_report(plan) == [
        "review: migration to version 2: 0 active instances on other versions "
        "(3 already on version 2, 1 finished)",
        "",
        "ready: every instance maps and its replay agrees",
    ]


def test_plan_json() -> None:
    shown = migrate_cmd.plan_json(whole_plan())
    json.dumps(shown)  # plain JSON
    assert {k: shown[k] for k in ("workflow", "to", "ok", "on_target", "finished")} == {
        "workflow": "review",
        "to": 2,
        "ok": False,
        "on_target": 1,
        "finished": 1,
    }
    assert shown["counts"] == {"agrees": 1, "disagrees": 1, "cannot-replay": 1, "cannot-map": 1}
    assert shown["instances"][1] == {
        "key": "review:b-disagrees",
        "version": 1,
        "seq": 3,
        "configuration": ["pending"],
        "mapped": ["waiting"],
        "verdict": "disagrees",
        "check": "replay disagrees: mapped waiting, replay accepted",
        "replayed": ["accepted"],
        "replayed_status": "active",
        "reason": None,
        "event_id": "migrate:review:b-disagrees:1->2@3",
    }
    assert shown["instances"][3]["mapped"] is None


def test_apply_sends_what_maps_or_with_only_agreeing_what_agrees() -> None:
    plans = whole_plan().plans
    assert [p.key for p in plans if migrate_cmd.sendable(p, False)] == [
        "review:a-agrees",
        "review:b-disagrees",
        "review:c-cannot-replay",
    ]
    assert [p.key for p in plans if migrate_cmd.sendable(p, True)] == ["review:a-agrees"]


def test_apply_progress_and_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    world = plan_world()
    plan = plan_migration(world.registry, "review", 2, world.snapshots.values(), world.journals)
    a, b, c, _ = plan.plans
    event = {p.key: migrate_event(world.snapshots[p.key], 2) for p in (a, b, c)}
    world.migrate("a-agrees", 2)
    moved = world.snapshots["review:a-agrees"]
    still = world.snapshots["review:c-cannot-replay"]
    waiting = [Progress(e, "waiting", world.snapshots[k]) for k, e in event.items()]
    progress = [
        Progress(event[a.key], "migrated", moved),
        Progress(event[b.key], "ignored", world.snapshots[b.key], "instance is done"),
        Progress(event[c.key], "waiting", still),
    ]
    report = migrate_cmd.progress_reporter(60)
    report(waiting)
    report(waiting)  # unchanged: said once
    report(progress)
    assert capsys.readouterr().out.splitlines() == [
        "  0/3 migrated, 0 ignored, 3 waiting (up to 60s)",
        "  1/3 migrated, 1 ignored, 1 waiting (up to 60s)",
    ]
    assert migrate_cmd.outcome_report(plan, progress) == [
        "migrated  review:a-agrees         v1 -> v2 waiting",
        "ignored   review:b-disagrees      stays on v1: instance is done",
        "waiting   review:c-cannot-replay  still v1 at seq 3; its $migrate "
        "(migrate:review:c-cannot-replay:1->2@3) may yet arrive",
        "not sent  review:d-cannot-map     stays on v1: cannot map: migration to version 2 failed: "
        "state 'approved' has no place in version 2 (map it under migrate.states for from: 1)",
        "1 of 4 instances now run on version 2",
    ]


# -- bad input: refused before Kafka is read -------------------------------------------------


@pytest.fixture
def rss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "v1.yaml").write_text(V1)
    (tmp_path / "v2.yaml").write_text(V2)
    monkeypatch.setenv("OMNINODE_RSS_PATH", str(tmp_path))
    monkeypatch.delenv("OMNINODE_HANDLERS", raising=False)
    # Nothing listens here: a command that got as far as Kafka would fail with exit 3.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["plan", "reviews", "--to", "2"],
            "omninode: unknown workflow 'reviews' (loaded: review)\n",
        ),
        (
            ["apply", "review", "--to", "3"],
            "omninode: workflow 'review' has no version 3 loaded (loaded: 1, 2)\n",
        ),
    ],
)
def test_an_unknown_workflow_or_version_is_bad_input(
    rss: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["migrate", *argv]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == message.rstrip("\n")


def test_charts_that_do_not_load_are_bad_input_with_file_and_line(
    rss: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rss / "v2.yaml").write_text(V2.replace("{pending: waiting}", "{nowhere: waiting}"))
    assert main(["migrate", "plan", "review", "--to", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{rss / 'v2.yaml'}:" in err
    assert "nowhere" in err


def test_a_version_that_is_not_a_positive_integer_is_refused_by_argparse(rss: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["migrate", "plan", "review", "--to", "0"])
    assert exit_.value.code == 2


# -- the commands end to end over a fake Kafka (the broker tests run them on a real one) -----


@dataclass
class FakeKafka:
    """The topics the commands read, made from a world's writes; events sent are applied."""

    world: World
    settings: Settings
    extra: list[Record] = field(default_factory=list)  # records that are not snapshots
    drop: set[str] = field(default_factory=set)  # instances whose $migrate never arrives
    cancel_first: set[str] = field(default_factory=set)  # cancelled before it arrives
    sent: list[Event] = field(default_factory=list)

    async def read_topic(
        self, settings: Settings, topic: str, timeout_s: float = 1
    ) -> list[Record]:
        if topic == self.settings.changelog_topic(topics.SNAPSHOT_TABLE):
            values = [(k, encode_stored(StoredInstance(s))) for k, s in self.world.changelog]
            return [self._record(topic, k, v) for k, v in values] + self.extra
        assert topic == self.settings.topic(topics.JOURNAL)
        journal = [r for records in self.world.journals.values() for r in records]
        # Each record twice: a redelivered event re-emits its record.
        return [self._record(topic, r.key, encode_journal(r)) for r in journal * 2]

    async def read_journal(self, settings: Settings, key: str) -> list[JournalRecord]:
        return self.world.journals[key]

    async def send_events(self, settings: Settings, events: list[Event]) -> None:
        self.sent += events
        for event in events:
            if event.instance_id in self.cancel_first:
                self.world.send(event.instance_id, "$cancel")
            if event.instance_id not in self.drop:
                self.world.apply(event)

    @staticmethod
    def _record(topic: str, key: str, value: bytes | None) -> Record:
        return Record(topic, 0, 0, key.encode(), value)


@pytest.fixture
def kafka(rss: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    fake = FakeKafka(plan_world(), Settings.from_env())
    monkeypatch.setattr(migration_reads, "read_topic", fake.read_topic)
    monkeypatch.setattr(migration_reads, "read_journal", fake.read_journal)
    monkeypatch.setattr(migration_reads, "POLL_S", 0.0)
    monkeypatch.setattr(migrate_cmd, "send_events", fake.send_events)
    return fake


def test_plan_reads_the_latest_snapshot_of_each_instance_and_their_journals(
    kafka: FakeKafka, capsys: pytest.CaptureFixture[str]
) -> None:
    changelog = kafka.settings.changelog_topic(topics.SNAPSHOT_TABLE)
    kafka.extra = [
        Record(changelog, 0, 1, b"review:deleted", None),
        Record(changelog, 0, 2, b"review:garbage", b"not json"),
        Record(changelog, 0, 3, b"other:x-1", b"not even read"),
    ]
    assert main(["migrate", "plan", "review", "--to", "2"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == migrate_cmd.plan_report(whole_plan())
    assert err.splitlines()[-1].startswith(
        f"omninode: left out, does not decode: {changelog}@0:2 (review:garbage): ValueError"
    )
    assert main(["migrate", "plan", "review", "--to", "2", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == migrate_cmd.plan_json(whole_plan())


def test_plan_exits_0_when_every_instance_agrees(
    kafka: FakeKafka, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka.world.changelog = [(k, s) for k, s in kafka.world.changelog if k.endswith("a-agrees")]
    assert main(["migrate", "plan", "review", "--to", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "ready: every instance maps and its replay agrees"
    )


def test_apply_sends_every_instance_that_maps_and_follows_them(
    kafka: FakeKafka, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "apply", "review", "--to", "2"]) == 1  # d-cannot-map stays
    out = capsys.readouterr().out.splitlines()
    assert [e.event_id for e in kafka.sent] == [
        "migrate:review:a-agrees:1->2@2",
        "migrate:review:b-disagrees:1->2@3",
        "migrate:review:c-cannot-replay:1->2@3",
    ]
    assert out[1:3] == [
        "sent $migrate to 3 of 4 instances",
        "  3/3 migrated, 0 ignored, 0 waiting (up to 60s)",
    ]
    assert out[3:] == [
        "migrated  review:a-agrees         v1 -> v2 waiting",
        "migrated  review:b-disagrees      v1 -> v2 waiting",
        "migrated  review:c-cannot-replay  v1 -> v2 waiting",
        "not sent  review:d-cannot-map     stays on v1: cannot map: migration to version 2 "
        "failed: state 'approved' has no place in version 2 (map it under migrate.states "
        "for from: 1)",
        "3 of 4 instances now run on version 2",
    ]
    # Run again: the migrated ones are on version 2 now, only d is left, and not sent.
    assert main(["migrate", "apply", "review", "--to", "2"]) == 1
    assert len(kafka.sent) == 3


def test_apply_only_agreeing_reports_ignored_and_late_migrations(
    kafka: FakeKafka, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka.world.changelog = [(k, s) for k, s in kafka.world.changelog if "map" not in k]
    kafka.world.send("b-disagrees", "APPROVE", {"reviewer": "bob"})
    kafka.cancel_first = {"a-agrees"}
    assert main(["migrate", "apply", "review", "--to", "2", "--only-agreeing"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == [
        "ignored   review:a-agrees         stays on v1: instance is cancelled",
        "not sent  review:b-disagrees      stays on v1: cannot map: migration to version 2 failed: "
        "state 'approved' has no place in version 2 (map it under migrate.states for from: 1)",
        out[-2],
        "0 of 3 instances now run on version 2",
    ]
    assert out[-2].startswith("not sent  review:c-cannot-replay  stays on v1: cannot replay")
    kafka.drop = {"c-cannot-replay"}
    assert main(["migrate", "apply", "review", "--to", "2", "--timeout", "0.01"]) == 1
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "waiting   review:c-cannot-replay  still v1 at seq 3; its $migrate "
        "(migrate:review:c-cannot-replay:1->2@3) may yet arrive",
        "0 of 2 instances now run on version 2",
    ]


def test_apply_exits_0_when_every_instance_moved(
    kafka: FakeKafka, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka.world.changelog = [(k, s) for k, s in kafka.world.changelog if k.endswith("a-agrees")]
    assert main(["migrate", "apply", "review", "--to", "2", "--only-agreeing"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 of 1 instances now run on version 2"
    # Nothing left to move: a second apply sends nothing and says so.
    assert main(["migrate", "apply", "review", "--to", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "review: migration to version 2: 0 active instances on other versions "
        "(1 already on version 2, 0 finished)"
    ]
    assert len(kafka.sent) == 1


SHIFT_V1 = """\
rss: 1
workflow: shift
version: 1
initial: idle
states:
  idle: {on: {GO: charging}}
  charging:
    entry: {effects: [{name: charge}]}
    on: {charge.done: shipped}
  shipped: {on: {DONE: fin}}
  fin: {type: final}
"""
# Version 2 sends one more (fire-and-forget) effect before `charge` in the same step, so
# every later id of that step is one higher than the journal's.
SHIFT_V2 = SHIFT_V1.replace("version: 1", "version: 2\nmigrate: [{from: 1}]").replace(
    "effects: [{name: charge}]", "effects: [{name: audit, mode: fire_and_forget}, {name: charge}]"
)


def test_a_version_that_shifts_the_ids_of_a_step_still_agrees() -> None:
    registry = ChartRegistry([load_chart(SHIFT_V1, "v1.yaml"), load_chart(SHIFT_V2, "v2.yaml")])
    snapshot, records = None, []
    at = "2026-01-01T00:00:00Z"
    for event in (
        Event("shift", "i", "$start", "s", at, {}, version=1),
        Event("shift", "i", "GO", "g", at, {}),
    ):
        result = registry.route(snapshot, event)
        records.append(journal_record(event, result, snapshot))
        snapshot = result.snapshot
    assert snapshot is not None
    (charge,) = snapshot.pending
    done = Event("shift", "i", "charge.done", "d", at, {}, dispatch_id=charge.dispatch_id)
    result = registry.route(snapshot, done)
    records.append(journal_record(done, result, snapshot))
    assert result.snapshot is not None and result.snapshot.configuration == ("shipped",)
    plan = plan_instance(registry, result.snapshot, [r for r in records if r is not None], 2)
    assert (plan.verdict, plan.check) == ("agrees", "replay agrees")
