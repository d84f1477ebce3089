"""Helpers shared by the Kafka benchmarks: fast producing, collecting outputs, processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # the producer's CreateTime
    received_ms: float  # when this benchmark's consumer got it


async def fast_produce(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    """Send records without waiting for each (inputs only: batches of many records)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def collect(bootstrap: str, topics: list[str], count: int, timeout_s: float) -> list[Seen]:
    """Read the topics from the beginning until ``count`` records arrived (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    await _wait_for_topics(bootstrap, topics, deadline)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=25
    )
    await consumer.start()
    seen: list[Seen] = []
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while len(seen) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            now_ms = time.time() * 1000
            for messages in batch.values():
                seen += [Seen(m.topic, m.key, m.value, m.timestamp, now_ms) for m in messages]
    finally:
        await consumer.stop()
    return seen


async def _wait_for_topics(bootstrap: str, topics: list[str], deadline: float) -> None:
    """Until the topics exist (the app under test may create them as it starts)."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await probe.start()
    try:
        while not set(topics) <= await probe.topics() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await probe.stop()


def rate(seen: list[Seen]) -> float:
    """Records per second from the first output being produced to the last one being
    readable (a producer's CreateTime alone would count sends still in its buffer)."""
    if len(seen) < 2:
        return float("nan")
    span_s = (max(s.received_ms for s in seen) - min(s.timestamp_ms for s in seen)) / 1000
    return (len(seen) - 1) / span_s if span_s > 0 else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=ROOT,
            start_new_session=True,
        )


def faust_worker(app_module: str, datadir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "faust",
        "-A",
        app_module,
        "--datadir",
        str(datadir),
        "worker",
        "--without-web",
        "--loglevel",
        "info",
    ]


def wait_for_log(log: Path, text: str, timeout_s: float) -> float:
    """Seconds until ``text`` appears in ``log``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if log.exists() and text.encode() in log.read_bytes():
            return time.monotonic() - began
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not in {log} after {timeout_s:.0f}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)
