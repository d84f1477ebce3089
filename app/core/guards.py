"""Named guards: Python predicates registered by name and referenced as ``guard: name``.

A guard receives the instance data and the event (both read-only) and returns a bool. It must
be deterministic, like the reducer itself: no clock, no I/O, no randomness.

    from app.core.guards import guard

    @guard("is_vip")
    def is_vip(data, event):
        return data.get("tier") == "vip"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

GuardFn = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


class GuardRegistry:
    """Guards by name. Charts resolve their guard names against one registry at load time."""

    def __init__(self) -> None:
        self._guards: dict[str, GuardFn] = {}

    def register(self, name: str, fn: GuardFn) -> GuardFn:
        existing = self._guards.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(f"guard {name!r} is already registered by {existing.__qualname__}")
        self._guards[name] = fn
        return fn

    def get(self, name: str) -> GuardFn | None:
        return self._guards.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._guards

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._guards))

    def copy(self) -> GuardRegistry:
        clone = GuardRegistry()
        clone._guards = dict(self._guards)
        return clone


default_guards = GuardRegistry()


def guard(name: str, registry: GuardRegistry | None = None) -> Callable[[GuardFn], GuardFn]:
    """Decorator registering a predicate under ``name`` (in the default registry)."""
    target = registry if registry is not None else default_guards

    def decorate(fn: GuardFn) -> GuardFn:
        return target.register(name, fn)

    return decorate
