"""The HTTP API's endpoints (docs/api.md): instances, their history, events, the instance
list, workflows, dead letters.

Any worker answers any request. One about an instance is answered by the worker holding
the instance's partition of the table it reads (``http_routing``): the snapshot table for
a snapshot and for events (checked against the instance's chart version, then produced),
the projector's journal index for a history page. A list asks every worker holding
partitions of the table for its page and merges them. :class:`Api` knows no Faust: the
app's tables, producer, assignor and dead-letter reads are handed to it
(``http_server.install``), so the tests run it on dicts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from aiokafka.errors import KafkaError

from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.infra import http_inputs as inputs
from app.infra.http_commands import (
    Produce,
    accept,
    letter_detail,
    make_event,
    reserved_problem,
)
from app.infra.http_inputs import ListQuery, bad_request, not_found
from app.infra.http_letters import Letters, SingleFlight, parse_id
from app.infra.http_routing import (
    FORWARDED,
    PARTITION,
    Forward,
    Forwarder,
    Placement,
    check_coverage,
    hosts,
    local_partitions,
    route,
    same_worker,
    unavailable,
)
from app.infra.http_views import (
    SCAN_CHUNK,
    Newest,
    history_page,
    local_counts,
    merge_pages,
    snapshot_body,
    workflow_rows,
)
from app.infra.instance_store import decode_stored
from app.infra.kafka_client import KafkaUnavailable
from app.spi.envelopes import START, instance_key
from app.spi.limits import Limits

Table = Mapping[bytes, bytes]
T = TypeVar("T")
log = logging.getLogger("omninode.http")
# What a broker that cannot be reached (or is too slow) raises: a 503, not a bug's 500.
KAFKA_FAILURES = (KafkaUnavailable, KafkaError, TimeoutError, ConnectionError)


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table the API reads: its changelog topic (how the assignor names its partitions),
    its partition count, and the table itself when this worker keeps it (its role)."""

    topic: str
    partitions: int
    table: Table | None = None

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.table.items() if self.table is not None else ()


@dataclass(frozen=True, slots=True)
class Tables:
    snapshots: TableRef
    views: TableRef
    journal_index: TableRef
    counts: TableRef


