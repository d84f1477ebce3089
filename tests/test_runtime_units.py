"""The runtime's per-record logic without a broker: codec, worker retries, reducer routing,
timers, settings and projections. (The same code runs on Kafka in test_kafka_runtime.py.)"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from app.core.handlers import HandlerRegistry, NonRetryableError
from app.core.router import ChartRegistry
from app.infra import topics
from app.infra.avro import AvroDecodeError, codec
from app.infra.instance_store import OUTPUT_LIMIT, decode_stored
from app.infra.settings import Settings, SettingsError
from app.infra.timer_service import TimerService
from app.infra.topics import load_manifest
from app.infra.wire import (
    decode_command,
    decode_dead_letter,
    decode_event,
    decode_journal,
    encode_command,
    encode_event,
)
from app.infra.worker_agent import CommandRunner
from app.spi.envelopes import Command, Event, RetryPolicy
from projectors.instances import project
from projectors.state_counts import deltas
from tests.helpers import ListOutbox, chart
from tests.table_reducer import Reducer

SOURCE = ("omninode.events", 0, 7)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


# --- Avro codec -------------------------------------------------------------------------

EVENT = Event(
    "w",
    "i-1",
    "PAY",
    "e-1",
    "2026-01-01T00:00:00Z",
    {"amount": 4.5, "n": [1]},
    dispatch_id="d",
    correlation_id="c",
)


def test_an_event_round_trips_in_confluent_wire_format() -> None:
    data = encode_event(EVENT)
    assert data[0] == 0 and int.from_bytes(data[1:5]) == codec("omninode.Event").schema_id
    assert decode_event(data) == EVENT


def test_a_command_round_trips() -> None:
    command = Command(
        "w:i:2:1",
        "w",
        "i",
        2,
        "effect",
        "charge",
        "await",
        {"a": 1},
        RetryPolicy(5, "fixed", 10, 20),
        3000,
        "refund",
        None,
    )
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a omninode.Event record: 0 bytes"),
        (b"\x01\x00\x00\x00\x01xx", "not Confluent wire format (magic byte 1)"),
        (b"\x00\x00\x00\x00\x01xx", "schema id 1 is not omninode.Event"),
        (encode_event(EVENT)[:12], "corrupt omninode.Event record"),
    ],
)
def test_bad_bytes_are_decode_errors_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(AvroDecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_event(data)


# --- worker: retries, timeouts, non-retryable, fire-and-forget ----------------------------


def command(name: str, mode: str = "await", attempts: int = 3, timeout_ms: int | None = None):  # type: ignore[no-untyped-def]
    return Command(
        f"w:i:1:{name}",
        "w",
        "i",
        1,
        "effect",
        name,
        mode,
        {"x": 1},  # type: ignore[arg-type]
        RetryPolicy(attempts, "exponential", 100, 250),
        timeout_ms,
    )


def runner_with(**handlers):  # type: ignore[no-untyped-def]
    registry = HandlerRegistry()
    for name, fn in handlers.items():
        registry.register("effect", name, fn)
    outbox, slept = ListOutbox(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return CommandRunner(registry, outbox, sleep=sleep), outbox, slept


def answer(outbox: ListOutbox) -> Event:
    (value,) = outbox.on(topics.RESULTS)
    return decode_event(value)


def test_a_failing_handler_is_retried_with_backoff_then_done() -> None:
    calls = []

    def flaky(data, ctx):  # type: ignore[no-untyped-def]
        calls.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return {"ok": data["x"]}

    runner, outbox, slept = runner_with(flaky=flaky)
    run(runner.handle(b"w:i", encode_command(command("flaky")), SOURCE))
    result = answer(outbox)
    assert (result.type, dict(result.payload)) == ("flaky.done", {"ok": 1})
    assert result.event_id == "w:i:1:flaky.done" and result.dispatch_id == "w:i:1:flaky"
    assert calls == [(1, "w:i:1:flaky"), (2, "w:i:1:flaky"), (3, "w:i:1:flaky")]
    assert slept == [0.1, 0.2]  # exponential from 100 ms, capped at 250 ms


def test_spent_retries_answer_failed_with_the_error_and_attempts() -> None:
    async def broken(data, ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("bank down")

    runner, outbox, slept = runner_with(broken=broken)
    run(runner.handle(b"w:i", encode_command(command("broken", attempts=4)), SOURCE))
    result = answer(outbox)
    assert result.type == "broken.failed"
    assert dict(result.payload) == {"error": "RuntimeError: bank down", "attempts": 4}
    assert slept == [0.1, 0.2, 0.25]


def test_a_non_retryable_error_fails_at_once() -> None:
    async def declined(data, ctx):  # type: ignore[no-untyped-def]
        raise NonRetryableError("card declined")

    runner, outbox, slept = runner_with(declined=declined)
    run(runner.handle(b"w:i", encode_command(command("declined")), SOURCE))
    assert dict(answer(outbox).payload) == {
        "error": "NonRetryableError: card declined",
        "attempts": 1,
    }
    assert slept == []


def test_attempts_that_time_out_answer_timeout() -> None:
    async def slow(data, ctx):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)

    runner, outbox, _ = runner_with(slow=slow)
    run(runner.handle(b"w:i", encode_command(command("slow", attempts=2, timeout_ms=20)), SOURCE))
    result = answer(outbox)
    assert (result.type, dict(result.payload)) == ("slow.timeout", {"attempts": 2})


def test_a_fire_and_forget_failure_goes_to_dead_letters_and_answers_nothing() -> None:
    async def broken(data, ctx):  # type: ignore[no-untyped-def]
        raise NonRetryableError("smtp refused")

    runner, outbox, _ = runner_with(broken=broken)
    original = encode_command(command("broken", mode="fire_and_forget"))
    run(runner.handle(b"w:i", original, SOURCE))
    assert outbox.on(topics.RESULTS) == []
    (letter,) = [decode_dead_letter(v) for v in outbox.on(topics.DEAD_LETTERS)]
    assert letter["value"] == original and letter["stage"] == "handler"
    assert "smtp refused" in letter["reason"]
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == SOURCE


def test_a_command_without_a_handler_answers_failed() -> None:
    runner, outbox, _ = runner_with()
    run(runner.handle(b"w:i", encode_command(command("nobody")), SOURCE))
    assert answer(outbox).payload["error"] == "no effect handler registered for 'nobody'"


def test_a_redelivered_command_is_answered_from_the_processed_table() -> None:
    calls = []

    async def charge(data, ctx):  # type: ignore[no-untyped-def]
        calls.append(ctx.idempotency_key)
        return {"charge_id": "ch_1"}

    runner, outbox, _ = runner_with(charge=charge)
    original = encode_command(command("charge"))
    run(runner.handle(b"w:i", original, SOURCE))
    run(runner.handle(b"w:i", original, SOURCE))  # redelivered after a crash
    assert calls == ["w:i:1:charge"]
    first, again = outbox.on(topics.RESULTS)
    assert first == again  # the same answer, byte for byte
    assert (runner.stats.ran, runner.stats.already_processed) == (1, 1)


def test_a_handler_returning_a_non_mapping_is_wrapped() -> None:
    runner, outbox, _ = runner_with(count=lambda data, ctx: 3)
    run(runner.handle(b"w:i", encode_command(command("count")), SOURCE))
    assert dict(answer(outbox).payload) == {"result": 3}


# --- reducer agent with dict tables ------------------------------------------------------

TIMED = chart("""
    rss: 1
    workflow: w
    version: 1
    initial: a
    states:
      a:
        after: [{delay: 1m, target: b}]
        on: {GO: {target: b, effects: [{name: ship}]}}
      b: {type: final}
