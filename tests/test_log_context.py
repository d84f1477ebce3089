"""Log lines name the instance key and the correlation id of the record being handled."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.core.router import ChartRegistry
from app.infra import log_context
from app.infra.instance_store import TableInstanceStore
from app.infra.outbox import KafkaStepOutbox
from app.infra.reducer_agent import Reducer
from app.infra.wire import encode_event
from app.spi.envelopes import Event
from tests.helpers import ListOutbox, chart


def test_records_logged_while_handling_carry_key_and_correlation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_context.install()
    log_context.install()  # once: the factory is not wrapped twice
    log = logging.getLogger("omninode.test")
    with caplog.at_level(logging.INFO), log_context.handling(b"w:i-1"):
        log.info("before the step")
        log_context.correlate("web-42")
        log.info("100%% of %s", "it")  # %-formatting still works around the suffix
        logging.getLogger("some.library").info("a handler's own log")
    with caplog.at_level(logging.INFO):
        log.info("outside")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "before the step [key=w:i-1 correlation=None]",
        "100% of it [key=w:i-1 correlation=web-42]",
        "a handler's own log [key=w:i-1 correlation=web-42]",
        "outside",
    ]
    assert caplog.records[1].omninode_key == "w:i-1"  # type: ignore[attr-defined]
    assert caplog.records[1].correlation_id == "web-42"  # type: ignore[attr-defined]


def test_the_reducer_sets_the_events_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    log_context.install()
    flow = chart("rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates: {a: {}}\n")
    reducer = Reducer(
        ChartRegistry([flow]), TableInstanceStore({}, {}), KafkaStepOutbox(ListOutbox())
    )
    event = Event("w", "i", "$start", "e1", "2026-01-01T00:00:00Z", correlation_id="order-9")
    seen: list[str | None] = []

    async def handle() -> None:
        with log_context.handling(b"w:i"):
            await reducer.handle(b"w:i", encode_event(event), ("omninode.events", 0, 1))
            seen.append(log_context._correlation.get())

    asyncio.run(handle())
    assert seen == ["order-9"]
    assert log_context._correlation.get() is None  # reset when the record is done


def test_a_long_or_odd_key_is_cut_and_decoded_safely(caplog: pytest.LogCaptureFixture) -> None:
    log_context.install()
    with caplog.at_level(logging.INFO), log_context.handling(b"\xff" + b"k" * 500):
        logging.getLogger("omninode").info("x")
    message = caplog.records[0].getMessage()
    assert message.startswith("x [key=\ufffdkkk") and len(message) < 260
