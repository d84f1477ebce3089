"""Rebuild the projections from the journal, from offset 0, with the projectors' own folds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from app.infra import topics
from app.infra.kafka_client import produce, read_topic
from app.infra.settings import Settings
from app.infra.wire import (
    decode_instance_view,
    decode_journal,
    decode_state_count,
    encode_instance_view,
    encode_state_count,
)
from projectors.instances import InstanceView, project
from projectors.state_counts import StateCount, totals

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RebuildReport:
    journal_records: int
    views: int
    counts: int
    views_differing: int
    counts_differing: int


async def rebuild_projections(settings: Settings, publish: bool) -> RebuildReport:
    """Fold the whole journal; compare with the published projections; publish if asked.

    The projection topics are compacted and keyed, so publishing every view and total
    makes the latest record of each key the rebuilt one.
    """
    views: dict[str, InstanceView] = {}
    journal = await read_topic(settings, settings.topic(topics.JOURNAL))
    for record in journal:
        entry = decode_journal(record.value)
        updated = project(views.get(entry.key), entry)
        if updated is not None:
            views[entry.key] = updated
    counts = totals(views)
    published_views = await _published(settings, topics.INSTANCE_VIEWS, decode_instance_view)
    published_counts = await _published(settings, topics.STATE_COUNTS, decode_state_count)
    views_differing = sum(published_views.get(k) != v for k, v in views.items())
    zeroed = {k: 0 for k, v in published_counts.items() if v.count and k not in counts}
    counts = {**zeroed, **counts}  # states no instance is in any more count 0
    counts_differing = sum(
        k not in published_counts or published_counts[k].count != n for k, n in counts.items()
    )
    if publish:
        await produce(settings, _records(settings, views, counts))
    return RebuildReport(len(journal), len(views), len(counts), views_differing, counts_differing)


async def _published(
    settings: Settings, topic: str, decode: Callable[[bytes | None], T]
) -> dict[str, T]:
    """The latest record of each key on a projection topic (compacted: the latest wins)."""
    records = await read_topic(settings, settings.topic(topic))
    return {r.key.decode(): decode(r.value) for r in records if r.key and r.value}


def _records(
    settings: Settings, views: dict[str, InstanceView], counts: dict[str, int]
) -> list[tuple[str, bytes, bytes]]:
    view_topic = settings.topic(topics.INSTANCE_VIEWS)
    count_topic = settings.topic(topics.STATE_COUNTS)
    records = [(view_topic, k.encode(), encode_instance_view(v)) for k, v in views.items()]
    for key, count in counts.items():
        records.append(
            (count_topic, key.encode(), encode_state_count(StateCount.of_key(key, count)))
        )
    return records
