"""The worker's limits without a broker: what a handler returns, hung sync handlers, copies of
one command in flight, and the instance on its dead letters. (In-memory outbox, dict tables.)"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from app.core.handlers import HandlerRegistry, NonRetryableError
from app.infra import topics, worker_agent
from app.infra.avro import AvroDecodeError
from app.infra.wire import dead_letter, decode_dead_letter, decode_event, encode_command
from app.infra.worker_agent import CommandRunner
from app.spi.envelopes import Command, DispatchMode, Event, RetryPolicy
from app.spi.limits import DEFAULT_LIMITS, Limits
from tests.helpers import ListOutbox

SOURCE = ("omninode.commands.default", 3, 41)
MB = 1024 * 1024


def command(
    name: str,
    *,
    seq: int = 1,
    mode: DispatchMode = "await",
    attempts: int = 3,
    timeout_ms: int | None = None,
) -> Command:
    return Command(
        f"w:i:{seq}:{name}",
        "w",
        "i",
        seq,
        "effect",
        name,
        mode,
        {"x": 1},
        RetryPolicy(attempts, "fixed", 10, 10),
        timeout_ms,
    )


class Worker:
    """A CommandRunner with an in-memory outbox, a dict as its processed table, no sleeps."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, **options: Any) -> None:
        self.registry = HandlerRegistry()
        self.outbox = ListOutbox()
        self.processed: dict[bytes, bytes] = {}
        self.slept: list[float] = []
        self.runner = CommandRunner(
            self.registry, self.outbox, self.processed, self._sleep, limits=limits, **options
        )

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def add(self, name: str, fn: Any) -> None:
        self.registry.register("effect", name, fn)

    async def handle(self, cmd: Command) -> None:
        await self.runner.handle(b"w:i", encode_command(cmd), SOURCE)

    def answers(self) -> list[Event]:
        return [decode_event(value) for value in self.outbox.on(topics.RESULTS)]

    def answer(self) -> Event:
        (only,) = self.answers()
        return only

    def letters(self) -> list[dict[str, Any]]:
        return [decode_dead_letter(value) for value in self.outbox.on(topics.DEAD_LETTERS)]


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# --- 1. a result that cannot be sent still answers ------------------------------------------

