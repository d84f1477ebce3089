"""Durations (``500ms``, ``30s``, ``15m``, ``1h30m``, ``2d``) and ISO-8601 instants.

Pure conversions only: the core never reads a clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:ms|s|m|h|d))+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration_ms(text: object) -> int:
    """Milliseconds in a duration such as ``1h30m``; raises ValueError with the reason."""
    if not isinstance(text, str) or not _WHOLE.match(text.strip()):
        raise ValueError(
            f"bad duration {text!r}: use digits and units ms, s, m, h, d (e.g. 30s, 15m, 1h30m)"
        )
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text))


@lru_cache(maxsize=64)  # step checks an event's time, then its run reads it: parse once
def parse_instant_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 instant; naive instants are taken as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


def format_instant(ms: int) -> str:
    """The canonical form of an instant: ``YYYY-MM-DDTHH:MM:SS[.fff]Z``, sortable as text."""
    value = _EPOCH + timedelta(milliseconds=ms)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    millis = ms % 1_000
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def format_duration(ms: int) -> str:
    """The shortest duration text for ``ms`` (inverse of :func:`parse_duration_ms`)."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        count, ms = divmod(ms, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
