"""Run a coroutine at once, and give it a task only if it has to wait.

Faust's consumer hands every fetched record to the conductor with
``wait_first(callback(record), suspend_flow.wait())``: four tasks and an
``asyncio.wait`` per record (about 100 µs here) so that a rebalance can cut off a
callback that waits. Almost every callback never waits: the flow is on, the stream's
queue has room. :func:`started` runs the coroutine up to its first real wait, in the
caller's step; only a coroutine that did not finish becomes a task, which the caller then
races as Faust does. Python 3.12's eager tasks do the same; the project runs on 3.11.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


def started(awaitable: Awaitable[Any]) -> asyncio.Future[Any] | None:
    """``None`` if the coroutine finished without waiting (its result is dropped, an
    exception it raised propagates); otherwise a task running the rest of it."""
    if not isinstance(awaitable, Coroutine):
        return asyncio.ensure_future(awaitable)
    coro = awaitable
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_Resumed(coro, waiting_on))


class _Resumed:
    """The rest of a started coroutine, as an awaitable a task can run: ``yield from``
    for a coroutine that has already yielded once (PEP 380's delegation, by hand), so
    the task waits on what the coroutine waits on, and a cancellation reaches it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # a cancellation, or close(): the coroutine gets it
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value
