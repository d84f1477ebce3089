"""Projector agents: the instance read model and the per-state counts, from the journal.

The instance projector folds each journal record into the instance's view (records not
newer than the view are skipped, so redelivery is harmless), publishes the view to the
compacted ``omninode.projection.instances`` topic, and sends the +1/-1 changes to the
state counts, keyed by ``workflowType:state``, to a repartition topic. The counts projector
sums those changes per key and publishes each total to ``omninode.projection.state-counts``.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping

from app.infra import topics
from app.infra.decoding import dead_letters_of, decoded
from app.infra.outbox import Outbox, Source
from app.infra.wire import (
    decode_journal,
    decode_state_count,
    encode_instance_view,
    encode_state_count,
)
from projectors.instances import InstanceView, project
from projectors.state_counts import StateCount, deltas


def stored_view(view: InstanceView) -> bytes:
    """A view as the instance projector's table holds it: JSON text of its record."""
    return json.dumps(view.to_record()).encode()


def view_of(stored: bytes) -> InstanceView:
    return InstanceView.from_record(json.loads(stored))


class InstanceProjector:
    def __init__(self, views: MutableMapping[bytes, bytes], outbox: Outbox) -> None:
        self.views = views
        self.outbox = outbox

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        record = await decoded(
            decode_journal, key, value, source, dead_letters_of(self.outbox), "journal record"
        )
        if record is None:
            return
        view_key = record.key.encode()
        stored = self.views.get(view_key)
        before = view_of(stored) if stored else None
        after = project(before, record)
        if after is None:
            return
        self.views[view_key] = stored_view(after)
        await self.outbox.send(topics.INSTANCE_VIEWS, view_key, encode_instance_view(after))
        for state_key, change in deltas(before, after).items():
            delta = StateCount.of_key(state_key, change)
            await self.outbox.send(
                topics.STATE_DELTAS, state_key.encode(), encode_state_count(delta)
            )


class CountsProjector:
    def __init__(self, counts: MutableMapping[bytes, bytes], outbox: Outbox) -> None:
        self.counts = counts
        self.outbox = outbox

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        delta = await decoded(
            decode_state_count, key, value, source, dead_letters_of(self.outbox), "state delta"
        )
        if delta is None:
            return
        state_key = delta.key.encode()
        total = int(self.counts.get(state_key, b"0")) + delta.count
        self.counts[state_key] = str(total).encode()
        count = StateCount(delta.workflow_type, delta.state, total)
        await self.outbox.send(topics.STATE_COUNTS, state_key, encode_state_count(count))
