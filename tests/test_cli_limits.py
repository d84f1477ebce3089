"""Bad input to ``omninode`` is one ``file:line: reason`` or ``omninode: …`` line and exit 2,
never a traceback; reads of a partition go to its end or fail saying how far they got."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from app.cli import main as cli_main
from app.cli import runtime as cli_runtime
from app.cli.main import main
from app.core.snapshot import Snapshot
from app.infra import kafka_client, topics
from app.infra.avro import codec
from app.infra.control import describe_record, new_event
from app.infra.instance_store import StoredInstance, encode_stored
from app.infra.kafka_client import (
    ReadIncomplete,
    check_bootstrap_servers,
    partition_for,
    produce,
)
from app.infra.settings import SettingsError
from app.infra.wire import encode_event, event_record
from app.infra.worker_process import worker_environment
from tests.conftest import TEST_PARTITIONS, Deployment, create_topic

ROOT = Path(__file__).resolve().parents[1]
ORDER = str(ROOT / "rss" / "order_fulfillment.yaml")
SHIPMENT = str(ROOT / "rss" / "shipment.yaml")  # the child workflow the order invokes
START = '{"type": "$start", "payload": {"order_id": "o", "total": 1, "items": []}}'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_SCRIPT_LINES = {
    "at_not_a_string": ('{"type": "PAY", "at": 12345}', "'at' must be an ISO-8601 instant"),
    "at_not_an_instant": ('{"type": "PAY", "at": "tuesday"}', "'at': not an ISO-8601 instant"),
    "advance_past_year_9999": ('{"advance": "4000000d"}', "outside years 1 to 9999"),
    "nan_payload": ('{"type": "PAY", "payload": {"amount": NaN}}', "NaN is not a JSON number"),
    "infinity_payload": ('{"type": "PAY", "payload": {"a": -Infinity}}', "-Infinity is not"),
    "float_beyond_range": ('{"type": "PAY", "payload": {"amount": 1e400}}', "1e400 is beyond"),
    "int_of_5000_digits": ('{"type": "PAY", "payload": {"n": 1' + "0" * 5000 + "}}", "digits"),
    "payload_3000_deep": (
        '{"type": "PAY", "payload": {"a": ' + _nested(3000) + "}}",
        "nested too deeply to parse",
    ),
    "payload_over_json_depth": (
        '{"type": "PAY", "payload": {"a": ' + _nested(40) + "}}",
        "nested deeper than 32 levels",
    ),
    "line_over_event_bytes": (
        '{"type": "PAY", "payload": {"a": "' + "x" * 300_000 + '"}}',
        "over the limit of 262144 (OMNINODE_MAX_EVENT_BYTES)",
    ),
    "id_not_a_string": ('{"type": "PAY", "id": 5}', "'id' must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPT_LINES))
def test_simulate_reports_a_bad_script_line_as_file_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    line, reason = BAD_SCRIPT_LINES[case]
    events = tmp_path / "e.jsonl"
    events.write_text(f"{START}\n{line}\n")
    code, _, err = run(capsys, "simulate", ORDER, str(events), "--chart", SHIPMENT)
    assert code == 2
    (message,) = err.splitlines()
    assert message.startswith(f"{events}:2: ")
    assert reason in message


def test_simulate_holds_script_lines_to_the_limits_in_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNINODE_MAX_EVENT_BYTES", "100")
    events = tmp_path / "e.jsonl"
    events.write_text(f"{START}\n" + '{"type": "PAY", "payload": {"a": "' + "x" * 100 + '"}}\n')
    code, _, err = run(capsys, "simulate", ORDER, str(events), "--chart", SHIPMENT)
    assert code == 2
    assert err.strip().startswith(f"{events}:2: line is ")
    assert "over the limit of 100 (OMNINODE_MAX_EVENT_BYTES)" in err


def test_simulate_of_a_timer_beyond_year_9999_is_a_reason_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The reducer fails the instance with the reason (the row carries it); a reducer that
    raises instead is caught by the simulator as ``file:line`` and exit 2."""
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"type": "$start", "at": "9999-12-31T00:00:00Z", '
        '"payload": {"order_id": "o", "total": 1, "items": []}}\n'
    )
    code, out, err = run(capsys, "simulate", ORDER, str(events), "--chart", SHIPMENT)
    if code == 0:
        (row,) = (json.loads(line) for line in out.splitlines())
        assert row["status"] == "failed" and "9999" in row["reason"]
    else:
        assert code == 2
        assert err.startswith(f"{events}:1: $start at 9999-12-31T00:00:00Z: ")
        assert len(err.splitlines()) == 1


