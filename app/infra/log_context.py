"""Log lines that name the instance and the correlation id of the record being handled.

The agent loop sets the record's key (``workflowType:instanceId``) for the time it handles
the record, and the reducer (or the command runner) adds the correlation id (the event's
``correlation_id``, else its id; a command's id). Every log record made meanwhile, by any
logger (handler code's too), ends with both — ``... [key=order:o-7 correlation=web-42]``
— and carries ``record.omninode_key`` and ``record.correlation_id`` for formatters that
want them as fields (a log record factory, installed once when the app is built).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

_key: ContextVar[str | None] = ContextVar("omninode_key", default=None)
_correlation: ContextVar[str | None] = ContextVar("omninode_correlation", default=None)
MAX_CHARS = 200  # keys and ids come from the wire: a line stays short


class handling:
    """While one record is handled: its key (the correlation id is set later, if known).
    A class, not a generator: it wraps every record an agent handles."""

    __slots__ = ("_key", "_tokens")

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def __enter__(self) -> None:
        key = self._key
        self._tokens = (
            _key.set(key.decode("utf-8", "replace")[:MAX_CHARS] if key else None),
            _correlation.set(None),
        )

    def __exit__(self, *exc: object) -> None:
        key_token, correlation_token = self._tokens
        _key.reset(key_token)
        _correlation.reset(correlation_token)


def correlate(correlation_id: str | None) -> None:
    _correlation.set(correlation_id[:MAX_CHARS] if correlation_id else None)


def _with_context(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        key, correlation = _key.get(), _correlation.get()
        record.omninode_key = key
        record.correlation_id = correlation
        if (key is not None or correlation is not None) and isinstance(record.msg, str):
            suffix = f" [key={key} correlation={correlation}]".replace("%", "%%")
            record.msg += suffix if record.args else suffix.replace("%%", "%")
        return record

    make.omninode_context = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Make every log record carry the context (once per process)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "omninode_context", False):
        logging.setLogRecordFactory(_with_context(factory))
