"""OpenTelemetry spans with the trace context in Kafka headers: event → step → command →
handler → result → next step is one trace (SDK in-memory exporter, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.core.handlers import HandlerRegistry
from app.core.router import ChartRegistry
from app.infra import topics, tracing
from app.infra.instance_store import TableInstanceStore
from app.infra.outbox import KafkaStepOutbox
from app.infra.reducer_agent import Reducer
from app.infra.wire import encode_event
from app.infra.worker_agent import CommandRunner
from app.spi.envelopes import Event
from tests.helpers import chart

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

SHIP = chart("""
    rss: 1
    workflow: w
    version: 1
    initial: a
    states:
      a: {on: {GO: {target: b, effects: [{name: ship}]}}}
      b: {on: {ship.done: c}}
      c: {type: final}
""")


class HeaderOutbox:
    """Records each send with the headers FaustOutbox would attach at that moment."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, key, value, tracing.outgoing_headers()))

    def last(self, topic: str) -> tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]:
        _, key, value, headers = [s for s in self.sent if s[0] == topic][-1]
        return key, value, headers


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    assert tracing.activate(provider)
    yield spans
    tracing.deactivate()


async def consume(name: str, handle, key, value, headers, source) -> None:  # type: ignore[no-untyped-def]
    with tracing.consumed(name, headers, source):
        await handle(key, value, source)


def test_one_trace_runs_from_the_event_through_the_handler_to_the_next_step(
    exporter: InMemorySpanExporter,
) -> None:
    outbox = HeaderOutbox()
    reducer = Reducer(ChartRegistry([SHIP]), TableInstanceStore({}, {}), KafkaStepOutbox(outbox))
    handlers = HandlerRegistry()
    handlers.register("effect", "ship", lambda data, ctx: {"parcel": 1})
    runner = CommandRunner(handlers, outbox)
    t = "2026-01-01T00:00:00Z"
    start = Event("w", "i", "$start", "e1", t)
    go = Event("w", "i", "GO", "e2", t)
    events = ("omninode.events", 0)
    asyncio.run(reducer.handle(b"w:i", encode_event(start), (*events, 1)))
    asyncio.run(
        consume("omninode.reducer", reducer.handle, b"w:i", encode_event(go), None, (*events, 2))
    )
    key, command, headers = outbox.last(topics.DEFAULT_COMMANDS)
    assert headers is not None and headers[0][0] == "traceparent"
    source = (topics.DEFAULT_COMMANDS, 0, 1)
    asyncio.run(consume("omninode.commands", runner.handle, key, command, headers, source))
    key, result, headers = outbox.last(topics.RESULTS)
    source = (topics.RESULTS, 0, 1)
    asyncio.run(consume("omninode.reducer", reducer.handle, key, result, headers, source))
    step, handler, answer = exporter.get_finished_spans()
    assert [s.name for s in (step, handler, answer)] == [
        "omninode.reducer",
        "omninode.commands",
        "omninode.reducer",
    ]
    assert len({s.context.trace_id for s in (step, handler, answer)}) == 1
    assert handler.parent is not None and handler.parent.span_id == step.context.span_id
    assert answer.parent is not None and answer.parent.span_id == handler.context.span_id
    assert step.attributes is not None and step.attributes["omninode.event"] == "GO"
    assert step.attributes["messaging.kafka.offset"] == 2
    assert answer.attributes is not None and answer.attributes["omninode.event"] == "ship.done"


def test_without_a_provider_nothing_is_recorded_and_no_header_is_sent() -> None:
    tracing.deactivate()
    with tracing.consumed("omninode.reducer", [("traceparent", b"junk")], ("t", 0, 0)):
        tracing.annotate(**{"omninode.instance": "w:i"})
        assert tracing.outgoing_headers() is None


def test_a_junk_traceparent_starts_a_new_trace(exporter: InMemorySpanExporter) -> None:
    with tracing.consumed("omninode.reducer", {"traceparent": b"\xff junk"}, ("t", 0, 0)):
        assert tracing.outgoing_headers() is not None
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