def test_simulate_rows_carry_the_reason_of_a_step_that_failed_the_instance(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chart = tmp_path / "w.yaml"
    chart.write_text(
        "rss: 1\nworkflow: w\nversion: 1\ndata: {n: 1}\ninitial: a\nstates:\n"
        "  a:\n    on:\n      GO: {target: b, assign: {n: 'data.missing + 1'}}\n  b: {}\n"
    )
    events = tmp_path / "e.jsonl"
    events.write_text('{"type": "$start"}\n{"type": "GO"}\n')
    code, out, err = run(capsys, "simulate", str(chart), str(events))
    assert code == 0, err
    started, failed = (json.loads(line) for line in out.splitlines())
    assert "reason" not in started
    assert failed["status"] == "failed"
    assert "data.missing + 1" in failed["reason"]


# -- --data, settings and the last resort (no broker: each is refused before connecting) --


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("notjson", "omninode: --data is not plain JSON: Expecting value"),
        ("[1]", "omninode: --data must be a JSON object"),
        ('{"amount": NaN}', "omninode: --data is not plain JSON: NaN is not a JSON number"),
        ('{"amount": 1e400}', "omninode: --data is not plain JSON: 1e400 is beyond a float's"),
        ('{"a": ' + _nested(3000) + "}", "omninode: --data is not a JSON object: nested too"),
        ('{"a": ' + _nested(40) + "}", "(OMNINODE_MAX_JSON_DEPTH)"),
        ('{"a": "' + "x" * 300_000 + '"}', "over the limit of 262144 bytes (OMNINODE_MAX_EVENT"),
    ],
    ids=["not_json", "not_object", "nan", "inf", "3000_deep", "over_depth", "over_event_bytes"],
)
def test_send_data_that_is_bad_or_over_a_limit_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data: str, message: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # never reached
    code, out, err = run(capsys, "send", "order_fulfillment", "o-1", "PAY", "--data", data)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith("omninode: ") and message in line


def test_start_data_over_the_event_limit_in_the_environment_names_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("OMNINODE_MAX_EVENT_BYTES", "1000")
    data = json.dumps({"note": "x" * 2000})
    code, _, err = run(capsys, "start", "order_fulfillment", "o-1", "--data", data)
    assert code == 2
    assert "over the limit of 1000 bytes (OMNINODE_MAX_EVENT_BYTES)" in err


def test_a_bootstrap_server_that_is_not_host_port_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "host:notaport")
    for argv in (["status", "w", "i"], ["send", "w", "i", "GO"], ["dlq", "list"]):
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert err == (
            "omninode: KAFKA_BOOTSTRAP_SERVERS: 'host:notaport' is not host:port[,host:port...]\n"
        )


@pytest.mark.parametrize(
    "servers", ["localhost:9092", "a:1,b.example:9096", "kafka", "[::1]:9092", "::1", "10.0.0.1"]
)
def test_bootstrap_servers_aiokafka_accepts_pass_the_check(servers: str) -> None:
    check_bootstrap_servers(servers)


