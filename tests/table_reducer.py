"""The reducer as ``faust_app`` wires it, over two byte tables that tests hand in (dicts):
``TableInstanceStore`` and ``KafkaStepOutbox`` around the port-only ``Reducer``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

from app.core.router import ChartRegistry
from app.infra import reducer_agent
from app.infra.instance_store import TableInstanceStore
from app.infra.outbox import KafkaStepOutbox, Outbox
from app.spi.limits import DEFAULT_LIMITS, Limits


def _never_committed(topic: str, partition: int) -> int | None:
    return None


async def _cannot_commit() -> None:
    return None


class Reducer(reducer_agent.Reducer):
    """``Reducer(registry, snapshots, timers, outbox, committed, commit, limits)``; its
    ``snapshots`` and ``timers`` are the tables (assigning ``snapshots`` swaps the table)."""

    def __init__(
        self,
        registry: ChartRegistry,
        snapshots: MutableMapping[bytes, bytes],
        timers: MutableMapping[bytes, bytes],
        outbox: Outbox,
        committed: Callable[[str, int], int | None] = _never_committed,
        commit: Callable[[], Awaitable[object]] = _cannot_commit,
        limits: Limits = DEFAULT_LIMITS,
        partitions: int | None = None,
    ) -> None:
        self.tables = TableInstanceStore(snapshots, timers, committed, commit)
        super().__init__(registry, self.tables, KafkaStepOutbox(outbox), limits, partitions)

    @property
    def snapshots(self) -> MutableMapping[bytes, bytes]:
        return self.tables.snapshots

    @snapshots.setter
    def snapshots(self, table: MutableMapping[bytes, bytes]) -> None:
        self.tables.snapshots = table

    @property
    def timers(self) -> MutableMapping[bytes, bytes]:
        return self.tables.timers
