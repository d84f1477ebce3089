"""Pure contracts: envelopes, ports and the SPI's root exception. Imports nothing of ours."""

from app.spi.envelopes import (
    Command,
    DispatchKind,
    DispatchMode,
    Event,
    InstanceStatus,
    JournalRecord,
    JsonValue,
    RetryPolicy,
)
from app.spi.errors import SpiError

__all__ = [
    "Command",
    "DispatchKind",
    "DispatchMode",
    "Event",
    "InstanceStatus",
    "JournalRecord",
    "JsonValue",
    "RetryPolicy",
    "SpiError",
]
