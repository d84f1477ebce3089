"""Where agents publish: the Outbox port of the agents, and dead letters through it."""

from __future__ import annotations

from typing import Protocol

from app.infra import settings as topics
from app.infra.wire import dead_letter
from app.spi.envelopes import Event

Source = tuple[str, int, int]  # topic, partition, offset of the record being handled


class Outbox(Protocol):
    """Where agents publish records: topic name, key, value bytes (sent, not awaited)."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...


async def send_dead_letter(
    outbox: Outbox,
    reason: str,
    stage: str,
    source: Source,
    key: bytes | None,
    value: bytes | None,
    event: Event | None = None,
    *,
    workflow_type: str | None = None,
    instance_id: str | None = None,
) -> None:
    """Keep the original bytes, the reason and where they came from on the dead-letter topic.

    The instance is the event's, or ``workflow_type``/``instance_id`` when there is no event.
    """
    letter = dead_letter(
        reason,
        stage,
        source,
        key,
        value,
        event,
        workflow_type=workflow_type,
        instance_id=instance_id,
    )
    await outbox.send(topics.DEAD_LETTERS, key, letter)
