"""Worker agents: run effect and compute commands with their handlers, answer with results.

One command is run at most ``retry.max_attempts`` times, each attempt bounded by its
``timeout_ms``, with the policy's back-off between attempts. An awaited dispatch answers
exactly one result event on the results topic (``<name>.done`` with the handler's return
value, ``<name>.failed`` with ``{error, attempts}``, or ``<name>.timeout`` with
``{attempts}``); its event id is derived from the command id, so a redelivered command's
answer is de-duplicated by the reducer. A fire-and-forget dispatch answers nothing; its
failure goes to dead letters with the original command bytes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from app.core.handlers import HandlerContext, HandlerFn, HandlerRegistry
from app.infra import settings as topics
from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import (
    AvroDecodeError,
    decode_command,
    encode_event,
    utc_now,
)
from app.spi.envelopes import Command, Event, JsonValue

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    result: str  # done | failed | timeout
    payload: Mapping[str, JsonValue]
    attempts: int


@dataclass
class RunnerStats:
    ran: int = 0
    already_processed: int = 0


class CommandRunner:
    """Runs each command once per idempotency key as far as this deployment can tell.

    ``processed`` (a table partitioned like the commands) maps a command id to its answer.
    The answer is stored before it is sent, so a command redelivered after a crash is
    answered again from the table instead of running its handler again. A crash *while* a
    handler runs does run it again, with the same idempotency key: handlers pass that key
    to the systems they call, which is how the effect itself happens once.
    """

    def __init__(
        self,
        handlers: HandlerRegistry,
        outbox: Outbox,
        processed: MutableMapping[bytes, bytes] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.handlers = handlers
        self.outbox = outbox
        self.processed: MutableMapping[bytes, bytes] = {} if processed is None else processed
        self.sleep = sleep
        self.stats = RunnerStats()

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        try:
            command = decode_command(value)
        except (AvroDecodeError, KeyError, TypeError) as exc:
            reason = f"undecodable command: {exc}"
            await send_dead_letter(self.outbox, reason, "decode", source, key, value)
            return
        idempotency_key = command.command_id.encode()
        answer = self.processed.get(idempotency_key)
        if answer is not None:
            self.stats.already_processed += 1
            if answer:
                await self.outbox.send(topics.RESULTS, key, answer)
            return
        outcome = await self.run(command)
        self.stats.ran += 1
        if command.mode == "await":
            answer = encode_event(result_event(command, outcome))
            self.processed[idempotency_key] = answer
            await self.outbox.send(topics.RESULTS, key, answer)
            return
        self.processed[idempotency_key] = b""
        if outcome.result != "done":
            reason = f"{command.kind} {command.name} {outcome.result}: {outcome.payload}"
            await send_dead_letter(self.outbox, reason, "handler", source, key, value)

    async def run(self, command: Command) -> Outcome:
        handler = self.handlers.get(command.kind, command.name)
        if handler is None:
            error = f"no {command.kind} handler registered for {command.name!r}"
            return Outcome("failed", {"error": error, "attempts": 0}, 0)
        policy = command.retry
        last = Outcome("failed", {"error": "not run", "attempts": 0}, 0)
        for attempt in range(1, max(1, policy.max_attempts) + 1):
            delay_ms = policy.delay_before_attempt_ms(attempt)
            if delay_ms:
                await self.sleep(delay_ms / 1000)
            last, retryable = await self._attempt(handler, command, attempt)
            if last.result == "done" or not retryable:
                return last
        return last

    async def _attempt(
        self, handler: HandlerFn, command: Command, attempt: int
    ) -> tuple[Outcome, bool]:
        context = HandlerContext(
            idempotency_key=command.command_id,
            workflow_type=command.workflow_type,
            instance_id=command.instance_id,
            name=command.name,
            kind=command.kind,
            attempt=attempt,
            max_attempts=command.retry.max_attempts,
        )
        timeout = command.timeout_ms / 1000 if command.timeout_ms else None
        try:
            value = await asyncio.wait_for(_call(handler, command.input, context), timeout)
        except TimeoutError:
            return Outcome("timeout", {"attempts": attempt}, attempt), True
        except Exception as exc:  # a handler's failure is data: it becomes <name>.failed
            error = f"{type(exc).__name__}: {exc}"
            retryable = not getattr(exc, "non_retryable", False)
            return Outcome("failed", {"error": error, "attempts": attempt}, attempt), retryable
        payload = value if isinstance(value, Mapping) else {"result": value}
        return Outcome("done", payload, attempt), False


async def _call(handler: HandlerFn, data: Mapping[str, Any], context: HandlerContext) -> Any:
    if inspect.iscoroutinefunction(handler):
        return await handler(data, context)
    result = await asyncio.to_thread(handler, data, context)
    if inspect.isawaitable(result):
        return await result
    return result


def result_event(command: Command, outcome: Outcome) -> Event:
    """The answer to an awaited dispatch; its id is stable across redeliveries."""
    return Event(
        workflow_type=command.workflow_type,
        instance_id=command.instance_id,
        type=f"{command.name}.{outcome.result}",
        event_id=f"{command.command_id}.{outcome.result}",
        occurred_at=utc_now(),
        payload=dict(outcome.payload),
        dispatch_id=command.command_id,
        causation_id=command.command_id,
    )
