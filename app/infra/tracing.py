"""Optional OpenTelemetry spans, with the trace context carried in Kafka record headers.

Install the ``otel`` extra and configure an SDK ``TracerProvider`` in a handler module (or
with ``opentelemetry-instrument``); workers then record a span per consumed record —
``omninode.reducer`` (one step), ``omninode.commands`` (one command's handler run),
``omninode.projector`` … — whose parent is the context in the record's ``traceparent``
header, and every record sent while it is current carries that span's context. So one
trace runs event → step → command → handler → result → next step.

Without the package, or with no SDK provider configured when the app is built, every
function here is a no-op that costs one attribute check: the hot path pays nothing.
Re-sent outputs (a redelivery) and timer firings carry no context: they start new traces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None
_state: dict[str, Any] = {"tracer": None}
_NO_SPAN: AbstractContextManager[None] = nullcontext()


def activate(provider: Any = None) -> bool:
    """Record spans if OpenTelemetry's SDK provider is configured (or ``provider`` is given);
    called once when the app is built, after the handler modules, which may configure it."""
    try:
        from opentelemetry import trace  # noqa: PLC0415
    except ImportError:
        _state["tracer"] = None
        return False
    provider = provider or trace.get_tracer_provider()
    recording = type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
    _state["tracer"] = provider.get_tracer("omninode") if recording else None
    return recording


def deactivate() -> None:
    _state["tracer"] = None


def consumed(
    name: str, headers: Headers, source: tuple[str, int, int]
) -> AbstractContextManager[None]:
    """A span for handling one consumed record (``source``: topic, partition, offset),
    child of the context its headers carry; nothing while no tracer records."""
    if _state["tracer"] is None:
        return _NO_SPAN
    return _consumed_span(name, headers, source)


@contextmanager
def _consumed_span(name: str, headers: Headers, source: tuple[str, int, int]) -> Iterator[None]:
    tracer = _state["tracer"]
    from opentelemetry.propagate import extract  # noqa: PLC0415

    carrier = {k: v.decode("latin-1") for k, v in _pairs(headers)}
    topic, partition, offset = source
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
    }
    with tracer.start_as_current_span(name, context=extract(carrier), attributes=attributes):
        yield


def annotate(**attributes: str | int) -> None:
    """Attributes for the current span (the step's instance, event type, seq …)."""
    if _state["tracer"] is None:
        return
    from opentelemetry import trace  # noqa: PLC0415

    trace.get_current_span().set_attributes(attributes)


def outgoing_headers() -> list[tuple[str, bytes]] | None:
    """The current span's context as record headers (None when not tracing)."""
    if _state["tracer"] is None:
        return None
    from opentelemetry.propagate import inject  # noqa: PLC0415

    carrier: dict[str, str] = {}
    inject(carrier)
    return [(key, value.encode("latin-1")) for key, value in carrier.items()] or None


def _pairs(headers: Headers) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), bytes(v)) for k, v in items if isinstance(v, bytes | bytearray)]
