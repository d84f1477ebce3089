"""The Kafka scenarios: reducer agent against baselines, end to end, recovery.

Every scenario runs on the broker given to it, with its own topics, and measures rates from
the producers' record timestamps (CreateTime) of the outputs, so start-up time and the
benchmark's own consumer are not counted.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.core.durations import parse_instant_ms
from app.infra import topics
from app.infra.control import new_event
from app.infra.kafka_client import apply_topics
from app.infra.settings import Settings
from app.infra.topics import load_manifest
from app.infra.wire import decode_command, decode_journal, encode_command, encode_event
from app.infra.worker_process import WorkerProcess
from app.spi.envelopes import Command, RetryPolicy
from bench.common import (
    ROOT,
    Seen,
    collect,
    fast_produce,
    faust_worker,
    percentile,
    rate,
    run,
    spawn,
    stop,
    wait_for_log,
)

PARTITIONS = load_manifest()[topics.EVENTS].partitions  # the product's default (topics/)
BENCH_RSS = str(ROOT / "bench" / "rss")
BENCH_HANDLERS = str(ROOT / "bench" / "rss" / "handlers.py")
READY = "[^Worker]: Ready"
SESSION_S = 11  # the local profile's group session (10 s), and a margin


def deployment(bootstrap: str, name: str) -> Settings:
    settings = Settings(
        bootstrap_servers=bootstrap,
        profile="local",
        partitions=PARTITIONS,
        replication=1,
        app_id=f"{name}{uuid.uuid4().hex[:6]}",
        rss_paths=(BENCH_RSS,),
        handler_modules=(BENCH_HANDLERS,),
    )
    run(apply_topics(settings, settings.manifest()))
    return settings


async def _create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        await admin.close()


def ping_inputs(instances: int, events: int) -> list[tuple[bytes, bytes]]:
    """$start for each instance, then PINGs round-robin: ``events`` records in all."""
    ids = [f"p{n}" for n in range(instances)]
    records = [new_event("pinger", i, "$start", {}, f"{i}:start") for i in ids]
    records += [
        new_event("pinger", ids[n % instances], "PING", {}, f"ping-{n}")
        for n in range(events - instances)
    ]
    return [(e.key.encode(), encode_event(e)) for e in records]


def agent_vs_baselines(bootstrap: str, workdir: Path, events: int, timeout_s: float) -> dict:
    """events/s of the reducer agent, a naive Faust counter, a Faust agent that only
    forwards each event, and an aiokafka passthrough."""
    inputs = ping_inputs(max(1, events // 50), events)
    unbatched = {"OMNINODE_REDUCER_BATCH": "1"}
    return {
        "reducer_agent_events_per_s": _our_agent(bootstrap, workdir, inputs, timeout_s),
        "reducer_agent_unbatched_events_per_s": _our_agent(
            bootstrap, workdir, inputs, timeout_s, unbatched
        ),
        "faust_counter_events_per_s": _faust_counter(bootstrap, workdir, inputs, timeout_s),
        "faust_forward_events_per_s": _faust_forward(bootstrap, workdir, inputs, timeout_s),
        "passthrough_events_per_s": _passthrough(bootstrap, workdir, inputs, timeout_s),
    }


def _our_agent(
    bootstrap: str, workdir: Path, inputs: list, timeout_s: float, env: dict | None = None
) -> float:
    settings = deployment(bootstrap, "bagent")
    events = settings.topic(topics.EVENTS)
    run(fast_produce(bootstrap, [(events, k, v) for k, v in inputs]))
    name = settings.app_id
    worker = WorkerProcess(
        settings,
        workdir / f"{name}-data",
        workdir / f"{name}.log",
        {"OMNINODE_ROLES": "reducer", **(env or {})},
    ).start()
    try:
        seen = run(collect(bootstrap, [settings.topic(topics.JOURNAL)], len(inputs), timeout_s))
    finally:
        worker.stop()
    return _checked_rate(seen, len(inputs), "reducer agent")


def _faust_counter(bootstrap: str, workdir: Path, inputs: list, timeout_s: float) -> float:
    # its output is the table's changelog, which Faust creates
    return _faust_baseline(
        "bench.apps.counter",
        "bcount",
        "-counts-changelog",
        False,
        bootstrap,
        workdir,
        inputs,
        timeout_s,
    )


def _faust_forward(bootstrap: str, workdir: Path, inputs: list, timeout_s: float) -> float:
    return _faust_baseline(
        "bench.apps.forward", "bfwd", ".out", True, bootstrap, workdir, inputs, timeout_s
    )


def _faust_baseline(
    module: str,
    prefix: str,
    output_suffix: str,
    create_output: bool,
    bootstrap: str,
    workdir: Path,
    inputs: list,
    timeout_s: float,
) -> float:
    """events/s of a plain Faust app (bench/apps) fed the inputs, measured on its output."""
    app_id = f"{prefix}{uuid.uuid4().hex[:6]}"
    source, output = f"{app_id}.in", f"{app_id}{output_suffix}"
    run(_create_topics(bootstrap, [source, output] if create_output else [source]))
    run(fast_produce(bootstrap, [(source, k, v) for k, v in inputs]))
    env = {
        "BENCH_APP_ID": app_id,
        "BENCH_INPUT": source,
        "BENCH_OUTPUT": output,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BENCH_PARTITIONS": str(PARTITIONS),
    }
    process = spawn(
        faust_worker(module, workdir / f"{prefix}-data"), env, workdir / f"{prefix}.log"
    )
    try:
        seen = run(collect(bootstrap, [output], len(inputs), timeout_s))
    finally:
        stop(process)
    return _checked_rate(seen, len(inputs), module)


def _passthrough(bootstrap: str, workdir: Path, inputs: list, timeout_s: float) -> float:
    prefix = f"bpass{uuid.uuid4().hex[:6]}"
    source, target = f"{prefix}.in", f"{prefix}.out"
    run(_create_topics(bootstrap, [source, target]))
    run(fast_produce(bootstrap, [(source, k, v) for k, v in inputs]))
    process = spawn(
        [sys.executable, "-m", "bench.apps.passthrough", bootstrap, source, target, prefix],
        {},
        workdir / "passthrough.log",
    )
    try:
        seen = run(collect(bootstrap, [target], len(inputs), timeout_s))
    finally:
        stop(process)
    return _checked_rate(seen, len(inputs), "passthrough")


def _checked_rate(seen: list[Seen], expected: int, what: str) -> float:
    if len(seen) < expected:
        raise RuntimeError(f"{what}: only {len(seen)} of {expected} outputs before the timeout")
    return rate(seen)


def end_to_end(
    bootstrap: str, workdir: Path, instances: int, paced_s: float, timeout_s: float
) -> dict:
    """Three awaited no-op effects per instance through two worker processes: peak
    instances/s, then latencies at half of that rate. The workers run the orchestration
    path (reducer, effects, computes); projectors are off the path from event to command
    and would run as their own processes in a deployment that needs them."""
    settings = deployment(bootstrap, "be2e")
    env = {
        "OMNINODE_RSS_PATH": BENCH_RSS,
        "OMNINODE_HANDLERS": BENCH_HANDLERS,
        "OMNINODE_ROLES": "reducer,effects,computes",
    }
    workers = [
        WorkerProcess(settings, workdir / f"e2e-{n}-data", workdir / f"e2e-{n}.log", env).start()
        for n in ("a", "b")
    ]
    try:
        for worker in workers:
            worker.wait_ready(120)
        peak = _peak(settings, instances, timeout_s)
        paced = _paced(settings, peak / 2, paced_s, timeout_s, offset=instances)
    finally:
        for worker in workers:
            worker.stop()
    return {
        "e2e_instances_per_s": peak,
        "half_peak_rate": peak / 2,
        **paced,
        "e2e_settings": settings,
    }


def _starts(first: int, count: int) -> list[tuple[bytes, bytes]]:
    """Keyed, encoded $start events for instances ``first`` .. ``first + count - 1``."""
    events = (
        new_event("three_effects", f"i{n}", "$start", {}, f"i{n}:start")
        for n in range(first, first + count)
    )
    return [(e.key.encode(), encode_event(e)) for e in events]


def _peak(settings: Settings, instances: int, timeout_s: float) -> float:
    events = settings.topic(topics.EVENTS)
    began_ms = time.time() * 1000
    run(
        fast_produce(settings.bootstrap_servers, [(events, k, v) for k, v in _starts(0, instances)])
    )
    done = _finished(settings, instances, timeout_s)
    span_s = (max(done.values()) - began_ms) / 1000
    return instances / span_s


def _finished(settings: Settings, instances: int, timeout_s: float) -> dict[str, int]:
    """Instance key -> CreateTime of its final journal record, once all have finished."""
    journal = settings.topic(topics.JOURNAL)
    seen = run(collect(settings.bootstrap_servers, [journal], 4 * instances, timeout_s))
    done = {}
    for record in seen:
        entry = decode_journal(record.value)
        if entry.status == "done":
            done.setdefault(entry.key, record.timestamp_ms)
    if len(done) < instances:
        raise RuntimeError(f"end to end: {len(done)} of {instances} finished before the timeout")
    return done


def _paced(settings: Settings, per_s: float, seconds: float, timeout_s: float, offset: int) -> dict:
    count = max(1, int(per_s * seconds))
    events = settings.topic(topics.EVENTS)
    tick_s = 0.05
    per_tick = max(1, round(per_s * tick_s))

    async def pace() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
        await producer.start()
        try:
            began = time.monotonic()
            for n in range(0, count, per_tick):
                # Made when sent: occurred_at is the moment the event enters the system.
                for key, value in _starts(offset + n, min(per_tick, count - n)):
                    await producer.send(events, value, key=key)
                delay = began + (n // per_tick + 1) * tick_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.flush()
        finally:
            await producer.stop()

    run(pace())
    total = offset + count
    journal = run(
        collect(settings.bootstrap_servers, [settings.topic(topics.JOURNAL)], 4 * total, timeout_s)
    )
    commands = run(
        collect(
            settings.bootstrap_servers,
            [settings.topic(topics.DEFAULT_COMMANDS)],
            3 * total,
            timeout_s,
        )
    )
    keys = {f"three_effects:i{n}" for n in range(offset, total)}
    return _latencies(journal, commands, keys)


def _latencies(journal: list[Seen], commands: list[Seen], keys: set[str]) -> dict:
    event_ms: dict[tuple[str, int], int] = {}
    start_ms: dict[str, int] = {}
    done_ms: dict[str, int] = {}
    for record in journal:
        entry = decode_journal(record.value)
        if entry.key not in keys:
            continue
        occurred = parse_instant_ms(entry.event.occurred_at)
        event_ms.setdefault((entry.key, entry.seq), occurred)
        if entry.seq == 1:
            start_ms[entry.key] = occurred
        if entry.status == "done":
            done_ms.setdefault(entry.key, record.timestamp_ms)
    to_command: list[float] = []
    for record in commands:
        command = decode_command(record.value)
        key = f"{command.workflow_type}:{command.instance_id}"
        caused_at = event_ms.get((key, command.seq))
        if key in keys and caused_at is not None:
            to_command.append(record.timestamp_ms - caused_at)
    to_final = [done_ms[k] - start_ms[k] for k in done_ms if k in start_ms]
    return {
        "paced_instances": len(keys),
        "p50_event_to_command_ms": percentile(to_command, 0.50),
        "p99_event_to_command_ms": percentile(to_command, 0.99),
        "p50_start_to_final_ms": percentile(to_final, 0.50),
        "p99_start_to_final_ms": percentile(to_final, 0.99),
    }


def recovery(bootstrap: str, workdir: Path, instances: int, timeout_s: float) -> dict:
    """Seconds for a fresh worker (no local state) to restore ``instances`` snapshots from
    the changelog, beside the start-up of a worker with nothing to restore. One worker
    starts that many ``pinger`` instances first; each fresh worker starts once the group's
    previous member has left (a join would otherwise wait out its session)."""
    env = {
        "OMNINODE_ROLES": "reducer",
        "OMNINODE_RSS_PATH": BENCH_RSS,
        "OMNINODE_HANDLERS": BENCH_HANDLERS,
    }
    settings = deployment(bootstrap, "brec")
    _fill(settings, workdir / "recovery-fill", env, instances, timeout_s)
    empty = deployment(bootstrap, "bempty")
    baseline_s = _time_to_ready(empty, workdir / "empty", env, timeout_s)
    restore_s = _time_to_ready(settings, workdir / "restore", env, timeout_s)
    changelog = settings.changelog_topic(topics.SNAPSHOT_TABLE)
    records = run(collect(settings.bootstrap_servers, [changelog], 10**9, 5.0))
    snapshots = {r.key for r in records}
    extra_s = max(restore_s - baseline_s, 1e-3)
    return {
        "recovery_snapshots": len(snapshots),
        "recovery_changelog_records": len(records),
        "recovery_ready_s": restore_s,
        "empty_ready_s": baseline_s,
        "recovery_snapshots_per_s": len(snapshots) / extra_s,
    }


def _fill(settings: Settings, directory: Path, env: dict, instances: int, timeout_s: float) -> None:
    events = settings.topic(topics.EVENTS)
    run(
        fast_produce(
            settings.bootstrap_servers,
            [(events, k, v) for k, v in ping_inputs(instances, instances)],
        )
    )
    directory.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(settings, directory / "data", directory / "worker.log", env).start()
    try:
        journal = settings.topic(topics.JOURNAL)
        seen = run(collect(settings.bootstrap_servers, [journal], instances, timeout_s))
        if len(seen) < instances:
            raise RuntimeError(f"recovery: {len(seen)} of {instances} instances started")
    finally:
        worker.stop()
    time.sleep(SESSION_S)


def snapshot_bytes(settings: Settings) -> dict:
    """The e2e run's snapshot changelog beside its journal, per applied event."""
    changelog = settings.changelog_topic(topics.SNAPSHOT_TABLE)
    records = run(collect(settings.bootstrap_servers, [changelog], 10**9, 5.0))
    return _bytes_per_event(settings, records)


