"""The reducer's step outbox tells the store when the broker has acknowledged every record
of an output (so the output need not be kept for a re-send), and never before."""

from __future__ import annotations

import asyncio

from app.infra.outbox import KafkaStepOutbox
from app.spi.ports import StepOutput

OUTPUT = StepOutput(
    "e1",
    "omninode.events",
    0,
    7,
    (("journal", b"j"), ("commands", b"c")),
    (("events", "w:c", b"s"),),
)


class FutureOutbox:
    """Returns a future per send, resolved by the test like a producer's acknowledgement."""

    def __init__(self, futures: bool = True) -> None:
        self.futures: list[asyncio.Future[object]] = []
        self.give_futures = futures

    async def send(self, topic: str, key: bytes | None, value: bytes) -> object:
        if not self.give_futures:
            return None
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


def run_with(resolve, futures: bool = True) -> list[StepOutput]:  # type: ignore[no-untyped-def]
    delivered: list[StepOutput] = []

    async def scenario() -> None:
        outbox = FutureOutbox(futures)
        step = KafkaStepOutbox(outbox, delivered=delivered.append)
        await step.send_output("w:i", OUTPUT)
        resolve(outbox.futures)
        await asyncio.sleep(0)  # the futures' callbacks run

    asyncio.run(scenario())
    return delivered


def test_delivered_once_every_record_is_acknowledged() -> None:
    def all_ok(futures: list[asyncio.Future[object]]) -> None:
        assert len(futures) == 3  # journal, command, routed start
        for future in futures:
            future.set_result("metadata")

    assert run_with(all_ok) == [OUTPUT]


def test_not_delivered_while_a_record_is_unacknowledged_or_failed() -> None:
    def two_of_three(futures: list[asyncio.Future[object]]) -> None:
        futures[0].set_result("m")
        futures[2].set_result("m")

    def one_failed(futures: list[asyncio.Future[object]]) -> None:
        futures[0].set_exception(OSError("broker down"))
        futures[1].set_result("m")
        futures[2].set_result("m")

    assert run_with(two_of_three) == []
    assert run_with(one_failed) == []
    assert run_with(lambda futures: None, futures=False) == []  # no futures: commits decide