@dataclass
class Api:
    registry: ChartRegistry
    limits: Limits
    tables: Tables
    placement: Callable[[], Placement]
    forwarder: Forwarder
    produce: Produce
    letters: Letters
    _letter_reads: SingleFlight = field(default_factory=SingleFlight, init=False)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/instances", self.list_instances),
            web.get("/api/instances/{workflow}/{id}", self.get_instance),
            web.post("/api/instances/{workflow}/{id}", self.post_start),
            web.get("/api/instances/{workflow}/{id}/history", self.get_history),
            web.post("/api/instances/{workflow}/{id}/events/{type}", self.post_event),
            web.get("/api/workflows", self.get_workflows),
            web.get("/api/deadletters", self.list_letters),
            web.get("/api/deadletters/{id}", self.get_letter),
            web.post("/api/deadletters/{id}/replay", self.replay_letter),
            web.get("/api/internal/instances", self.internal_instances),
            web.get("/api/internal/state-counts", self.internal_counts),
        ]

    # --- one instance ---------------------------------------------------------------

    def _key(self, request: web.Request) -> tuple[str, str]:
        workflow = inputs.workflow_name(request.match_info["workflow"])
        return workflow, inputs.instance_id(workflow, request.match_info["id"], self.limits)

    async def _routed(
        self, request: web.Request, ref: TableRef, key: str, body: bytes | None = None
    ) -> int | web.Response:
        """The partition when this worker answers, else the owner's answer."""
        forwarded = FORWARDED in request.headers
        decision = route(self.placement(), ref.topic, ref.partitions, key.encode(), forwarded)
        if isinstance(decision, Forward):
            return await self.forwarder.forward(request, decision.url, body)
        return decision.partition

    async def get_instance(self, request: web.Request) -> web.Response:
        workflow, instance = self._key(request)
        key = instance_key(workflow, instance)
        here = await self._routed(request, self.tables.snapshots, key)
        if isinstance(here, web.Response):
            return here
        raw = _table(self.tables.snapshots).get(key.encode())
        if raw is None:
            raise not_found(f"no instance {key}")
        return _json(snapshot_body(raw), headers={PARTITION: str(here)})

    async def get_history(self, request: web.Request) -> web.Response:
        workflow, instance = self._key(request)
        first, limit = inputs.history_query(request.query)
        key = instance_key(workflow, instance)
        here = await self._routed(request, self.tables.journal_index, key)
        if isinstance(here, web.Response):
            return here
        views, index = _table(self.tables.views), _table(self.tables.journal_index)
        page = history_page(views, index, key, first, limit)
        if page is None:
            raise not_found(f"no journal for {key}")
        return _json(page, headers={PARTITION: str(here)})

    async def post_start(self, request: web.Request) -> web.Response:
        return await self._post(request, START)

    async def post_event(self, request: web.Request) -> web.Response:
        event_type = inputs.event_type(request.match_info["type"])
        reserved = reserved_problem(event_type)
        if reserved is not None:
            raise bad_request(reserved)
        return await self._post(request, event_type)

    async def _post(self, request: web.Request, event_type: str) -> web.Response:
        workflow, instance = self._key(request)
        body = await request.read()
        payload = inputs.json_object(body, self.limits)
        event_id = inputs.idempotency_key(request.headers)
        version = inputs.version(request.query) if event_type == START else None
        if workflow not in self.registry:
            raise not_found(f"no workflow type {workflow!r} is loaded")
        key = instance_key(workflow, instance)
        here = await self._routed(request, self.tables.snapshots, key, body)
        if isinstance(here, web.Response):
            return here
        raw = _table(self.tables.snapshots).get(key.encode())
        snapshot: Snapshot | None = decode_stored(raw).snapshot if raw is not None else None
        event = make_event(workflow, instance, event_type, payload, event_id, version)
        status, answer = await accept(self.registry, self.limits, snapshot, event, self._produce)
        return _json(answer, status=status)

    async def _produce(self, key: bytes, value: bytes) -> int:
        """The producer's partition; a broker that does not acknowledge in time is a 503
        (the event may still arrive: a retry with the same Idempotency-Key is safe)."""
        doing = "producing the event (it may still be applied: retry with the same Idempotency-Key)"
        return await _kafka(self.produce(key, value), doing)

    # --- lists: every worker's page, merged ---------------------------------------------

    async def list_instances(self, request: web.Request) -> web.Response:
        query = inputs.list_query(request.query)
        if FORWARDED in request.headers:  # another worker's fan-out: this worker's page
            return await self.internal_instances(request)
        path = "/api/internal/instances?" + urlencode(query.to_query())
        pages = await self._fan_out(self.tables.views, path, partial(self._views_page, query))
        return _json(merge_pages(pages, query.limit))

    async def internal_instances(self, request: web.Request) -> web.Response:
        return _json(await self._views_page(inputs.list_query(request.query)))

    async def _views_page(self, query: ListQuery) -> dict[str, Any]:
        """This worker's page, decoding its views a chunk at a time so that its agents,
        which share the event loop, run between chunks."""
        before = self.placement()
        served = self._served(self.tables.views)
        newest = Newest(query)
        try:
            for n, (_, stored) in enumerate(self.tables.views.items()):
                newest.add(stored)
                if n % SCAN_CHUNK == SCAN_CHUNK - 1:
                    await asyncio.sleep(0)
        except RuntimeError as exc:
            after = self.placement()
            if (after.actives, after.ready) == (before.actives, before.ready):
                raise  # not a rebalance: a bug, answered 500 with the traceback logged
            raise unavailable(f"the partitions moved during the scan ({exc}); retry") from exc
        return {**newest.page(), "partitions": served}

    def _served(self, ref: TableRef) -> list[int]:
        placement = self.placement()
        if not placement.ready:
            raise unavailable("this worker is recovering its tables; retry shortly")
        return list(local_partitions(placement, ref.topic)) if ref.table is not None else []

    async def _fan_out(
        self, ref: TableRef, path: str, here: Callable[[], Awaitable[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Every worker's answer for its partitions of ``ref`` (this one's without HTTP);
        503 unless together they cover every partition."""
        placement = self.placement()
        targets = hosts(placement, ref.topic)
        asked = [url for url in targets if not same_worker(url, placement.self_url)]
        answers: list[Awaitable[Any]] = [self.forwarder.get_json(url, path) for url in asked]
        if len(asked) < len(targets):
            answers.append(here())
        pages: list[dict[str, Any]] = list(await asyncio.gather(*answers))
        served = [p for page in pages for p in page.get("partitions", ())]
        check_coverage(served, ref.partitions, ref.topic)
        return pages

    async def get_workflows(self, request: web.Request) -> web.Response:
        path = "/api/internal/state-counts"
        pages = await self._fan_out(self.tables.counts, path, self._counts_page)
        counts: dict[str, int] = {}
        for page in pages:
            for key, count in page["counts"].items():
                counts[key] = counts.get(key, 0) + int(count)
        return _json({"workflows": workflow_rows(self.registry, counts)})

    async def internal_counts(self, request: web.Request) -> web.Response:
        return _json(await self._counts_page())

    async def _counts_page(self) -> dict[str, Any]:
        served = self._served(self.tables.counts)
        return {"counts": local_counts(self.tables.counts.items()), "partitions": served}

    # --- dead letters -------------------------------------------------------------------

    async def list_letters(self, request: web.Request) -> web.Response:
        """A read of the whole dead-letter topic, one at a time on this worker; requests
        for the same page while it runs share it (``http_letters``)."""
        stage, query = inputs.letters_query(request.query)
        read = partial(self.letters.page, stage, query)
        page = await _kafka(self._letter_reads.run((stage, query), read), "reading dead letters")
        return _json(page)

    async def _letter(self, request: web.Request) -> dict[str, Any]:
        """The one record at the id's ``partition:offset`` (one fetch)."""
        wanted = request.match_info["id"]
        place = parse_id(wanted)
        letter = None
        if place is not None:
            letter = await _kafka(self.letters.one(*place), "reading the dead letter")
        if letter is None:
            raise not_found(f"no dead letter {wanted[:40]!r} (ids are partition:offset)")
        return letter

    async def get_letter(self, request: web.Request) -> web.Response:
        return _json(letter_detail(await self._letter(request)))

    async def replay_letter(self, request: web.Request) -> web.Response:
        letter = await self._letter(request)
        try:
            await _kafka(self.letters.replay(letter), "replaying the dead letter")
        except ValueError as exc:  # unreadable, or only a prefix of the original kept
            raise bad_request(str(exc)) from exc
        return _json({"replayed": letter["id"], "topic": letter["source_topic"]}, status=202)


def _table(ref: TableRef) -> Table:
    if ref.table is None:  # routing sends nothing here for a table this worker lacks
        raise unavailable(f"this worker does not keep {ref.topic}")
    return ref.table


def _json(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(value, status=status, headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    """ASCII JSON: whatever a table holds (a lone surrogate of an older record included)
    encodes, so no stored value can make a GET fail."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


async def _kafka(call: Awaitable[T], doing: str) -> T:
    """``call``'s result; a broker failure or timeout is a 503 with ``Retry-After``."""
    try:
        return await call
    except KAFKA_FAILURES as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning("omninode api: Kafka failed %s: %s", doing, reason)
        raise unavailable(f"Kafka failed {doing} ({reason[:300]}); retry shortly") from exc