BAD_RESULTS = {
    "a set": ({"ids": {1, 2}}, "ids is a set, not a JSON value"),
    "a datetime": ({"at": datetime(2026, 1, 1, tzinfo=UTC)}, "at is a datetime"),
    "NaN": ({"score": math.nan}, "score is nan, not a JSON number"),
    "an int key": ({1: "one"}, "has a int key; JSON keys are strings"),
    "a bare set": ({3}, "result is a set"),
    "too deep": ({"tree": nested(DEFAULT_LIMITS.json_depth + 5)}, "nested deeper than 32"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_a_result_that_is_not_plain_json_answers_failed_at_once(case: str) -> None:
    value, reason = BAD_RESULTS[case]
    calls = []

    def bad(data: Any, ctx: Any) -> Any:
        calls.append(ctx.attempt)
        return value

    worker = Worker()
    worker.add("bad", bad)
    asyncio.run(worker.handle(command("bad", attempts=3)))
    result = worker.answer()
    assert result.type == "bad.failed" and result.event_id == "w:i:1:bad.failed"
    assert result.payload["attempts"] == 1 and calls == [1]  # not retried
    error = result.payload["error"]
    assert isinstance(error, str) and error.startswith("handler result is not plain JSON: ")
    assert reason in error
    assert worker.letters() == []
    assert worker.processed[b"w:i:1:bad"] == worker.outbox.on(topics.RESULTS)[0]


def test_a_ten_megabyte_result_answers_failed_with_a_small_answer() -> None:
    worker = Worker()
    worker.add("huge", lambda data, ctx: {"blob": "x" * (10 * MB)})
    asyncio.run(worker.handle(command("huge")))
    result = worker.answer()
    assert result.type == "huge.failed"
    size = 10 * MB + len('{"blob":""}')
    assert dict(result.payload) == {
        "error": f"handler result too large: {size} bytes of JSON, "
        "over the limit of 131072 (OMNINODE_MAX_RESULT_BYTES)",
        "attempts": 1,
    }
    (stored,) = worker.processed.values()
    assert len(stored) < 1024 and worker.outbox.on(topics.RESULTS) == [stored]


def test_a_result_at_the_size_limit_is_done() -> None:
    limits = Limits(result_bytes=1000)
    worker = Worker(limits)
    blob = "x" * (1000 - len('{"blob":""}'))
    worker.add("fits", lambda data, ctx: {"blob": blob})
    worker.add("over", lambda data, ctx: {"blob": blob + "x"})
    asyncio.run(worker.handle(command("fits")))
    asyncio.run(worker.handle(command("over", seq=2)))
    fits, over = worker.answers()
    assert (fits.type, fits.payload["blob"]) == ("fits.done", blob)
    assert over.type == "over.failed" and "1001 bytes of JSON" in str(over.payload["error"])


def test_a_result_event_that_cannot_be_encoded_answers_failed_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = worker_agent.encode_event

    def encode_once_broken(event: Event) -> bytes:
        if event.type.endswith(".done"):
            raise AvroDecodeError("cannot encode omninode.Event: boom")
        return real(event)

    monkeypatch.setattr(worker_agent, "encode_event", encode_once_broken)
    worker = Worker()
    worker.add("ok", lambda data, ctx: {"fine": True})
    asyncio.run(worker.handle(command("ok")))
    result = worker.answer()
    assert (result.type, result.event_id) == ("ok.failed", "w:i:1:ok.failed")
    assert dict(result.payload) == {
        "error": "handler result cannot be sent: cannot encode omninode.Event: boom",
        "attempts": 1,
    }


def test_an_answer_over_the_event_limit_answers_failed() -> None:
    # A deployment whose result limit is above its event limit still never sends a record
    # the reducer would refuse.
    worker = Worker(Limits(result_bytes=4 * MB, event_bytes=64 * 1024))
    worker.add("big", lambda data, ctx: {"blob": "x" * (100 * 1024)})
    asyncio.run(worker.handle(command("big")))
    result = worker.answer()
    assert result.type == "big.failed"
    error = str(result.payload["error"])
    assert error.startswith("handler result cannot be sent: the result event is ")
    assert "over the limit of 65536 (OMNINODE_MAX_EVENT_BYTES)" in error


def test_a_huge_error_message_is_truncated_in_the_failed_answer() -> None:
    def broken(data: Any, ctx: Any) -> Any:
        raise NonRetryableError("e" * MB)

    worker = Worker()
    worker.add("broken", broken)
    asyncio.run(worker.handle(command("broken")))
    error = str(worker.answer().payload["error"])
    assert error.startswith("NonRetryableError: eee") and error.endswith("(truncated)")
    assert len(error) <= worker_agent.ERROR_CHARS
    (stored,) = worker.processed.values()
    assert len(stored) < 8 * 1024


def test_a_fire_and_forget_bad_result_goes_to_dead_letters_with_its_instance() -> None:
    worker = Worker()
    worker.add("notify", lambda data, ctx: {"sent_at": datetime(2026, 1, 1, tzinfo=UTC)})
    original = encode_command(command("notify", mode="fire_and_forget"))
    asyncio.run(worker.runner.handle(b"w:i", original, SOURCE))
    assert worker.outbox.on(topics.RESULTS) == []
    (letter,) = worker.letters()
    assert letter["stage"] == "handler" and letter["value"] == original
    assert (letter["workflow_type"], letter["instance_id"]) == ("w", "i")
    assert "handler result is not plain JSON: sent_at is a datetime" in letter["reason"]
    assert worker.processed == {b"w:i:1:notify": b""}


# --- 2. hung sync handlers ------------------------------------------------------------------


def test_hung_sync_handlers_do_not_delay_a_fast_one() -> None:
    release = threading.Event()

    def hang(data: Any, ctx: Any) -> Any:
        release.wait(30)
        return {"late": True}

    worker = Worker()
    worker.add("hang", hang)
    worker.add("fast", lambda data, ctx: {"ok": True})

    async def scenario() -> float:
        hung = [command("hang", seq=n, attempts=1, timeout_ms=200) for n in range(1, 8)]
        await asyncio.gather(*(worker.handle(c) for c in hung))
        assert worker.runner.hung == 7
        started = time.perf_counter()
        await worker.handle(command("fast", seq=99, attempts=1, timeout_ms=200))
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(scenario())
    finally:
        release.set()
    print(f"fast sync handler after 7 hung ones: answered in {elapsed * 1000:.1f} ms")
    answers = {event.type for event in worker.answers()}
    assert answers == {"hang.timeout", "fast.done"}
    assert elapsed < 0.2  # within its own timeout (starved, it would answer fast.timeout)
    _wait_until(lambda: worker.runner.hung == 0)  # released threads are no longer hung


def test_when_max_hung_sync_handlers_still_run_a_new_sync_attempt_fails_at_once() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hang(data: Any, ctx: Any) -> Any:
        calls.append(ctx.idempotency_key)
        release.wait(30)

    async def quick(data: Any, ctx: Any) -> Any:
        return {"async": "still runs"}

    worker = Worker(max_hung=2, concurrency=1)
    worker.add("hang", hang)
    worker.add("quick", quick)

    async def scenario() -> None:
        await asyncio.gather(
            *(worker.handle(command("hang", seq=n, attempts=1, timeout_ms=50)) for n in (1, 2))
        )
        started = time.perf_counter()
        await worker.handle(command("hang", seq=3, attempts=2, timeout_ms=50))
        assert time.perf_counter() - started < 0.5  # refused; queued, it would time out
        await worker.handle(command("quick", seq=4, timeout_ms=50))

    try:
        asyncio.run(scenario())
    finally:
        release.set()
    first, second, refused, quick_answer = worker.answers()
    assert (first.type, second.type) == ("hang.timeout", "hang.timeout")
    assert refused.type == "hang.failed" and refused.payload["attempts"] == 2
    assert str(refused.payload["error"]).startswith(
        "2 sync handlers still running after their timeout; "
    )
    assert worker.slept == [0.01]  # retryable: the policy's back-off, then the second attempt
    assert calls == ["w:i:1:hang", "w:i:2:hang"]
    assert quick_answer.type == "quick.done"
    _wait_until(lambda: worker.runner.hung == 0)


def test_a_sync_handler_that_returns_in_time_is_not_counted_as_hung() -> None:
    worker = Worker()
    worker.add("sync", lambda data, ctx: {"n": data["x"]})
    asyncio.run(worker.handle(command("sync", timeout_ms=1000)))
    assert worker.answer().type == "sync.done" and worker.runner.hung == 0


def _wait_until(condition: Any, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- 3. copies of one command in flight -----------------------------------------------------


def _counting_handler(calls: list[str], result: Any = None) -> Any:
    async def charge(data: Any, ctx: Any) -> Any:
        calls.append(ctx.idempotency_key)
        await asyncio.sleep(0.05)
        if result is not None:
            raise result
        return {"charge_id": "ch_1"}

    return charge


def test_copies_of_an_awaited_command_delivered_together_run_the_handler_once() -> None:
    calls: list[str] = []
    worker = Worker()
    worker.add("charge", _counting_handler(calls))

    async def scenario() -> None:
        cmd = command("charge")
        await asyncio.gather(worker.handle(cmd), worker.handle(cmd), worker.handle(cmd))

    asyncio.run(scenario())
    assert calls == ["w:i:1:charge"]
    first, second, third = worker.outbox.on(topics.RESULTS)  # every copy is answered ...
    assert first == second == third  # ... with the first run's answer, byte for byte
    assert worker.processed == {b"w:i:1:charge": first}
    assert decode_event(first).type == "charge.done"
    stats = worker.runner.stats
    assert (stats.ran, stats.joined_in_flight, stats.already_processed) == (1, 2, 0)
    assert worker.runner.in_flight == 0


def test_copies_of_a_fire_and_forget_command_delivered_together_run_the_handler_once() -> None:
    calls: list[str] = []
    worker = Worker()
    worker.add("notify", _counting_handler(calls, NonRetryableError("smtp refused")))

    async def scenario() -> None:
        cmd = command("notify", mode="fire_and_forget")
        await asyncio.gather(worker.handle(cmd), worker.handle(cmd), worker.handle(cmd))

    asyncio.run(scenario())
    assert calls == ["w:i:1:notify"]
    assert worker.outbox.on(topics.RESULTS) == []
    (letter,) = worker.letters()  # the failure is dead-lettered once, by the run
    assert "smtp refused" in letter["reason"]
    assert worker.processed == {b"w:i:1:notify": b""}
    assert worker.runner.in_flight == 0


def test_a_copy_runs_the_command_itself_when_the_first_run_is_cancelled() -> None:
    calls: list[str] = []
    worker = Worker()
    worker.add("charge", _counting_handler(calls))

    async def scenario() -> None:
        cmd = command("charge")
        first = asyncio.create_task(worker.handle(cmd))
        await asyncio.sleep(0.01)
        copy = asyncio.create_task(worker.handle(cmd))
        await asyncio.sleep(0.01)
        first.cancel()  # e.g. the partition was revoked while the handler ran
        await copy
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(scenario())
    assert calls == ["w:i:1:charge", "w:i:1:charge"]
    assert [event.type for event in worker.answers()] == ["charge.done"]
    assert worker.runner.in_flight == 0


# --- 4. dead letters carry the instance -----------------------------------------------------


def test_a_dead_letter_without_an_event_can_carry_the_instance() -> None:
    letter = decode_dead_letter(
        dead_letter("why", "handler", SOURCE, b"k", b"v", workflow_type="w", instance_id="i")
    )
    assert (letter["workflow_type"], letter["instance_id"], letter["event_type"]) == (
        "w",
        "i",
        None,
    )
    plain = decode_dead_letter(dead_letter("why", "decode", SOURCE, b"k", b"v"))
    assert (plain["workflow_type"], plain["instance_id"]) == (None, None)


def test_a_fire_and_forget_failure_dead_letter_carries_the_commands_instance() -> None:
    async def broken(data: Any, ctx: Any) -> Any:
        raise NonRetryableError("smtp refused")

    worker = Worker()
    worker.add("broken", broken)
    asyncio.run(worker.handle(command("broken", mode="fire_and_forget")))
    (letter,) = worker.letters()
    assert (letter["workflow_type"], letter["instance_id"]) == ("w", "i")
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == SOURCE
