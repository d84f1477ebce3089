"""What the API reads, on the worker that holds the data: pure functions over the tables.

- A snapshot: the snapshot table's value (``instance_store`` format), one RocksDB get.
- A history page: the *journal index*, a projector table keyed ``<instance key> NUL
  <seq, 8 bytes big-endian>`` whose values are the journal records' bytes as journaled.
  The projector writes it beside the instance view, in the same agent and on the same
  partition (the journal's, which is the instance key's), so a page is the view's seq and
  one get per record: its cost does not depend on how much else the deployment ran.
- The instance list: the projector's ``instance-views`` table, scanned on each worker for
  the partitions it holds (newest first by ``updated_at`` then key, after a cursor), and
  the pages of all workers merged.
- The state counts of ``GET /api/workflows``: the ``state-counts`` table, likewise.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Coroutine, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from app.core.diagram import to_mermaid
from app.core.durations import parse_instant_ms
from app.core.router import ChartRegistry
from app.infra.http_inputs import ListQuery, encode_cursor
from app.infra.instance_store import decode_stored
from app.infra.projector_agent import view_of
from app.infra.wire import AvroDecodeError, decode_journal
from app.spi.envelopes import JournalRecord
from app.spi.ports import Source
from projectors.state_counts import split_key

JOURNAL_INDEX_TABLE = "journal-index"
INDEX_SEPARATOR = b"\x00"
SCAN_CHUNK = 1000  # views a list decodes between two yields to the event loop
MAX_PAGE_BYTES = 1024 * 1024  # a history page stops growing here (one record at least)
Table = Mapping[bytes, bytes]
Handle = Callable[[bytes | None, bytes | None, Source], Coroutine[Any, Any, None]]


def index_key(key: str, seq: int) -> bytes:
    """The journal index's key of an instance's record ``seq``."""
    return key.encode() + INDEX_SEPARATOR + seq.to_bytes(8, "big")


class JournalIndexer:
    """Keeps every journal record by instance and seq (each seq once, first write wins, as
    journal readers de-duplicate); a record that does not decode is the projector's to
    dead-letter, and is skipped here."""

    def __init__(self, index: MutableMapping[bytes, bytes]) -> None:
        self.index = index

    async def handle(self, key: bytes | None, value: bytes | None, source: Source) -> None:
        try:
            record = decode_journal(value)
        except AvroDecodeError:
            return
        name = index_key(record.key, record.seq)
        if value is not None and name not in self.index:
            self.index[name] = value


def indexed(index: MutableMapping[bytes, bytes], projector: Handle) -> Handle:
    """The projector's journal handler that first keeps the record in the journal index (in
    the same agent, so the index has every seq the instance view has)."""
    indexer = JournalIndexer(index)

    async def handle(key: bytes | None, value: bytes | None, source: Source) -> None:
        await indexer.handle(key, value, source)
        await projector(key, value, source)

    return handle


def snapshot_body(raw: bytes) -> dict[str, Any]:
    """The snapshot as ``omninode status --json`` prints it."""
    return decode_stored(raw).snapshot.to_dict()


def journal_row(record: JournalRecord) -> dict[str, Any]:
    """A journal record with every field: the line ``omninode history --json`` prints
    (app.cli.replay_cmd reads it back)."""
    children = record.children
    return {
        "seq": record.seq,
        "event": record.event.to_dict(),
        "ignored": record.ignored,
        "status": record.status,
        "workflow_version": record.workflow_version,
        "configuration": list(record.configuration),
        "reason": record.reason,
        "raised": list(record.raised),
        "children": [c.to_dict() for c in children] if children is not None else None,
        "outputs": record.outputs,
    }


def history_page(
    views: Table, index: Table, key: str, first: int, limit: int
) -> dict[str, Any] | None:
    """Records ``first``… of the instance's journal (at most ``limit``, and at most
    :data:`MAX_PAGE_BYTES` of them); None when the projector has no view of the instance.
    A seq the index lacks (journaled before the index existed) is listed in ``missing``."""
    stored = views.get(key.encode())
    if stored is None:
        return None
    last = view_of(stored).seq
    records: list[dict[str, Any]] = []
    missing: list[int] = []
    size, seq = 0, first
    while seq <= min(last, first + limit - 1) and (size < MAX_PAGE_BYTES or not records):
        raw = index.get(index_key(key, seq))
        if raw is None:
            missing.append(seq)
        else:
            records.append(journal_row(decode_journal(raw)))
            size += len(raw)
        seq += 1
    workflow, _, instance = key.partition(":")
    return {
        "workflow": workflow,
        "instance_id": instance,
        "seq": last,
        "records": records,
        "missing": missing,
        "next_from_seq": seq if seq <= last else None,
    }


# --- the instance list -----------------------------------------------------------------


def sort_key(row: Mapping[str, Any]) -> tuple[int, str]:
    """Newest first: ``updated_at`` in ms (0 if it is not an instant), then the key."""
    try:
        at = parse_instant_ms(str(row["updated_at"]))
    except (ValueError, TypeError, OverflowError):
        at = 0
    return at, str(row["key"])


def view_row(stored: bytes) -> dict[str, Any]:
    view = view_of(stored)
    return {"key": f"{view.workflow_type}:{view.instance_id}", **view.to_record()}


def _matches(row: Mapping[str, Any], query: ListQuery) -> bool:
    if query.workflow is not None and row["workflow_type"] != query.workflow:
        return False
    if query.status is not None and row["status"] != query.status:
        return False
    if query.state is not None:
        prefix = query.state + "."
        return any(s == query.state or s.startswith(prefix) for s in row["configuration"])
    return True


class Newest:
    """The newest ``limit`` views matching a query after its cursor, kept in a heap of
    ``limit`` rows while a worker's views stream by (memory bounded by the page)."""

    def __init__(self, query: ListQuery) -> None:
        self.query = query
        self._heap: list[tuple[tuple[int, str], dict[str, Any]]] = []  # oldest on top
        self._more = False

    def add(self, stored: bytes) -> None:
        row = view_row(stored)
        query = self.query
        if not _matches(row, query):
            return
        key = sort_key(row)
        if query.after is not None and not key < query.after:
            return
        if len(self._heap) < query.limit:
            heapq.heappush(self._heap, (key, row))
            return
        self._more = True  # one more than the page holds: a next page exists
        if key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, row))

    def page(self) -> dict[str, Any]:
        return cut([row for _, row in self._heap], self.query.limit, self._more)


