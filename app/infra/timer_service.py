"""Fires due ``after`` timers as inbound events.

The reducer keeps each instance's armed timers in a partitioned table (its changelog makes
them survive restarts and rebalances). Each worker scans the partitions it owns on a short
interval and sends every due timer as the event ``$after.<path>.<i>``, with the timer id,
and the deadline as its event time (:func:`app.core.snapshot.timer_firing`). The event id
is derived from the timer id, so a timer sent twice (say, after a restart) is applied
once; a timer whose state was exited is no longer in the table, and if its event is
already in flight the reducer ignores it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from app.core.ports import ArmedTimer
from app.core.snapshot import timer_firing
from app.infra import topics
from app.infra.outbox import Outbox
from app.infra.wire import encode_event
from app.spi.envelopes import instance_key


class TimerService:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._sent: set[str] = set()
        self.fired = 0
        self.armed = 0  # timers seen armed at the last scan (the omninode_timers_armed gauge)

    async def fire(self, armed: Iterable[ArmedTimer], now: datetime) -> int:
        """Send every due timer not sent yet; returns how many were sent."""
        now_ms = int(now.timestamp() * 1000)
        present: set[str] = set()
        sent = 0
        for each in armed:
            timer = each.timer
            present.add(timer.id)
            if timer.id in self._sent or each.deadline_ms > now_ms:
                continue
            event = timer_firing(each.workflow_type, each.instance_id, timer)
            key = instance_key(each.workflow_type, each.instance_id).encode()
            await self.outbox.send(topics.EVENTS, key, encode_event(event))
            self._sent.add(timer.id)
            sent += 1
        self._sent &= present
        self.armed = len(present)
        self.fired += sent
        return sent
