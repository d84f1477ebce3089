"""The command runner without a broker: retries with back-off, timeouts, non-retryable errors, fire-and-forget, the processed-command table."""

from __future__ import annotations

import asyncio

from app.core.handlers import HandlerRegistry, NonRetryableError
from app.infra import topics
from app.infra.wire import (
    decode_dead_letter,
    decode_event,
    encode_command,
)
from app.infra.worker_agent import CommandRunner
from app.spi.envelopes import Command, Event, RetryPolicy
from tests.helpers import ListOutbox

SOURCE = ("omninode.events", 0, 7)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


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


def test_a_command_without_a_handler_is_left_unanswered_for_whoever_serves_it() -> None:
    """Another service may serve that name on the same queue: an answer of ours would beat
    it. Nothing is sent (no answer, no dead letter) and nothing is remembered."""
    runner, outbox, _ = runner_with(charge=lambda data, ctx: {})
    for _ in range(2):
        run(runner.handle(b"w:i", encode_command(command("nobody")), SOURCE))
    assert outbox.sent == []
    assert runner.stats.not_served == 2 and runner.stats.ran == 0
    assert dict(runner.processed) == {}


def test_a_command_of_a_kind_the_worker_does_not_run_is_left_unanswered() -> None:
    registry = HandlerRegistry()
    registry.register("effect", "charge", lambda data, ctx: {})
    outbox = ListOutbox()
    runner = CommandRunner(registry, outbox, kinds=frozenset({"compute"}))
    run(runner.handle(b"w:i", encode_command(command("charge")), SOURCE))
    assert outbox.sent == [] and runner.stats.not_served == 1


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
