"""Effect and compute handlers: Python callables registered by name, run by worker agents.

    from app.core.handlers import effect, compute, NonRetryableError

    @effect("charge_card")
    async def charge_card(input, ctx):
        if input["amount"] <= 0:
            raise NonRetryableError("amount must be positive")
        return {"charge_id": await gateway.charge(input["amount"], key=ctx.idempotency_key)}

    @compute("price_order")
    def price_order(input, ctx):
        return {"net": input["total"] / 1.19}

A handler gets the dispatch's ``input`` and a :class:`HandlerContext`; it returns a mapping
(the payload of ``<name>.done``; any other JSON value is wrapped as ``{"result": value}``).
The result must be plain JSON within the limits (no sets, datetimes or NaN; see
``app.spi.limits``); any other value fails the dispatch at once. Handlers may be
``async def`` or plain functions (run in a thread). Python cannot stop a thread: a plain
function keeps running after its timeout until it returns, so give its blocking calls their
own timeouts, or write it async. Raising retries the attempt under the dispatch's retry
policy; :class:`NonRetryableError` fails it at once. This module only registers handlers;
running them is the worker agent's job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.spi.envelopes import DispatchKind


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What a handler knows about the dispatch it runs; pass ``idempotency_key`` downstream."""

    idempotency_key: str
    workflow_type: str
    instance_id: str
    name: str
    kind: DispatchKind
    attempt: int
    max_attempts: int


HandlerFn = Callable[[Mapping[str, Any], HandlerContext], Any | Awaitable[Any]]


class HandlerError(Exception):
    """Raised by a handler to fail an attempt; ``non_retryable`` skips the remaining ones."""

    non_retryable: bool = False


class NonRetryableError(HandlerError):
    """A failure that retrying cannot fix (bad input, a declined card)."""

    non_retryable = True


class HandlerRegistry:
    """Handlers by (kind, name)."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[DispatchKind, str], HandlerFn] = {}

    def register(self, kind: DispatchKind, name: str, fn: HandlerFn) -> HandlerFn:
        existing = self._handlers.get((kind, name))
        if existing is not None and existing is not fn:
            raise ValueError(f"{kind} {name!r} is already registered by {existing.__qualname__}")
        self._handlers[(kind, name)] = fn
        return fn

    def get(self, kind: DispatchKind, name: str) -> HandlerFn | None:
        return self._handlers.get((kind, name))

    def __iter__(self) -> Iterator[tuple[DispatchKind, str]]:
        return iter(sorted(self._handlers))


default_handlers = HandlerRegistry()


def effect(name: str, registry: HandlerRegistry | None = None) -> Callable[[HandlerFn], HandlerFn]:
    """Register a side-effecting handler (charge a card, send mail) under ``name``."""
    target = registry if registry is not None else default_handlers
    return lambda fn: target.register("effect", name, fn)


def compute(name: str, registry: HandlerRegistry | None = None) -> Callable[[HandlerFn], HandlerFn]:
    """Register a deterministic computation (price, score) under ``name``."""
    target = registry if registry is not None else default_handlers
    return lambda fn: target.register("compute", name, fn)