""")


def reducer(committed=None):  # type: ignore[no-untyped-def]
    snapshots: dict[bytes, bytes] = {}
    timers: dict[bytes, bytes] = {}
    outbox = ListOutbox()
    registry = ChartRegistry([TIMED])
    if committed is None:
        return Reducer(registry, snapshots, timers, outbox), snapshots, timers, outbox
    return Reducer(registry, snapshots, timers, outbox, committed), snapshots, timers, outbox


def feed(agent: Reducer, event: Event, offset: int = 7) -> None:
    run(agent.handle(event.key.encode(), encode_event(event), ("omninode.events", 0, offset)))


def test_the_reducer_journals_sends_commands_and_tracks_timers() -> None:
    agent, snapshots, timers, outbox = reducer()
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    (armed,) = json.loads(timers[b"w:i"])
    assert (armed["event"], armed["deadline"]) == ("$after.a.0", "2026-01-01T00:01:00Z")
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=2)
    assert decode_stored(snapshots[b"w:i"]).snapshot.status == "done"
    assert [decode_journal(v).seq for v in outbox.on(topics.JOURNAL)] == [1, 2]
    (ship,) = [decode_command(v) for v in outbox.on(topics.EFFECT_COMMANDS)]
    assert (ship.name, ship.command_id) == ("ship", "w:i:2:1")
    assert b"w:i" not in timers  # the state with the timer was exited


def test_a_redelivery_resends_the_outputs_of_that_event_without_applying_it_again() -> None:
    agent, snapshots, timers, outbox = reducer()
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=2)
    stored, sent = snapshots[b"w:i"], list(outbox.sent)
    timers[b"w:i"] = b"[]"  # a timer-table write lost in the crash
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=2)
    assert agent.stats.duplicates == 1 and agent.stats.reemitted == 1
    assert snapshots[b"w:i"] == stored  # written again, unchanged: no new seq
    resent = outbox.sent[len(sent) :]
    assert resent == [m for m in sent if m[0] in (topics.JOURNAL, topics.EFFECT_COMMANDS)][-2:]
    assert b"w:i" not in timers  # mirrored from the snapshot again


def test_outputs_are_dropped_once_their_source_offset_is_committed() -> None:
    committed: dict[tuple[str, int], int] = {}
    agent, snapshots, _, outbox = reducer(lambda t, p: committed.get((t, p)))
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    assert [o.event_id for o in decode_stored(snapshots[b"w:i"]).outputs] == ["e1"]
    committed[("omninode.events", 0)] = 2  # offset 1 is committed, so e1's outputs were flushed
    feed(agent, Event("w", "i", "GO", "e2", "2026-01-01T00:00:10Z"), offset=5)
    assert [o.event_id for o in decode_stored(snapshots[b"w:i"]).outputs] == ["e2"]
    before = len(outbox.sent)
    feed(agent, Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z"), offset=1)
    assert len(outbox.sent) == before and agent.stats.reemitted == 0


COUNTING = chart("""
    rss: 1
    workflow: c
    version: 1
    data: {n: 0}
    initial: counting
    states:
      counting:
        on: {PING: {assign: {n: "data.n + 1"}}}
