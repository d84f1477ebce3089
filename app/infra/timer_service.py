"""Fires due ``after`` timers as inbound events.

The reducer keeps each instance's armed timers in a partitioned table (its changelog makes
them survive restarts and rebalances). Each worker scans the partitions it owns on a short
interval and sends every due timer as the event ``$after.<path>.<i>``, with the timer id,
and the deadline as its event time. The event id is derived from the timer id, so a timer
sent twice (say, after a restart) is applied once; a timer whose state was exited is no
longer in the table, and if its event is already in flight the reducer ignores it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from app.core.durations import parse_instant_ms
from app.infra import settings as topics
from app.infra.outbox import Outbox
from app.infra.wire import encode_event
from app.spi.envelopes import Event


class TimerService:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._sent: set[str] = set()
        self.fired = 0

    async def fire_due(self, armed: Iterable[tuple[bytes, bytes]], now: datetime) -> int:
        """Send every due timer not sent yet; returns how many were sent."""
        now_ms = int(now.timestamp() * 1000)
        present: set[str] = set()
        sent = 0
        for key, value in armed:
            for timer in json.loads(value):
                present.add(timer["id"])
                if timer["id"] in self._sent or parse_instant_ms(timer["deadline"]) > now_ms:
                    continue
                await self.outbox.send(topics.EVENTS, key, encode_event(timer_event(timer)))
                self._sent.add(timer["id"])
                sent += 1
        self._sent &= present
        self.fired += sent
        return sent


def timer_event(timer: dict[str, str]) -> Event:
    return Event(
        workflow_type=timer["workflow_type"],
        instance_id=timer["instance_id"],
        type=timer["event"],
        event_id=f"timer:{timer['id']}",
        occurred_at=timer["deadline"],
        timer_id=timer["id"],
    )
