"""End offsets that are right on the embedded broker too.

The embedded broker's ListOffsets answers the base offset of a partition's last record
batch plus one, not its last offset plus one (measured: batches of 5, 3, 1 and 7
records at offsets 0-15 gave end offsets 1, 6, 9 and 10). Its fetch responses carry the
right high watermark (16 there). So where ListOffsets is not to be trusted, the end of a
partition is read from a fetch at the listed end minus one, which always returns that
last batch and the true high watermark with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

PROBE_TIMEOUT_S = 30.0
PROBE_POLL_MS = 50


class EndOffsetProbeError(Exception):
    """A partition's high watermark could not be read within the time allowed."""


async def fetched_end_offsets(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The end offset of each partition, from fetch responses.

    ``consumer`` must be one this call may reassign: it is left assigned to the probed
    partitions at unspecified positions.
    """
    tps = list(partitions)
    listed: Mapping[TopicPartition, int] = await consumer.end_offsets(tps)
    ends = {tp: int(listed.get(tp, 0)) for tp in tps}
    missing = {tp for tp in tps if ends[tp] > 0}
    if not missing:
        return ends
    consumer.assign(sorted(missing))
    for tp in missing:
        consumer.seek(tp, ends[tp] - 1)
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while missing:
        if time.monotonic() > deadline:
            raise EndOffsetProbeError(f"no fetch answered for {sorted(missing)}")
        await consumer.getmany(*missing, timeout_ms=PROBE_POLL_MS)
        for tp in list(missing):
            highwater = consumer.highwater(tp)
            if highwater is not None:
                ends[tp] = max(ends[tp], highwater)
                missing.discard(tp)
    return ends