""")


def counting_reducer(committed, commit):  # type: ignore[no-untyped-def]
    snapshots: dict[bytes, bytes] = {}
    agent = Reducer(ChartRegistry([COUNTING]), snapshots, {}, ListOutbox(), committed, commit)
    return agent, snapshots


def ping(agent: Reducer, n: int) -> None:
    event = Event("c", "i", "PING" if n else "$start", f"e{n}", "2026-01-01T00:00:00Z")
    run(agent.handle(b"c:i", encode_event(event), ("omninode.events", 0, n)))


def test_a_hot_instance_asks_for_a_commit_instead_of_dropping_unconfirmed_outputs() -> None:
    committed: dict[tuple[str, int], int] = {}
    handled = [0]

    async def commit() -> None:  # like Faust: flush, then commit every record acked so far
        committed[("omninode.events", 0)] = handled[0]

    agent, snapshots = counting_reducer(lambda t, p: committed.get((t, p)), commit)
    for n in range(OUTPUT_LIMIT + 5):
        ping(agent, n)
        handled[0] = n + 1
    outputs = decode_stored(snapshots[b"c:i"]).outputs
    assert agent.stats.early_commits == 1
    # the commit before step OUTPUT_LIMIT confirmed events 0..OUTPUT_LIMIT-1
    assert [o.offset for o in outputs] == list(range(OUTPUT_LIMIT, OUTPUT_LIMIT + 5))


def test_without_a_commit_no_unconfirmed_output_is_ever_dropped() -> None:
    agent, snapshots = counting_reducer(lambda t, p: None, _no_commit)
    for n in range(OUTPUT_LIMIT + 5):
        ping(agent, n)
    outputs = decode_stored(snapshots[b"c:i"]).outputs
    assert [o.offset for o in outputs] == list(range(OUTPUT_LIMIT + 5))
    assert agent.stats.early_commits == 5  # asked each time, and nothing got confirmed


async def _no_commit() -> None:
    return None


def test_timers_fire_once_when_due_with_the_deadline_as_event_time() -> None:
    outbox = ListOutbox()
    service = TimerService(outbox)
    armed = [
        (
            b"w:i",
            json.dumps(
                [
                    {
                        "id": "w:i:1:t1",
                        "deadline": "2026-01-01T00:01:00Z",
                        "event": "$after.a.0",
                        "workflow_type": "w",
                        "instance_id": "i",
                    }
                ]
            ).encode(),
        )
    ]
    assert run(service.fire_due(armed, datetime(2026, 1, 1, 0, 0, 59, tzinfo=UTC))) == 0
    assert run(service.fire_due(armed, datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC))) == 1
    assert run(service.fire_due(armed, datetime(2026, 1, 1, 0, 2, 0, tzinfo=UTC))) == 0
    (fired,) = [decode_event(v) for v in outbox.on(topics.EVENTS)]
    assert (fired.type, fired.occurred_at, fired.timer_id, fired.event_id) == (
        "$after.a.0",
        "2026-01-01T00:01:00Z",
        "w:i:1:t1",
        "timer:w:i:1:t1",
    )


# --- settings and manifest -----------------------------------------------------------------


def test_settings_read_the_configuration_contract() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "OMNINODE_RSS_PATH": "a/:b/",
            "OMNINODE_HANDLERS": "x.handlers, y",
            "OMNINODE_ROLES": "reducer,projector",
            "OMNINODE_APP_ID": "staging",
        }
    )
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.rss_paths == ("a/", "b/") and settings.handler_modules == ("x.handlers", "y")
    assert settings.roles == {"reducer", "projector"} and settings.profile == "production"
    assert settings.topic(topics.EVENTS) == "staging.events"
    assert Settings.from_env({}).rss_paths == ("rss/",)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMNINODE_PROFILE": "fast"}, "OMNINODE_PROFILE must be production or local"),
        ({"OMNINODE_ROLES": "reducer,cook"}, "unknown OMNINODE_ROLES ['cook']"),
        ({"OMNINODE_PARTITIONS": "many"}, "OMNINODE_PARTITIONS must be an integer"),
        ({"OMNINODE_PROCESSING_GUARANTEE": "maybe"}, "must be at_least_once or exactly_once"),
        (
            {"OMNINODE_PROCESSING_GUARANTEE": "exactly_once", "OMNINODE_PROFILE": "local"},
            "needs Kafka transactions, which the embedded broker does not offer",
        ),
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_env(env)


def test_the_manifest_defines_every_topic_the_runtime_uses() -> None:
    manifest = load_manifest()
    used = {
        topics.EVENTS,
        topics.RESULTS,
        topics.JOURNAL,
        topics.EFFECT_COMMANDS,
        topics.COMPUTE_COMMANDS,
        topics.DEAD_LETTERS,
        topics.INSTANCE_VIEWS,
        topics.STATE_DELTAS,
        topics.STATE_COUNTS,
    }
    assert set(manifest) == used
    for spec in manifest.values():
        codec(spec.value_schema)  # every declared schema exists and parses
    assert manifest[topics.INSTANCE_VIEWS].cleanup_policy == "compact"
    assert manifest[topics.JOURNAL].retention_ms == -1
    partitions = {manifest[t].partitions for t in (topics.EVENTS, topics.RESULTS)}
    assert len(partitions) == 1  # co-partitioned with the snapshot table


def test_local_settings_never_leak_into_production() -> None:
    from app.infra.faust_app import profile_options  # noqa: PLC0415

    assert profile_options(Settings(profile="production")) == {}
    assert profile_options(Settings(profile="local"))["broker_session_timeout"] == 10
    exactly_once = Settings.from_env({"OMNINODE_PROCESSING_GUARANTEE": "exactly_once"})
    assert profile_options(exactly_once) == {"processing_guarantee": "exactly_once"}


# --- projections ---------------------------------------------------------------------------


def test_projection_folds_skip_old_records_and_move_counts() -> None:
    from app.spi.envelopes import JournalRecord  # noqa: PLC0415

    start = JournalRecord(1, Event("w", "i", "$start", "e1", "t1"), False, "active", 1, ("a",))
    done = JournalRecord(2, Event("w", "i", "GO", "e2", "t2"), False, "done", 1, ("b",))
    first = project(None, start)
    assert first is not None and deltas(None, first) == {"w:a": 1}
    second = project(first, done)
    assert second is not None and (second.seq, second.updated_at) == (2, "t2")
    assert deltas(first, second) == {"w:a": -1, "w:b": 1}
    assert project(second, start) is None  # a redelivered older record changes nothing
