"""eager.started: a coroutine that does not wait runs to the end in the caller's step; one
that waits continues in a task, which waits on what it waits on and can be cancelled."""

from __future__ import annotations

import asyncio

import pytest

from app.infra import eager


def test_a_coroutine_that_does_not_wait_runs_at_once() -> None:
    done: list[str] = []

    async def decode() -> str:
        return "value"  # awaited, but never suspends (like the conductor's raw decode)

    async def no_wait() -> None:
        done.append(await decode())

    async def main() -> None:
        assert eager.started(no_wait()) is None
        assert done == ["value"]  # before any pass through the event loop

    asyncio.run(main())


def test_an_error_raised_before_any_wait_reaches_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("bad record")

    async def main() -> None:
        with pytest.raises(ValueError, match="bad record"):
            eager.started(fails())

    asyncio.run(main())


def test_a_coroutine_that_waits_continues_in_a_task_with_its_result() -> None:
    steps: list[str] = []

    async def waits(gate: asyncio.Event) -> str:
        steps.append("before")
        await gate.wait()
        steps.append("after")
        await asyncio.sleep(0)  # a bare yield too
        return "result"

    async def main() -> None:
        gate = asyncio.Event()
        rest = eager.started(waits(gate))
        assert rest is not None and steps == ["before"]
        await asyncio.sleep(0.01)
        assert not rest.done()  # still waiting on the gate
        gate.set()
        assert await rest == "result" and steps == ["before", "after"]

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    seen: list[str] = []

    async def waits(gate: asyncio.Event) -> None:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    async def main() -> None:
        rest = eager.started(waits(asyncio.Event()))
        assert rest is not None
        await asyncio.sleep(0)
        rest.cancel()
        with pytest.raises(asyncio.CancelledError):
            await rest
        assert seen == ["cancelled", "finally"]

    asyncio.run(main())


def test_an_error_after_a_wait_is_the_tasks_error() -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0.001)
        raise KeyError("late")

    async def main() -> None:
        rest = eager.started(fails_later())
        assert rest is not None
        with pytest.raises(KeyError):
            await rest

    asyncio.run(main())


def test_closing_the_rest_closes_the_coroutine() -> None:
    closed: list[str] = []

    async def waits(gate: asyncio.Event) -> None:
        try:
            await gate.wait()
        finally:
            closed.append("closed")

    async def main() -> None:
        coro = waits(asyncio.Event())
        first = coro.send(None)  # started by hand, as eager.started does
        rest = eager._Resumed(coro, first).__await__()
        next(rest)  # waiting on the same future
        rest.close()
        first.cancel()

    asyncio.run(main())
    assert closed == ["closed"]