def list_page(items: Iterable[tuple[bytes, bytes]], query: ListQuery) -> dict[str, Any]:
    """One worker's page: its views matching ``query``, newest first, after the cursor."""
    newest = Newest(query)
    for _, stored in items:
        newest.add(stored)
    return newest.page()


def cut(rows: list[dict[str, Any]], limit: int, more: bool) -> dict[str, Any]:
    """The newest ``limit`` rows and the cursor after them (None: nothing follows)."""
    rows = sorted(rows, key=sort_key, reverse=True)
    page = rows[:limit]
    follows = more or len(rows) > limit
    cursor = encode_cursor(sort_key(page[-1])) if follows and page else None
    return {"instances": page, "next_cursor": cursor}


def merge_pages(pages: Sequence[Mapping[str, Any]], limit: int) -> dict[str, Any]:
    """The pages of every worker as one page (a key on two workers in a rebalance: once)."""
    rows: dict[str, dict[str, Any]] = {}
    for page in pages:
        for row in page["instances"]:
            known = rows.get(row["key"])
            if known is None or row["seq"] > known["seq"]:
                rows[row["key"]] = row
    more = any(page.get("next_cursor") for page in pages)
    return cut(list(rows.values()), limit, more)


# --- workflows and their state counts ---------------------------------------------------


def local_counts(items: Iterable[tuple[bytes, bytes]]) -> dict[str, int]:
    """``workflowType:state`` → count, from the state-counts table's values (int text)."""
    counts: dict[str, int] = {}
    for key, value in items:
        try:
            counts[key.decode()] = int(value)
        except (UnicodeDecodeError, ValueError):
            continue
    return counts


def workflow_rows(registry: ChartRegistry, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every loaded workflow with its versions (Mermaid text included) and its counts:
    ``states`` per state (``(cancelled)`` for instances in no state) and ``statuses``."""
    by_workflow: dict[str, list[dict[str, Any]]] = {}
    for chart in registry:
        by_workflow.setdefault(chart.workflow, []).append(
            {
                "version": chart.version,
                "description": chart.description,
                "file": chart.file,
                "events": sorted(chart.events),
                "mermaid": to_mermaid(chart),
            }
        )
    rows = []
    for workflow, versions in by_workflow.items():
        states: dict[str, int] = {}
        statuses: dict[str, int] = {}
        for key, count in counts.items():
            owner, state = split_key(key)
            if owner != workflow or count == 0:
                continue
            if state.startswith("(status:") and state.endswith(")"):
                statuses[state[len("(status:") : -1]] = count
            else:
                states[state] = count
        rows.append(
            {
                "workflow": workflow,
                "latest": max(v["version"] for v in versions),
                "versions": versions,
                "states": dict(sorted(states.items())),
                "statuses": dict(sorted(statuses.items())),
            }
        )
    return rows


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
