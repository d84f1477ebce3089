"""Rebuild the projections from the journal, from offset 0, with the projectors' own folds."""

from __future__ import annotations

from dataclasses import dataclass

from app.infra import settings as names
from app.infra.avro import codec
from app.infra.kafka_client import produce, read_topic
from app.infra.settings import Settings
from app.infra.wire import INSTANCE_VIEW, STATE_COUNT, decode_journal
from projectors.instances import InstanceView, project
from projectors.state_counts import split_key, totals


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
    journal = await read_topic(settings, settings.topic(names.JOURNAL))
    for record in journal:
        entry = decode_journal(record.value)
        updated = project(views.get(entry.key), entry)
        if updated is not None:
            views[entry.key] = updated
    counts = totals(views)
    published_views = await _published(settings, names.INSTANCE_VIEWS, INSTANCE_VIEW)
    published_counts = await _published(settings, names.STATE_COUNTS, STATE_COUNT)
    views_differing = sum(published_views.get(k) != v.to_record() for k, v in views.items())
    zeroed = {k: 0 for k, v in published_counts.items() if v["count"] and k not in counts}
    counts = {**zeroed, **counts}  # states no instance is in any more count 0
    counts_differing = sum(published_counts.get(k, {}).get("count") != n for k, n in counts.items())
    if publish:
        await produce(settings, _records(settings, views, counts))
    return RebuildReport(len(journal), len(views), len(counts), views_differing, counts_differing)


async def _published(settings: Settings, topic: str, schema: str) -> dict[str, dict[str, object]]:
    records = await read_topic(settings, settings.topic(topic))
    return {r.key.decode(): codec(schema).decode(r.value) for r in records if r.key and r.value}


def _records(
    settings: Settings, views: dict[str, InstanceView], counts: dict[str, int]
) -> list[tuple[str, bytes, bytes]]:
    view_topic = settings.topic(names.INSTANCE_VIEWS)
    count_topic = settings.topic(names.STATE_COUNTS)
    records = [
        (view_topic, k.encode(), codec(INSTANCE_VIEW).encode(v.to_record()))
        for k, v in views.items()
    ]
    for key, count in counts.items():
        workflow, state = split_key(key)
        record = {"workflow_type": workflow, "state": state, "count": count}
        records.append((count_topic, key.encode(), codec(STATE_COUNT).encode(record)))
    return records