@pytest.mark.parametrize(
    "servers", ["host:notaport", "", "a:1,", "host:0", "host:65536", "kafka://x:1", "[::1]:x"]
)
def test_bootstrap_servers_that_are_not_host_port_are_refused(servers: str) -> None:
    with pytest.raises(SettingsError, match="is not host:port"):
        check_bootstrap_servers(servers)


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_70(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("a bug\nover two lines " + "y" * 2000)

    monkeypatch.setattr(cli_main, "_diagram", broken)
    code, out, err = run(capsys, "diagram", ORDER)
    assert (code, out) == (70, "")
    (line,) = err.splitlines()
    assert line.startswith("omninode: internal error: RuntimeError: a bug over two lines yyy")
    assert len(line) < 600


def test_omninode_prints_no_traceback_for_bad_script_lines(tmp_path: Path) -> None:
    """As a user runs it: a separate process, whose stderr is what a terminal shows."""
    events = tmp_path / "e.jsonl"
    events.write_text(START + '\n{"type": "PAY", "payload": {"a": ' + _nested(3000) + "}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "simulate", ORDER, str(events), "--chart", SHIPMENT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{events}:2: ")


# -- dead letters that do not decode -----------------------------------------------------


def _event_bytes_with_payload(payload_text: str) -> bytes:
    record = event_record(new_event("order_fulfillment", "o-1", "PAY", {}))
    return codec("omninode.Event").encode({**record, "payload": payload_text})


@pytest.mark.parametrize(
    "value",
    [
        _event_bytes_with_payload('{"a": ' + _nested(5000) + "}"),
        _event_bytes_with_payload('{"a": NaN}'),
        _event_bytes_with_payload("[1]"),
        b"\x00garbage",
        None,
    ],
    ids=["5000_deep_payload", "nan_payload", "array_payload", "garbage", "none"],
)
def test_describe_record_falls_back_to_undecodable_never_raises(value: bytes | None) -> None:
    described = describe_record(value)
    assert isinstance(described, str) and described.startswith("undecodable (")


def test_describe_record_decodes_one_of_our_events() -> None:
    event = new_event("order_fulfillment", "o-1", "PAY", {"amount": 1})
    described = describe_record(encode_event(event))
    assert isinstance(described, dict) and described["payload"] == {"amount": 1}


def test_dlq_list_and_show_print_a_letter_with_a_huge_reason_and_a_deep_record(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    letter: dict[str, Any] = {
        "id": "0:7",
        "reason": "first line\nsecond line " + "z" * 100_000,
        "stage": "decode",
        "source_topic": "omninode.events",
        "source_partition": 0,
        "source_offset": 3,
        "key": b"order_fulfillment:o-1",
        "value": _event_bytes_with_payload('{"a": ' + _nested(5000) + "}"),
    }

    async def letters(settings: object) -> list[dict[str, Any]]:
        return [letter]

    monkeypatch.setattr(cli_runtime, "read_dead_letters", letters)
    code, out, err = run(capsys, "dlq", "list")
    assert code == 0, err
    (line,) = out.splitlines()
    assert line.startswith("0:7") and "first line second line zzz" in line
    assert line.endswith(" characters)") and len(line) < 500
    code, out, err = run(capsys, "dlq", "show", "0:7")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["reason"] == letter["reason"]
    assert shown["record"].startswith("undecodable (")


# -- reading a partition to its end -------------------------------------------------------


class ScriptedConsumer:
    """Enough of AIOKafkaConsumer for ``_drain``: a partition of ``size`` records served in
    batches of ``batch`` with ``pauses`` empty fetches before each batch."""

    def __init__(self, size: int, batch: int, pauses: int, start: int = 0) -> None:
        self.size, self.batch, self.pauses, self.log_start = size, batch, pauses, start
        self.next = start
        self.empty_left = pauses
        self.fetches = 0

    def assign(self, tps: list[TopicPartition]) -> None:
        self.tps = tps

    async def seek_to_beginning(self, *tps: TopicPartition) -> bool:
        self.next = self.log_start
        return True

    async def position(self, tp: TopicPartition) -> int:
        return self.next

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict[Any, list[Any]]:
        self.fetches += 1
        if self.empty_left:
            self.empty_left -= 1
            await asyncio.sleep(timeout_ms / 1000 / 100)
            return {}
        self.empty_left = self.pauses
        (tp,) = tps
        last = min(self.size, self.next + self.batch)
        messages = [
            SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o, key=b"k", value=b"v")
            for o in range(self.next, last)
        ]
        self.next = last
        return {tp: messages} if messages else {}


def test_drain_reads_to_the_end_offset_through_empty_fetches() -> None:
    """An empty fetch (a broker pause) used to end the read early: stale status."""
    tp = TopicPartition("t", 0)
    consumer = ScriptedConsumer(size=1000, batch=100, pauses=3)
    deadline = time.monotonic() + 30
    records, (read,) = asyncio.run(
        kafka_client._drain(consumer, [tp], {tp: 1000}, deadline, "c:9092")  # type: ignore[arg-type]
    )
    assert [r.offset for r in records] == list(range(1000))
    assert (read.first, read.position, read.end, read.records) == (0, 1000, 1000, 1000)
    assert consumer.fetches == 40


def test_drain_starts_at_the_log_start_and_skips_an_empty_partition() -> None:
    tp, empty = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = ScriptedConsumer(size=50, batch=10, pauses=0, start=20)
    records, reads = asyncio.run(
        kafka_client._drain(
            consumer,  # type: ignore[arg-type]
            [tp],
            {tp: 50, empty: 0},
            time.monotonic() + 30,
            "c:9092",
        )
    )
    assert [r.offset for r in records] == list(range(20, 50))
    assert [(r.first, r.position) for r in reads] == [(20, 50)]


def test_drain_that_cannot_reach_the_end_in_time_says_how_far_it_got(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_client, "READ_POLL_S", 0.05)
    tp = TopicPartition("snapshots-changelog", 2)
    consumer = ScriptedConsumer(size=300, batch=100, pauses=0)
    consumer.size = 120  # the broker has only these to give; the listed end says 300
    with pytest.raises(ReadIncomplete) as caught:
        asyncio.run(
            kafka_client._drain(consumer, [tp], {tp: 300}, time.monotonic() + 0.5, "c:9092")  # type: ignore[arg-type]
        )
    message = str(caught.value)
    assert message.startswith("c:9092: snapshots-changelog partition 2 read from offset 0 to 120")
    assert "of end offset 300 after " in message


def _stored(instance_id: str, seq: int) -> bytes:
    snapshot = Snapshot(
        workflow="order_fulfillment",
        version=1,
        instance_id=instance_id,
        status="active",
        configuration=("awaiting_payment",),
        data={"seq": seq, "pad": "p" * 100},
        seq=seq,
        history={},
        timers=(),
        pending=(),
        completed_effects=(),
        recent_event_ids=(),
        updated_at="2026-01-01T00:00:00Z",
    )
    return encode_stored(StoredInstance(snapshot))


class FakeKafkaConsumer(ScriptedConsumer):
    """ScriptedConsumer behind AIOKafkaConsumer's constructor: 4 partitions, the key's one
    holding snapshots seq 1..300 of ``long-1``, with pauses between batches."""

    KEY = b"order_fulfillment:long-1"

    def __init__(self, **options: object) -> None:
        super().__init__(size=300, batch=40, pauses=2)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        mine = partition_for(self.KEY, 4)
        return {tp: self.size if tp.partition == mine else 0 for tp in tps}

    async def getmany(self, *tps: TopicPartition, timeout_ms: int) -> dict[Any, list[Any]]:
        batch = await super().getmany(*tps, timeout_ms=timeout_ms)
        for messages in batch.values():
            for m in messages:
                m.key, m.value = self.KEY, _stored("long-1", m.offset + 1)
        return batch


def test_status_verbose_reads_to_the_end_through_pauses_and_says_how(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMNINODE_PROFILE", raising=False)
    monkeypatch.delenv("OMNINODE_APP_ID", raising=False)
    monkeypatch.setattr(kafka_client, "AIOKafkaConsumer", FakeKafkaConsumer)
    code, out, err = run(capsys, "status", "order_fulfillment", "long-1", "--json", "--verbose")
    assert code == 0, err
    assert json.loads(out)["seq"] == 300
    partition = partition_for(FakeKafkaConsumer.KEY, 4)
    (how,) = err.splitlines()
    assert how.startswith(
        f"read omninode-snapshots-changelog partition {partition}: from offset 0 to 300 "
        "(its end offset was 300 when the read started): 300 records, "
        "300 with key order_fulfillment:long-1 in "
    )
    code, out, err = run(capsys, "status", "order_fulfillment", "long-1", "--json")
    assert (code, err) == (0, "")


# -- against a broker (the lead runs these) -----------------------------------------------


VERBOSE = ("--json", "--verbose")


@pytest.mark.kafka
def test_status_of_a_long_changelog_is_its_last_snapshot(deployment: Deployment) -> None:
    """Many snapshots of one instance among other keys' on its changelog partition: status
    must show the last one (a read that stopped at the first pause showed an old one)."""
    settings = deployment.settings
    topic = settings.changelog_topic(topics.SNAPSHOT_TABLE)
    asyncio.run(create_topic(settings.bootstrap_servers, topic, TEST_PARTITIONS))
    key = b"order_fulfillment:long-1"

    total = 30_000
    for start in range(0, total, 5_000):
        batch = []
        for seq in range(start + 1, start + 5_001):
            other = f"order_fulfillment:other-{seq % 97}".encode()
            batch.append((topic, other, _stored(other.decode().split(":")[1], seq)))
            batch.append((topic, key, _stored("long-1", seq)))
        asyncio.run(produce(settings, batch))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "status", "order_fulfillment", "long-1", *VERBOSE],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
        env=worker_environment(settings),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seq"] == total
    partition = partition_for(key, TEST_PARTITIONS)
    (how,) = [line for line in result.stderr.splitlines() if line.startswith("read ")]
    assert how.startswith(f"read {topic} partition {partition}: from offset 0 to ")
    assert f"{total} with key order_fulfillment:long-1" in how


def test_validate_and_simulate_hold_charts_to_the_limits_in_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chart = str(ROOT / "rss" / "order_fulfillment.yaml")
    script = str(ROOT / "tests" / "scenarios" / "order_fulfillment" / "happy.jsonl")
    monkeypatch.setenv("OMNINODE_MAX_CHART_BYTES", "100")
    for argv in (["validate", chart], ["simulate", chart, script]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "OMNINODE_MAX_CHART_BYTES" in err and "order_fulfillment.yaml:1:" in err
