"""Worker agents: run effect and compute commands with their handlers, answer with results.

One command is run at most ``retry.max_attempts`` times, each attempt bounded by its
``timeout_ms``, with the policy's back-off between attempts. An awaited dispatch answers
exactly one result event on the results topic (``<name>.done`` with the handler's return
value, ``<name>.failed`` with ``{error, attempts}``, or ``<name>.timeout`` with
``{attempts}``); its event id is derived from the command id, so a redelivered command's
answer is de-duplicated by the reducer. A fire-and-forget dispatch answers nothing; its
failure goes to dead letters with the original command bytes and its instance.

Every awaited dispatch gets its answer, and every answer is small:

- A handler's return value must be plain JSON (``app.spi.limits.json_problem``: no sets,
  datetimes, NaN or non-string keys) nested at most ``limits.json_depth`` deep, at most
  ``limits.result_bytes`` as canonical JSON. Any other value fails the dispatch at once
  (not retried: the handler would return it again) with ``handler result ...: <reason>``.
- A result event that still cannot be encoded, or is over ``limits.event_bytes``, is
  answered ``<name>.failed`` with the reason. Errors are cut to ``ERROR_CHARS``.

Sync handlers run in a thread pool of the runner's own, ``concurrency + max_hung`` threads.
Python cannot stop a thread: a sync handler that outlives its timeout keeps running, and
its thread, until it returns ("hung"). Since at most ``concurrency`` attempts run at once,
the pool always has a thread for a new attempt while fewer than ``max_hung`` threads are
hung; once ``max_hung`` are, a new sync attempt fails at once (retryable) instead of
waiting for a thread that may never come back. Async handlers are not affected.

A worker never answers a command it has no handler for (or of a kind its roles do not
run): another service may serve that name on the same queue, and an answer of ours would
beat it. It logs the command once per name and leaves it; if nobody serves it, the
reducer's deadline for the dispatch answers ``<name>.timeout`` (docs/handlers.md).

Copies of one command handled at the same time (a redelivery while the first copy still
runs) run its handler once: the first claims the command id, the others wait for its
answer and send the same bytes (each copy of an awaited command is answered).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.core.handlers import HandlerContext, HandlerFn, HandlerRegistry
from app.infra import log_context, topics, tracing
from app.infra.decoding import dead_letters_of, decoded
from app.infra.metrics import metrics
from app.infra.outbox import Outbox, Source, send_dead_letter
from app.infra.wire import (
    AvroDecodeError,
    decode_command,
    encode_event,
    utc_now,
)
from app.spi.envelopes import Command, DispatchKind, Event, JsonValue
from app.spi.limits import DEFAULT_LIMITS, Limits, canonical_json, json_problem

Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger("omninode")

# Sync handlers still running after their timeout that a runner tolerates before it refuses
# new sync attempts. Each holds a thread (and whatever it blocks on) until it returns, so
# this bounds the threads one runner can lose to hung handlers; 32 is Python's own cap on
# the default executor.
MAX_HUNG_SYNC_HANDLERS = 32
# The longest error a failed answer or a dead-letter reason carries (an exception's message
# can be arbitrarily long; the answer is stored and sent, so it must stay small).
ERROR_CHARS = 4096
# Names of unserved commands a runner warns about (once each): bounded, as the names come
# from the wire.
MAX_NAMES_SAID = 1_000
TRUNCATED = "... (truncated)"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: str  # done | failed | timeout
    payload: Mapping[str, JsonValue]
    attempts: int


@dataclass
class RunnerStats:
    ran: int = 0
    already_processed: int = 0  # answered from the processed table
    joined_in_flight: int = 0  # answered from a copy of the command that was running
    not_served: int = 0  # left unanswered: no handler here (or not a kind this worker runs)


class CommandRunner:
    """Runs each command once per idempotency key as far as this deployment can tell.

    ``processed`` (a table partitioned like the commands) maps a command id to its answer.
    The answer is stored before it is sent, so a command redelivered after a crash is
    answered again from the table instead of running its handler again; a copy that
    arrives while the command runs waits for that run's answer (``in_flight``). A crash
    *while* a handler runs does run it again, with the same idempotency key: handlers pass
    that key to the systems they call, which is how the effect itself happens once.

    ``concurrency`` is the number of commands the agent runs at once
    (``OMNINODE_WORKER_CONCURRENCY``); with ``max_hung`` it sizes the sync handlers' pool.
    """

    def __init__(
        self,
        handlers: HandlerRegistry,
        outbox: Outbox,
        processed: MutableMapping[bytes, bytes] | None = None,
        sleep: Sleep = asyncio.sleep,
        *,
        limits: Limits = DEFAULT_LIMITS,
        concurrency: int = 8,
        max_hung: int = MAX_HUNG_SYNC_HANDLERS,
        kinds: frozenset[DispatchKind] = frozenset({"effect", "compute"}),
    ) -> None:
        self.handlers = handlers
        self.kinds = kinds
        self._said_not_served: set[tuple[str, str, str]] = set()
        self.outbox = outbox
        self.processed: MutableMapping[bytes, bytes] = {} if processed is None else processed
        self.sleep = sleep
        self.limits = limits
        self.max_hung = max_hung
        self.stats = RunnerStats()
        self._in_flight: dict[bytes, asyncio.Future[bytes]] = {}
        self._threads = ThreadPoolExecutor(
            max_workers=max(1, concurrency) + max_hung, thread_name_prefix="omninode-handler"
        )
        self._hung = 0
        self._hung_lock = threading.Lock()

    @property
    def hung(self) -> int:
        """Sync handlers whose attempt timed out (or was cancelled) that still run."""
        return self._hung

    @property
    def in_flight(self) -> int:
        """Commands being run now (copies waiting for them not counted)."""
        return len(self._in_flight)

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        command = await decoded(
            decode_command, key, value, source, dead_letters_of(self.outbox), "command"
        )
        if command is None:
            return
        if not self.serves(command):
            self._not_served(command)
            return
        tracing.annotate(
            **{"omninode.instance": command.key, "omninode.command": command.command_id}
        )
        log_context.correlate(command.command_id)
        idempotency_key = command.command_id.encode()
        while True:
            answer = self.processed.get(idempotency_key)
            if answer is not None:
                self.stats.already_processed += 1
                break
            running = self._in_flight.get(idempotency_key)
            if running is None:
                await self._run_and_answer(command, idempotency_key, key, value, source)
                return
            await asyncio.wait([running])  # never cancels the run it waits for
            if not running.cancelled():  # else that run stopped unanswered: look again
                self.stats.joined_in_flight += 1
                answer = running.result()
                break
        if answer:
            await self.outbox.send(topics.RESULTS, key, answer)

    async def _run_and_answer(
        self,
        command: Command,
        idempotency_key: bytes,
        key: bytes | None,
        value: bytes | None,
        source: Source,
    ) -> None:
        claim: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._in_flight[idempotency_key] = claim
        try:
            started = time.perf_counter()
            outcome = await self.run(command)
            elapsed = time.perf_counter() - started
            metrics().handler_seconds.labels(command.name, outcome.result).observe(elapsed)
            self.stats.ran += 1
            answer = self.answer(command, outcome) if command.mode == "await" else b""
            self.processed[idempotency_key] = answer
            claim.set_result(answer)
        finally:
            del self._in_flight[idempotency_key]
            if not claim.done():
                claim.cancel()  # copies waiting for this run look again, and may run it
        if answer:
            await self.outbox.send(topics.RESULTS, key, answer)
        elif outcome.result != "done":
            reason = f"{command.kind} {command.name} {outcome.result}: {outcome.payload}"
            await send_dead_letter(
                self.outbox,
                reason,
                "handler",
                source,
                key,
                value,
                workflow_type=command.workflow_type,
                instance_id=command.instance_id,
            )

    def serves(self, command: Command) -> bool:
        return (
            command.kind in self.kinds and self.handlers.get(command.kind, command.name) is not None
        )

    def _not_served(self, command: Command) -> None:
        self.stats.not_served += 1
        what = (command.queue, command.kind, command.name)
        if what not in self._said_not_served and len(self._said_not_served) < MAX_NAMES_SAID:
            self._said_not_served.add(what)
            log.warning(
                "omninode: left %s %r on queue %r unanswered: no handler here (%s, first "
                "seen); if nobody serves it, its dispatch times out at its deadline",
                command.kind,
                command.name,
                command.queue,
                command.key,
            )

    def answer(self, command: Command, outcome: Outcome) -> bytes:
        """The encoded result event; ``<name>.failed`` with the reason if it cannot be sent."""
        try:
            answer = encode_event(result_event(command, outcome))
        except (AvroDecodeError, ValueError, TypeError) as exc:
            reason = f"handler result cannot be sent: {exc}"
        else:
            if len(answer) <= self.limits.event_bytes:
                return answer
            reason = (
                f"handler result cannot be sent: the result event is {len(answer)} bytes, "
                f"over the limit of {self.limits.event_bytes} (OMNINODE_MAX_EVENT_BYTES)"
            )
        failed = _failed(reason, outcome.attempts)
        return encode_event(result_event(command, failed))

    async def run(self, command: Command) -> Outcome:
        handler = self.handlers.get(command.kind, command.name)
        if handler is None:  # handle() runs only the commands this runner serves
            raise LookupError(f"no {command.kind} handler for {command.name!r}")
        policy = command.retry
        last = _failed("not run", 0)
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
        if not inspect.iscoroutinefunction(handler) and self._hung >= self.max_hung:
            error = (
                f"{self._hung} sync handlers still running after their timeout; a sync "
                "handler keeps its thread until it returns (give its blocking calls their "
                "own timeouts, or write it async)"
            )
            return _failed(error, attempt), True
        timeout = command.timeout_ms / 1000 if command.timeout_ms else None
        try:
            value = await asyncio.wait_for(self._call(handler, command.input, context), timeout)
        except TimeoutError:
            return Outcome("timeout", {"attempts": attempt}, attempt), True
        except Exception as exc:  # a handler's failure is data: it becomes <name>.failed
            error = f"{type(exc).__name__}: {exc}"
            retryable = not getattr(exc, "non_retryable", False)
            return _failed(error, attempt), retryable
        payload = dict(value) if isinstance(value, Mapping) else {"result": value}
        problem = result_problem(payload, self.limits)
        if problem is not None:
            return _failed(problem, attempt), False  # the handler would return it again
        return Outcome("done", payload, attempt), False

    async def _call(
        self, handler: HandlerFn, data: Mapping[str, Any], context: HandlerContext
    ) -> Any:
        if inspect.iscoroutinefunction(handler):
            return await handler(data, context)
        job = self._threads.submit(contextvars.copy_context().run, handler, data, context)
        try:
            result = await asyncio.wrap_future(job)
        except asyncio.CancelledError:  # timed out (or the agent stopped)
            if not job.cancel():  # it is running: no way to stop it
                self._track_hung(job, context)
            raise
        if inspect.isawaitable(result):
            return await result
        return result

    def _track_hung(self, job: Future[Any], context: HandlerContext) -> None:
        with self._hung_lock:
            self._hung += 1
            hung = self._hung
        job.add_done_callback(self._untrack_hung)  # runs at once if it has just returned
        if not job.done():
            log.warning(
                "omninode: sync %s handler %r (%s) still running after its timeout; "
                "%d of at most %d hung",
                context.kind,
                context.name,
                context.idempotency_key,
                hung,
                self.max_hung,
            )

    def _untrack_hung(self, _job: Future[Any]) -> None:
        with self._hung_lock:
            self._hung -= 1


def result_problem(payload: Mapping[str, Any], limits: Limits) -> str | None:
    """Why a handler's result cannot be the payload of ``<name>.done`` (None: it can)."""
    problem = json_problem(payload, limits.json_depth)
    if problem is not None:
        return f"handler result is not plain JSON: {problem}"
    try:
        size = len(canonical_json(payload))  # ASCII: characters are bytes
    except (TypeError, ValueError, RecursionError) as exc:
        return f"handler result is not plain JSON: {exc}"
    if size > limits.result_bytes:
        return (
            f"handler result too large: {size} bytes of JSON, over the limit of "
            f"{limits.result_bytes} (OMNINODE_MAX_RESULT_BYTES)"
        )
    return None


def _failed(error: str, attempts: int) -> Outcome:
    if len(error) > ERROR_CHARS:
        error = error[: ERROR_CHARS - len(TRUNCATED)] + TRUNCATED
    return Outcome("failed", {"error": error, "attempts": attempts}, attempts)


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