def _bytes_per_event(settings: Settings, changelog: list[Seen]) -> dict:
    """Snapshot changelog bytes and journal bytes per applied event (a journal seq) of the
    e2e run: what the snapshot store costs beside the event store."""
    journal = run(collect(settings.bootstrap_servers, [settings.topic(topics.JOURNAL)], 10**9, 5.0))
    applied = {(r.key, decode_journal(r.value).seq) for r in journal}
    changelog_bytes = sum(len(r.value or b"") for r in changelog)
    journal_bytes = sum(len(r.value or b"") for r in journal)
    return {
        "changelog_bytes_per_event": changelog_bytes / len(applied),
        "journal_bytes_per_event": journal_bytes / len(journal),
        "changelog_vs_journal": (changelog_bytes / len(applied)) / (journal_bytes / len(journal)),
    }


def _time_to_ready(settings: Settings, directory: Path, env: dict, timeout_s: float) -> float:
    directory.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(settings, directory / "data", directory / "worker.log", env)
    began = time.monotonic()
    worker.start()
    try:
        wait_for_log(worker.log_path, READY, timeout_s)
        return time.monotonic() - began
    finally:
        worker.stop()
        time.sleep(SESSION_S)


def burst(bootstrap: str, workdir: Path, commands: int, watch_s: float) -> dict:
    """Back-pressure: a burst of commands far larger than memory should hold, for a handler
    that takes 50 ms, four at a time. The worker's resident memory is sampled before and
    during the burst; bounded buffers keep the peak near the idle figure."""
    settings = deployment(bootstrap, "bburst")
    env = {
        "OMNINODE_ROLES": "effects",
        "OMNINODE_WORKER_CONCURRENCY": "4",
        "OMNINODE_RSS_PATH": BENCH_RSS,
        "OMNINODE_HANDLERS": BENCH_HANDLERS,
    }
    worker = WorkerProcess(settings, workdir / "burst-data", workdir / "burst.log", env).start()
    try:
        worker.wait_ready(120)
        assert worker.process is not None
        pid = worker.process.pid
        idle_mb = _rss_mb(pid)
        topic = settings.topic(topics.DEFAULT_COMMANDS)
        filler = "x" * 1000  # about 1 KB of input per command
        records = [
            (
                topic,
                f"burst:i{n}".encode(),
                encode_command(
                    Command(
                        f"burst:i{n}:1:1",
                        "burst",
                        f"i{n}",
                        1,
                        "effect",
                        "bench_slow",
                        "await",
                        {"filler": filler},
                        RetryPolicy(),
                        None,
                    )
                ),
            )
            for n in range(commands)
        ]
        run(fast_produce(bootstrap, records))
        peak_mb = idle_mb
        deadline = time.monotonic() + watch_s
        while time.monotonic() < deadline:
            peak_mb = max(peak_mb, _rss_mb(pid))
            time.sleep(0.25)
        answered = run(collect(bootstrap, [settings.topic(topics.RESULTS)], commands, 3.0))
    finally:
        worker.stop()
    return {
        "burst_commands": commands,
        "burst_input_mb": round(commands * len(filler) / 1e6, 1),
        "burst_answered_while_watched": len(answered),
        "burst_rss_idle_mb": idle_mb,
        "burst_rss_peak_mb": peak_mb,
        "burst_rss_peak_vs_idle": peak_mb / idle_mb,
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
