"""The HTTP API without a broker: routing decisions, input checks, auth, cursors, and every
endpoint on aiohttp test servers over dict tables (two of them for forwarding).

The broker test, tests/test_http_api_kafka.py, runs the same API in two real workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from app.cli import runtime as cli_runtime
from app.core.interpreter import step
from app.core.ports import StoredInstance
from app.core.router import ChartRegistry
from app.infra import http_client, topics
from app.infra import http_inputs as inputs
from app.infra.chart_files import read_chart
from app.infra.http_api import Api, TableRef, Tables
from app.infra.http_commands import letter_page
from app.infra.http_guard import Guard
from app.infra.http_inputs import ListQuery
from app.infra.http_letters import letter_of, parse_id
from app.infra.http_openapi import OPENAPI
from app.infra.http_routing import (
    FORWARDED,
    Forward,
    Forwarder,
    HttpError,
    Local,
    Placement,
    check_coverage,
    hosts,
    route,
    same_worker,
)
from app.infra.http_server import CONSOLE_DIR, mount, producer
from app.infra.http_views import (
    JournalIndexer,
    history_page,
    index_key,
    journal_row,
    list_page,
    merge_pages,
    view_row,
)
from app.infra.instance_store import decode_stored, encode_stored
from app.infra.kafka_client import KafkaUnavailable, ReadIncomplete, Record, partition_for
from app.infra.outbox import journal_record
from app.infra.projector_agent import stored_view
from app.infra.reducer_agent import partition_of
from app.infra.settings import Settings
from app.infra.wire import (
    AvroDecodeError,
    decode_dead_letter,
    decode_event,
    decode_journal,
    encode_event,
    encode_journal,
)
from app.spi.envelopes import Event
from app.spi.limits import Limits, json_problem
from projectors.instances import project
from tests.conftest import ROOT
from tests.helpers import ListOutbox
from tests.table_reducer import Reducer as TableReducer

PARTS = 4
TOPICS = ("s-snapshots-changelog", "s-instance-views-changelog", "s-journal-index-changelog")
COUNTS_TOPIC = "s-state-counts-changelog"
REGISTRY = ChartRegistry(
    [
        read_chart(ROOT / "rss" / "order_fulfillment.yaml"),
        read_chart(ROOT / "rss" / "shipment.yaml"),
    ]
)
START = {"order_id": "o-1", "total": 40, "items": ["book"]}
JSON = {"Content-Type": "application/json"}


# --- routing ---------------------------------------------------------------------------


def _placement(
    owners: dict[int, str], me: str = "http://127.0.0.1:1", ready: bool = True
) -> Placement:
    topic = TOPICS[0]
    distribution: dict[str, dict[str, list[int]]] = {}
    for partition, url in owners.items():
        distribution.setdefault(url, {}).setdefault(topic, []).append(partition)
    actives = frozenset((topic, p) for p, url in owners.items() if same_worker(url, me))
    return Placement(me, distribution, actives, ready)


def test_the_router_partitions_keys_as_the_producers_and_the_reducer_do() -> None:
    every = list(range(8))
    for n in range(200):
        key = f"order_fulfillment:o-{n}".encode()
        faust_producer = DefaultPartitioner()(key, every, every)  # Faust's key_partition
        assert partition_for(key, 8) == faust_producer == partition_of(key, 8)


def test_route_answers_here_forwards_once_or_refuses_with_503() -> None:
    key = b"order_fulfillment:o-1"
    mine = partition_for(key, PARTS)
    here = _placement(dict.fromkeys(range(PARTS), "http://127.0.0.1:1"))
    assert route(here, TOPICS[0], PARTS, key, forwarded=False) == Local(mine)
    there = _placement(dict.fromkeys(range(PARTS), "http://10.0.0.2:6066"))
    assert route(there, TOPICS[0], PARTS, key, forwarded=False) == Forward(
        "http://10.0.0.2:6066", mine
    )
    with pytest.raises(HttpError) as twice:  # forwarded already: never again
        route(there, TOPICS[0], PARTS, key, forwarded=True)
    assert twice.value.status == 503 and twice.value.headers["Retry-After"] == "1"
    with pytest.raises(HttpError, match="no worker holds"):
        route(_placement({}), TOPICS[0], PARTS, key, forwarded=False)
    stale = _placement(dict.fromkeys(range(PARTS), "http://localhost:1"), ready=True)
    stale = Placement(stale.self_url, stale.distribution, frozenset(), True)
    with pytest.raises(HttpError, match="no worker holds"):  # "mine" but not active: 503
        route(stale, TOPICS[0], PARTS, key, forwarded=False)
    recovering = _placement(dict.fromkeys(range(PARTS), "http://127.0.0.1:1"), ready=False)
    with pytest.raises(HttpError, match="recovering"):
        route(recovering, TOPICS[0], PARTS, key, forwarded=False)


def test_fan_out_hosts_and_coverage() -> None:
    placement = _placement({0: "http://a:1", 1: "http://b:1", 2: "http://a:1", 3: "http://b:1"})
    assert hosts(placement, TOPICS[0]) == {"http://a:1": (0, 2), "http://b:1": (1, 3)}
    check_coverage([0, 1, 2, 3], PARTS, "t")
    with pytest.raises(HttpError, match=r"partitions \[3\]"):
        check_coverage([0, 1, 2], PARTS, "t")
    assert same_worker("http://localhost:6066/", "http://127.0.0.1:6066")
    assert not same_worker("http://127.0.0.1:6066", "http://127.0.0.1:6067")


# --- inputs ----------------------------------------------------------------------------


def test_cursors_round_trip_and_foreign_ones_are_400() -> None:
    after = (1_795_876_395_419, "order_fulfillment:o-7")
    assert inputs.decode_cursor(inputs.encode_cursor(after)) == after
    for bad in ("x", "!!!", inputs.encode_cursor((1, "k"))[:-3] + "AAA", "W10", "A" * 2000):
        with pytest.raises(HttpError) as refused:
            inputs.decode_cursor(bad)
        assert refused.value.status == 400


def test_list_query_limits_and_filters() -> None:
    assert inputs.list_query({}) == ListQuery(limit=50)
    query = inputs.list_query({"workflow": "shipment", "status": "done", "limit": "500"})
    assert (query.workflow, query.status, query.limit) == ("shipment", "done", 500)
    for bad in (
        {"limit": "501"},
        {"limit": "0"},
        {"limit": "x"},
        {"status": "sleeping"},
        {"workflow": "Bad-Name"},
        {"sort": "asc"},
        {"cursor": "zz"},
    ):
        with pytest.raises(HttpError) as refused:
            inputs.list_query(bad)
        assert refused.value.status == 400, bad


def test_bodies_are_plain_json_objects_within_the_limits() -> None:
    limits = Limits(event_bytes=1000, json_depth=3)
    assert inputs.json_object(b"", limits) == {}
    assert inputs.json_object(b'{"a": [1]}', limits) == {"a": [1]}
    cases = {
        b"{": "not JSON",
        b"[1]": "must be a JSON object",
        b'{"a": NaN}': "not plain JSON",
        b'{"a": {"b": {"c": {}}}}': "OMNINODE_MAX_JSON_DEPTH",
        b"[" * 100_000: "nested too deeply|OMNINODE_MAX_JSON_DEPTH",
    }
    for body, reason in cases.items():
        with pytest.raises(HttpError, match=reason) as refused:
            inputs.json_object(body[:100_000], Limits(event_bytes=200_000, json_depth=3))
        assert refused.value.status == 400
    with pytest.raises(HttpError) as large:
        inputs.json_object(b" " * 1001, limits)
    assert large.value.status == 413 and "OMNINODE_MAX_EVENT_BYTES" in large.value.message


def test_ids_keys_and_tokens() -> None:
    limits = Limits(key_bytes=20)
    assert inputs.instance_id("wf", "a/b c", limits) == "a/b c"
    for bad in ("", "a\nb", "x" * 30):
        with pytest.raises(HttpError):
            inputs.instance_id("wf", bad, limits)
    assert inputs.idempotency_key({"Idempotency-Key": "k-1"}) == "k-1"
    with pytest.raises(HttpError):
        inputs.idempotency_key({"Idempotency-Key": "x" * 201})
    inputs.check_token(None, None)
    inputs.check_token("Bearer s3cret", "s3cret")
    for given in (None, "Bearer wrong", "Basic s3cret", "s3cret"):
        with pytest.raises(HttpError) as refused:
            inputs.check_token(given, "s3cret")
        assert refused.value.status == 401


# --- the read models -------------------------------------------------------------------


def _journal(instance: str, events: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    chart, snapshot, out = REGISTRY.get("order_fulfillment"), None, []
    for n, (kind, payload) in enumerate(events, 1):
        event = Event(
            "order_fulfillment",
            instance,
            kind,
            f"{instance}-e{n}",
            f"2026-01-01T00:00:0{n}Z",
            payload,
        )
        result = step(chart, snapshot, event)
        snapshot = result.snapshot
        out.append(encode_journal(journal_record(event, result)))
    return out


def test_history_pages_come_from_the_index_and_match_the_cli_rows() -> None:
    views: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}
    indexer = JournalIndexer(index)
    records = _journal("o-1", [("$start", START), ("PAY", {"amount": 10}), ("PAY", {"amount": 40})])
    view = None
    for raw in [*records, records[1]]:  # a redelivered record is kept once
        asyncio.run(indexer.handle(b"order_fulfillment:o-1", raw, ("j", 0, 0)))
        view = project(view, decode_journal(raw)) or view
    assert view is not None
    views[b"order_fulfillment:o-1"] = stored_view(view)
    page = history_page(views, index, "order_fulfillment:o-1", 1, 2)
    assert page is not None
    assert [r["seq"] for r in page["records"]] == [1, 2] and page["next_from_seq"] == 3
    assert page["records"][0] == journal_row(decode_journal(records[0]))
    rest = history_page(views, index, "order_fulfillment:o-1", 3, 100)
    assert rest is not None and [r["seq"] for r in rest["records"]] == [3]
    assert rest["next_from_seq"] is None and rest["seq"] == 3
    del index[index_key("order_fulfillment:o-1", 1)]  # journaled before the index existed
    assert history_page(views, index, "order_fulfillment:o-1", 1, 10)["missing"] == [1]  # type: ignore[index]
    assert history_page(views, index, "order_fulfillment:o-2", 1, 10) is None


def _views(n: int) -> dict[bytes, bytes]:
    """Views of ``n`` instances; every three share an ``updated_at`` (the key breaks ties)."""
    views: dict[bytes, bytes] = {}
    for i in range(n):
        (raw,) = _journal(f"o-{i}", [("$start", {**START, "order_id": f"o-{i}"})])
        view = project(None, decode_journal(raw))
        assert view is not None
        at = f"2026-01-01T00:{i // 3:02d}:00Z"
        views[f"order_fulfillment:o-{i}".encode()] = stored_view(replace(view, updated_at=at))
    return views


def test_list_pages_are_newest_first_and_a_cursor_walks_every_instance_once() -> None:
    views = _views(10)
    items = list(views.items())
    halves = [dict(items[:5]), dict(items[5:])]  # two workers' partitions
    seen: list[str] = []
    after = None
    while True:
        query = ListQuery(limit=3, after=after)
        pages = [list_page(h.items(), query) for h in halves]
        merged = merge_pages(pages, 3)
        seen += [row["key"] for row in merged["instances"]]
        if merged["next_cursor"] is None:
            break
        after = inputs.decode_cursor(merged["next_cursor"])
    everything = sorted(
        (view_row(v) for v in views.values()),
        key=lambda r: (r["updated_at"], r["key"]),
        reverse=True,
    )
    assert seen == [row["key"] for row in everything]
    active = list_page(views.items(), ListQuery(status="done"))
    assert active["instances"] == []
    in_state = list_page(views.items(), ListQuery(state="awaiting_payment", limit=500))
    assert len(in_state["instances"]) == 10


# --- endpoints on aiohttp test servers -----------------------------------------------


class World:
    """One worker's API over dict tables; ``owners`` says who holds which partition."""

    def __init__(self, token: str | None = None) -> None:
        self.snapshots: dict[bytes, bytes] = {}
        self.views: dict[bytes, bytes] = {}
        self.index: dict[bytes, bytes] = {}
        self.counts: dict[bytes, bytes] = {
            b"order_fulfillment:(status:active)": b"2",
            b"order_fulfillment:awaiting_payment": b"2",
        }
        self.produced: list[tuple[bytes, bytes]] = []
        self.letters = FakeLetters()
        self.url = "http://127.0.0.1:1"
        self.owner: str | None = None  # None: this worker holds everything
        self.token = token
        self.guard: Guard | None = None  # None: mount's own (localhost, IPs, its host)
        self.seen: list[dict[str, str]] = []  # the headers of every request it got

    def placement(self) -> Placement:
        owner = self.owner or self.url
        distribution = {owner: {t: list(range(PARTS)) for t in (*TOPICS, COUNTS_TOPIC)}}
        mine = [] if self.owner else [(t, p) for t in (*TOPICS, COUNTS_TOPIC) for p in range(PARTS)]
        return Placement(self.url, distribution, frozenset(mine), True)

    def api(self) -> Api:
        async def produce(key: bytes, value: bytes) -> int:
            self.produced.append((key, value))
            return partition_for(key, PARTS)

        tables = Tables(
            TableRef(TOPICS[0], PARTS, self.snapshots),
            TableRef(TOPICS[1], PARTS, self.views),
            TableRef(TOPICS[2], PARTS, self.index),
            TableRef(COUNTS_TOPIC, PARTS, self.counts),
        )
        forwarder = Forwarder(lambda: self.url)
        return Api(
            REGISTRY,
            Limits(event_bytes=4096),
            tables,
            self.placement,
            forwarder,
            produce,
            self.letters,
        )

    def app(self, api: Api | None = None) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen.append(dict(request.headers))
            return await handler(request)  # type: ignore[no-any-return]

        application = web.Application(client_max_size=4096, middlewares=[record])
        mount(application, api or self.api(), self.token, "s", lambda: self.url, self.guard)
        return application


class FakeLetters:
    """The dead-letter topic as a list; counts reads, and ``gate`` holds a page read."""

    def __init__(self) -> None:
        self.letters: list[dict[str, Any]] = []
        self.replayed: list[str] = []
        self.pages: list[tuple[str | None, ListQuery]] = []
        self.running = 0
        self.most_running = 0
        self.gate: asyncio.Event | None = None
        self.failure: BaseException | None = None
        self.replay_failure: BaseException | None = None

    async def page(self, stage: str | None, query: ListQuery) -> dict[str, Any]:
        self.pages.append((stage, query))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.failure is not None:
                raise self.failure
            return letter_page(self.letters, stage, query)
        finally:
            self.running -= 1

    async def one(self, partition: int, offset: int) -> dict[str, Any] | None:
        if self.failure is not None:
            raise self.failure
        return next((d for d in self.letters if d["id"] == f"{partition}:{offset}"), None)

    async def replay(self, letter: dict[str, Any]) -> None:
        if (failure := self.failure or self.replay_failure) is not None:
            raise failure
        self.replayed.append(letter["id"])


def _serve(*worlds: World) -> Callable[[Callable[..., Awaitable[None]]], None]:
    async def run(test: Callable[..., Awaitable[None]]) -> None:
        clients = [TestClient(TestServer(w.app())) for w in worlds]
        for client, world in zip(clients, worlds, strict=True):
            await client.start_server()
            world.url = str(client.make_url("")).rstrip("/")
        try:
            await test(*clients)
        finally:
            for client in clients:
                await client.close()

    return lambda test: asyncio.run(run(test))


def _store(world: World, instance: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    chart, snapshot = REGISTRY.get("order_fulfillment"), None
    for n, (kind, payload) in enumerate(events, 1):
        event = Event(
            "order_fulfillment", instance, kind, f"{instance}-e{n}", "2026-01-01T00:00:00Z", payload
        )
        snapshot = step(chart, snapshot, event).snapshot
    assert snapshot is not None
    world.snapshots[f"order_fulfillment:{instance}".encode()] = encode_stored(
        StoredInstance(snapshot, ())
    )


def test_instances_events_and_their_errors_on_one_worker() -> None:
    world = World()
    _store(world, "o-1", [("$start", START)])

    async def test(client: TestClient) -> None:
        got = await client.get("/api/instances/order_fulfillment/o-1")
        assert got.status == 200 and (await got.json())["configuration"] == ["awaiting_payment"]
        assert got.headers["X-OmniNode-App"] == "s" and "X-OmniNode-Partition" in got.headers
        missing = await client.get("/api/instances/order_fulfillment/o-9")
        assert missing.status == 404
        assert await missing.json() == {
            "error": "not_found",
            "message": "no instance order_fulfillment:o-9",
        }
        assert (await client.get("/api/instances/nope/o-1")).status == 404
        started = await client.post(
            "/api/instances/order_fulfillment/o-2",
            json=START,
            headers={"Idempotency-Key": "start-o-2"},
        )
        assert started.status == 202
        answer = await started.json()
        assert answer["event_id"] == "start-o-2" and answer["duplicate"] is False
        ((key, value),) = world.produced
        assert key == b"order_fulfillment:o-2" and decode_event(value).payload == START
        again = await client.post("/api/instances/order_fulfillment/o-1", json=START)
        assert again.status == 409
        dup = await client.post(
            "/api/instances/order_fulfillment/o-1",
            json=START,
            headers={"Idempotency-Key": "o-1-e1"},
        )
        assert dup.status == 202 and (await dup.json())["duplicate"] is True
        for path, body, reason in (
            ("o-1/events/SHIP", b"{}", "declares its events"),
            ("o-1/events/PAY", b'{"amount": -1}', "fails its declared schema"),
            ("o-1/events/PAY", b"{oops", "not JSON"),
            ("o-1/events/$after.x.0", b"{}", "timer firing"),
            ("o-1/events/$start", b"{}", "POST /api/instances"),
            ("o-3", b'{"total": 1}', "order_id"),
        ):
            refused = await client.post(
                f"/api/instances/order_fulfillment/{path}", data=body, headers=JSON
            )
            assert refused.status == 400, path
            assert reason in (await refused.json())["message"], path
        too_big = await client.post(
            "/api/instances/order_fulfillment/o-1/events/PAY", data=b" " * 5000, headers=JSON
        )
        assert too_big.status == 413 and (await too_big.json())["error"] == "payload_too_large"
        assert len(world.produced) == 1  # nothing refused was produced
        paid = await client.post(
            "/api/instances/order_fulfillment/o-1/events/PAY", json={"amount": 40}
        )
        assert paid.status == 202 and len(world.produced) == 2

    _serve(world)(test)


def test_mutations_need_the_token_when_one_is_set() -> None:
    world = World(token="s3cret")

    async def test(client: TestClient) -> None:
        path = "/api/instances/order_fulfillment/o-5"
        refused = await client.post(path, json=START)
        assert refused.status == 401 and (await refused.json())["error"] == "unauthorized"
        wrong = await client.post(path, json=START, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        ok = await client.post(path, json=START, headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 202
        assert (
            await client.get("/api/instances/order_fulfillment/o-5")
        ).status == 404  # reads open

    _serve(world)(test)


def test_a_worker_forwards_to_the_owner_once_and_lists_merge_both() -> None:
    owner, other = World(), World()
    _store(owner, "o-1", [("$start", START)])
    owner.views.update(_views(4))
    other.views.update({})

    async def test(owner_client: TestClient, other_client: TestClient) -> None:
        other.owner = owner.url
        got = await other_client.get("/api/instances/order_fulfillment/o-1")
        assert got.status == 200 and got.headers["X-OmniNode-Served-By"] == owner.url
        posted = await other_client.post(
            "/api/instances/order_fulfillment/o-7", json=START, headers={"Idempotency-Key": "k7"}
        )
        assert posted.status == 202 and owner.produced and not other.produced
        loop = await other_client.get(
            "/api/instances/order_fulfillment/o-1", headers={FORWARDED: "http://elsewhere:1"}
        )
        assert loop.status == 503 and loop.headers["Retry-After"] == "1"
        listed = await other_client.get("/api/instances?limit=2")
        body = await listed.json()
        assert listed.status == 200 and len(body["instances"]) == 2 and body["next_cursor"]
        counts = await other_client.get("/api/workflows")
        (row,) = [
            w for w in (await counts.json())["workflows"] if w["workflow"] == "order_fulfillment"
        ]
        assert row["statuses"] == {"active": 2} and row["states"] == {"awaiting_payment": 2}
        assert "stateDiagram" in row["versions"][0]["mermaid"]

    _serve(owner, other)(test)


def test_dead_letters_operations_console_and_errors() -> None:
    world = World()
    world.letters.letters = [
        {
            "id": f"0:{n}",
            "stage": "step",
            "reason": "r",
            "source_topic": "s.events",
            "source_partition": 0,
            "source_offset": n,
            "key": b"k",
            "value": b"v",
            "failed_at": f"2026-01-01T00:00:0{n}Z",
            "value_truncated": False,
        }
        for n in range(3)
    ]

    async def test(client: TestClient) -> None:
        page = await (await client.get("/api/deadletters?limit=2")).json()
        assert [d["id"] for d in page["deadletters"]] == ["0:2", "0:1"] and page["next_cursor"]
        rest = await (await client.get(f"/api/deadletters?cursor={page['next_cursor']}")).json()
        assert [d["id"] for d in rest["deadletters"]] == ["0:0"]
        one = await (await client.get("/api/deadletters/0:1")).json()
        assert one["value"] == "76" and one["key"] == "6b"
        assert (await client.post("/api/deadletters/0:1/replay", headers=JSON)).status == 202
        assert world.letters.replayed == ["0:1"]
        assert (await client.post("/api/deadletters/9:9/replay", headers=JSON)).status == 404
        for strange in ("x", "0:1:2", "-1:2", "0:", ":1", "%D9%A3:1", "0:1%0A", "0:1%20"):
            assert (await client.get(f"/api/deadletters/{strange}")).status == 404, strange
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 200
        metrics = await client.get("/metrics")
        assert metrics.status == 200 and metrics.content_type == "text/plain"
        openapi = await (await client.get("/api/openapi.json")).json()
        assert "/api/instances/{workflow}/{id}/history" in openapi["paths"]
        svg = await client.get("/api/workflows/order_fulfillment/diagram.svg?active=charging")
        assert svg.status == 200 and (await svg.text()).lstrip().startswith("<")
        bad_state = await client.get("/api/workflows/order_fulfillment/diagram.svg?active=x")
        assert bad_state.status == 400
        index = await client.get("/")
        assert index.status == 200 and "text/html" in index.headers["Content-Type"]
        for escape in (
            "/console/../http_api.py",
            "/console/%2e%2e/http_api.py",
            "/console/..%2Fhttp_api.py",
            "/console/%2Fetc%2Fpasswd",
        ):
            assert (await client.get(escape)).status == 404, escape
        nowhere = await client.get("/api/nothing")
        assert nowhere.status == 404 and (await nowhere.json())["error"] == "not_found"
        wrong_method = await client.delete("/api/instances/order_fulfillment/o-1")
        assert wrong_method.status == 405
        assert set(wrong_method.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
        assert (await wrong_method.json())["error"] == "method_not_allowed"

    _serve(world)(test)


def test_a_bug_is_a_short_json_500_never_a_traceback(tmp_path: Path) -> None:
    world = World()
    world.letters.failure = RuntimeError("secret detail")

    async def test(client: TestClient) -> None:
        answer = await client.get("/api/deadletters")
        body = await answer.json()
        assert answer.status == 500 and body["error"] == "internal"
        assert "secret" not in body["message"] and "Traceback" not in json.dumps(body)

    application = web.Application()
    mount(application, world.api(), None, "s", lambda: world.url)

    async def run() -> None:
        async with TestClient(TestServer(application)) as client:
            await test(client)

    asyncio.run(run())
    assert CONSOLE_DIR.name == "console"


# --- browsers: DNS rebinding, cross-site POSTs, framing ----------------------------------

AUTH = {"Authorization": "Bearer s3cret"}
PAY = "/api/instances/order_fulfillment/o-1/events/PAY"


def test_a_host_the_worker_is_not_known_by_is_421() -> None:
    world = World()
    _store(world, "o-1", [("$start", START)])

    async def test(client: TestClient) -> None:
        port = client.server.port
        path = "/api/instances/order_fulfillment/o-1"
        for host in (
            "evil.example",
            f"evil.example:{port}",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "a b",
            "[zz]",
            "x/y",
            "évil.example",
        ):
            got = await client.get(path, headers={"Host": host})
            assert got.status == 421, host
            body = await got.json()
            assert (
                body["error"] == "misdirected_request" and "OMNINODE_API_HOSTS" in body["message"]
            )
            assert got.headers["X-Content-Type-Options"] == "nosniff"
        posted = await client.post(PAY, json={"amount": 1}, headers={"Host": "evil.example"})
        assert posted.status == 421 and world.produced == []
        for host in (
            f"localhost:{port}",
            "LOCALHOST.",
            f"127.0.0.1:{port}",
            "[::1]:80",
            "10.1.2.3:6066",
            "[2001:db8::1]",
        ):
            assert (await client.get(path, headers={"Host": host})).status == 200, host

    _serve(world)(test)


def test_the_allow_list_of_hosts() -> None:
    assert Guard.of(lambda: "http://w:1", "0.0.0.0", "").listed == frozenset()
    hosts = Settings.from_env({"OMNINODE_API_HOSTS": " A.example., b"}).api_hosts
    listed = Guard.of(lambda: "http://w:1", "0.0.0.0", hosts)
    assert listed.listed == {"a.example", "b"} and not listed.any_host
    assert all(listed.known(h) for h in ("a.example", "b", "w", "localhost", "10.0.0.1", "::1"))
    assert not listed.known("c.example") and not listed.known("0.0.0.0.example")
    anything = Guard.of(lambda: "http://w:1", "127.0.0.1", "*")
    assert anything.any_host and anything.known("c.example")
    bound = Guard(lambda: "http://w:1", "api.internal")
    assert bound.known("api.internal") and bound.known("w")
    world = World()
    world.guard = Guard(lambda: world.url, listed=frozenset({"console.example"}))
    _store(world, "o-1", [("$start", START)])

    async def test(client: TestClient) -> None:
        path = "/api/instances/order_fulfillment/o-1"
        assert (await client.get(path, headers={"Host": "console.example"})).status == 200
        assert (await client.get(path, headers={"Host": "other.example"})).status == 421
        # A proxy that sends Host 127.0.0.1: the page's origin is a listed name.
        proxied = await client.post(
            PAY, json={"amount": 1}, headers={"Origin": "https://console.example"}
        )
        assert proxied.status == 202

    _serve(world)(test)


def test_a_post_must_be_json_and_come_from_the_served_origin() -> None:
    world = World(token="s3cret")
    _store(world, "o-1", [("$start", START)])

    async def test(client: TestClient) -> None:
        port = client.server.port
        body = b'{"amount": 1}'
        for kind in (
            None,
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/octet-stream",
        ):
            headers = {**AUTH, **({} if kind is None else {"Content-Type": kind})}
            refused = await client.post(
                PAY, data=body, headers=headers, skip_auto_headers=["Content-Type"]
            )
            assert refused.status == 415, kind
            assert (await refused.json())["error"] == "unsupported_media_type"
        for site in ("cross-site", "same-site", "CROSS-SITE", "elsewhere"):
            refused = await client.post(
                PAY, json={"amount": 1}, headers={**AUTH, "Sec-Fetch-Site": site}
            )
            assert refused.status == 403 and (await refused.json())["error"] == "forbidden", site
        for origin in (
            "http://evil.example",
            "null",
            f"http://localhost:{port + 1}",
            f"http://127.0.0.1:{port + 1}",
            f"http://127.0.0.1:{port}.evil.example",
            "127.0.0.1",
        ):
            refused = await client.post(PAY, json={"amount": 1}, headers={**AUTH, "Origin": origin})
            assert refused.status == 403, origin
        # Cross-site first: a page elsewhere learns 403, not whether its token guess was right.
        crossed = await client.post(PAY, json={}, headers={"Sec-Fetch-Site": "cross-site"})
        assert crossed.status == 403
        assert world.produced == []  # nothing refused was produced
        own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
        for headers in (
            {**AUTH, **JSON},
            {**AUTH, "Content-Type": "Application/JSON; charset=utf-8"},
            {**AUTH, **JSON, **own},
            {**AUTH, **JSON, "Sec-Fetch-Site": "none"},
            {**AUTH, **JSON, "Origin": f"HTTP://127.0.0.1:{port}"},
        ):
            sent = await client.post(PAY, data=body, headers=headers)
            assert sent.status == 202, headers
        assert len(world.produced) == 5
        # Reads are not refused for where they come from (no CORS: a page elsewhere cannot
        # read the answer), and a wrong method is still its 405.
        got = await client.get("/api/instances/order_fulfillment/o-1", headers=own)
        assert got.status == 200
        wrong = await client.put(PAY, data=b"x", headers={"Sec-Fetch-Site": "cross-site"})
        assert wrong.status == 405
        preflight = await client.options(PAY, headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in preflight.headers

    _serve(world)(test)


def test_every_answer_says_nosniff_and_the_console_cannot_be_framed() -> None:
    world = World()

    async def test(client: TestClient) -> None:
        for path in ("/api/instances?limit=1", "/api/nothing", "/healthz", "/api/openapi.json"):
            answer = await client.get(path)
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path
            assert answer.headers["X-Frame-Options"] == "DENY", path
            assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'", path
        for path in ("/", "/console/console.js", "/console/console.css"):
            answer = await client.get(path)
            assert answer.status == 200, path
            policy = answer.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
            assert answer.headers["X-Frame-Options"] == "DENY", path
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path

    _serve(world)(test)


def test_a_forwarded_post_carries_the_owners_host_and_passes_its_checks() -> None:
    owner, other = World(token="s3cret"), World(token="s3cret")

    async def test(owner_client: TestClient, other_client: TestClient) -> None:
        other.owner = owner.url
        port = other_client.server.port
        page = {
            "Host": f"localhost:{port}",
            "Origin": f"http://localhost:{port}",
            "Sec-Fetch-Site": "same-origin",
            "Idempotency-Key": "k-9",
        }
        posted = await other_client.post(
            "/api/instances/order_fulfillment/o-9", json=START, headers={**AUTH, **page}
        )
        assert posted.status == 202, await posted.text()
        assert posted.headers["X-OmniNode-Served-By"] == owner.url and owner.produced
        forwarded = owner.seen[-1]
        assert forwarded["Host"] == owner.url.removeprefix("http://")
        assert "Origin" not in forwarded and "Sec-Fetch-Site" not in forwarded
        assert forwarded["Content-Type"] == "application/json"
        assert forwarded["Idempotency-Key"] == "k-9" and forwarded[FORWARDED] == other.url

    _serve(owner, other)(test)


# --- strings that are not UTF-8 ------------------------------------------------------------


async def _raw(client: TestClient, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are (a header that is not UTF-8); the status and JSON body."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_lone_surrogates_are_refused_and_stored_ones_never_break_a_get() -> None:
    assert "lone surrogate U+D800" in str(json_problem({"note": "\ud800"}, 5))
    assert "lone surrogate" in str(json_problem({"a": [{"\udfff": 1}]}, 5))
    assert json_problem({"é": ["😀", "\u2028"]}, 5) is None
    for check in (
        lambda: inputs.instance_id("wf", "o-\udcff", Limits()),
        lambda: inputs.event_type("PAY\ud800"),
        lambda: inputs.idempotency_key({"Idempotency-Key": "k\udcff"}),
        lambda: inputs.list_query({"state": "a\ud800"}),
        lambda: inputs.letters_query({"stage": "step\udcff"}),
        lambda: inputs.json_object(b'{"note": "\\ud800"}', Limits()),
        lambda: inputs.json_object(b'{"\\udc00": 1}', Limits()),
        lambda: inputs.decode_cursor(inputs.encode_cursor((1, "k\\ud800"))[:-1] + "é"),
    ):
        with pytest.raises(HttpError) as refused:
            check()
        assert refused.value.status == 400
    world = World(token="s3cret")
    _store(world, "o-1", [("$start", START)])
    key = b"order_fulfillment:o-1"
    stored = decode_stored(world.snapshots[key]).snapshot
    odd = replace(stored, data={**stored.data, "note": "\ud800 é"})  # an older record's
    world.snapshots[key] = encode_stored(StoredInstance(odd, ()))

    async def test(client: TestClient) -> None:
        for body in (b'{"note": "\\ud800"}', b'{"\\udfff": 1}', b'{"a": ["\\udc80"]}'):
            refused = await client.post(PAY, data=body, headers={**AUTH, **JSON})
            assert refused.status == 400, body
            assert "lone surrogate" in (await refused.json())["message"]
        got = await client.get("/api/instances/order_fulfillment/o-1")
        assert got.status == 200 and (await got.json())["data"]["note"] == "\ud800 é"
        assert (await got.read()).isascii()
        head = (
            b"POST " + PAY.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n"
        )
        status, body = await _raw(client, head + b"Authorization: Bearer \xff\xfe\r\n\r\n{}")
        assert status == 401 and body["error"] == "unauthorized"
        status, body = await _raw(client, head + b"Authorization: \xc3\r\n\r\n{}")
        assert status == 401
        key_bytes = b"Authorization: Bearer s3cret\r\nIdempotency-Key: k-\xff\r\n\r\n{}"
        status, body = await _raw(client, head + key_bytes)
        assert status == 400 and "Idempotency-Key" in body["message"]
        for path in ("o-%ED%A0%80", "o-%FF", "o-1/events/P%FFAY"):
            answer = await client.post(
                f"/api/instances/order_fulfillment/{path}", json={}, headers=AUTH
            )
            assert answer.status in (400, 404), path  # refused, never a 500
            got = await client.get(f"/api/instances/order_fulfillment/{path}")
            assert got.status in (400, 404, 405), path  # events take only POST
        assert world.produced == []

    _serve(world)(test)


def test_the_reducer_dead_letters_a_payload_with_a_lone_surrogate() -> None:
    """The payload travels as JSON text in the Avro record, where ``\\ud800`` is ASCII, so
    the record encodes; decoding refuses it (json_problem), and the reducer dead-letters it
    at decode instead of applying it."""
    outbox = ListOutbox()
    snapshots: dict[bytes, bytes] = {}
    agent = TableReducer(REGISTRY, snapshots, {}, outbox)
    event = Event(
        "order_fulfillment", "o-s", "$start", "e1", "2026-01-01T00:00:00Z", {**START, "n": "\ud800"}
    )
    value = encode_event(event)
    with pytest.raises(AvroDecodeError, match="lone surrogate"):
        decode_event(value)
    asyncio.run(agent.handle(event.key.encode(), value, ("s.events", 0, 3)))
    assert snapshots == {}
    (letter,) = [decode_dead_letter(v) for v in outbox.on(topics.DEAD_LETTERS)]
    assert letter["stage"] == "decode" and "lone surrogate" in letter["reason"]


# --- dead letters: one read at a time, Kafka failures ---------------------------------------


def _letters(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"0:{i}",
            "stage": "step" if i % 2 else "decode",
            "reason": "r",
            "source_topic": "s.events",
            "source_partition": 0,
            "source_offset": i,
            "key": b"k",
            "value": b"v" * 100,
            "failed_at": f"2026-01-01T00:00:{i:02d}Z",
            "value_truncated": False,
        }
        for i in range(n)
    ]


def test_a_letter_page_keeps_only_its_rows_and_walks_every_letter_once() -> None:
    letters = _letters(25)
    seen: list[str] = []
    after = None
    while True:
        page = letter_page(iter(letters), "step", ListQuery(limit=4, after=after))
        assert all("value" not in row for row in page["deadletters"])
        seen += [row["id"] for row in page["deadletters"]]
        if page["next_cursor"] is None:
            break
        after = inputs.decode_cursor(page["next_cursor"])
    assert seen == [f"0:{i}" for i in range(23, 0, -2)]
    exact = letter_page(letters[:4], None, ListQuery(limit=4))
    assert len(exact["deadletters"]) == 4 and exact["next_cursor"] is None


def test_letter_ids_and_unreadable_records() -> None:
    assert parse_id("3:17") == (3, 17)
    for bad in ("3", "3:", ":1", "a:1", "1:b", "1:2:3", "-1:2", "٣:1", "1" * 10 + ":1"):
        assert parse_id(bad) is None, bad
    record = Record("s.dead-letters", 2, 9, b"k", b"\x00junk")
    letter = letter_of("s.dead-letters", record)
    assert letter["id"] == "2:9" and letter["stage"] == "unreadable"
    assert letter["source_offset"] == 9 and letter["value"] == b"\x00junk"


def test_dead_letter_lists_are_one_read_at_a_time_and_share_a_running_one() -> None:
    world = World()
    world.letters.letters = _letters(5)

    async def test(client: TestClient) -> None:
        letters = world.letters
        letters.gate = asyncio.Event()
        same = [asyncio.ensure_future(client.get("/api/deadletters?limit=2")) for _ in range(3)]
        other = asyncio.ensure_future(client.get("/api/deadletters?limit=1"))
        for _ in range(200):
            if letters.pages:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(letters.pages) == 1  # the other query waits its turn
        letters.gate.set()
        answers = await asyncio.gather(*same, other)
        bodies = [await a.json() for a in answers]
        assert all(a.status == 200 for a in answers)
        assert bodies[0] == bodies[1] == bodies[2] and len(bodies[0]["deadletters"]) == 2
        assert len(bodies[3]["deadletters"]) == 1
        assert [q.limit for _, q in letters.pages] == [2, 1] and letters.most_running == 1
        again = await client.get("/api/deadletters?limit=2")  # finished: a new read
        assert again.status == 200 and len(letters.pages) == 3

    _serve(world)(test)


def test_kafka_failures_are_503_with_retry_after() -> None:
    world = World(token="s3cret")
    world.letters.letters = _letters(2)
    _store(world, "o-1", [("$start", START)])
    failures: list[BaseException] = [
        KafkaUnavailable("localhost:9092: connection refused"),
        ReadIncomplete("partition 0 read to 3 of 9 after 30s"),
        KafkaConnectionError("down"),
        KafkaTimeoutError(),
        TimeoutError(),
    ]

    async def test(client: TestClient) -> None:
        for failure in failures:
            world.letters.failure = failure
            for method, path in (
                ("GET", "/api/deadletters"),
                ("GET", "/api/deadletters/0:1"),
                ("POST", "/api/deadletters/0:1/replay"),
            ):
                answer = await client.request(method, path, headers={**AUTH, **JSON})
                assert answer.status == 503, (failure, path)
                assert answer.headers["Retry-After"] == "1"
                assert (await answer.json())["error"] == "unavailable"
        world.letters.failure = None
        world.letters.replay_failure = ValueError("cannot replay 0:1: only a prefix")
        refused = await client.post("/api/deadletters/0:1/replay", headers={**AUTH, **JSON})
        assert refused.status == 400 and "prefix" in (await refused.json())["message"]

    _serve(world)(test)


def test_a_post_kafka_does_not_acknowledge_is_503() -> None:
    world = World()
    _store(world, "o-1", [("$start", START)])
    api = world.api()
    raised: list[BaseException] = []

    async def produce(key: bytes, value: bytes) -> int:
        raise raised[-1]

    api.produce = produce

    async def run() -> None:
        async with TestClient(TestServer(world.app(api))) as client:
            for failure in (TimeoutError(), KafkaTimeoutError(), KafkaUnavailable("down")):
                raised.append(failure)
                answer = await client.post(
                    PAY, json={"amount": 1}, headers={"Idempotency-Key": "pay-1"}
                )
                body = await answer.json()
                assert answer.status == 503 and answer.headers["Retry-After"] == "1"
                assert "Idempotency-Key" in body["message"]

    asyncio.run(run())


def test_the_producer_waits_for_the_acknowledgement_a_bounded_time() -> None:
    class Topic:
        def __init__(self) -> None:
            self.pending: list[asyncio.Future[Any]] = []

        async def send(self, key: bytes, value: bytes) -> asyncio.Future[Any]:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending.append(future)
            return future

    async def run() -> None:
        topic = Topic()
        produce = producer(topic, timeout_s=0.05)
        with pytest.raises(TimeoutError):
            await produce(b"k", b"v")
        assert not topic.pending[0].cancelled()  # the send goes on: it may still land
        task = asyncio.ensure_future(produce(b"k", b"v"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        topic.pending[1].set_result(type("Metadata", (), {"partition": 3})())
        assert await task == 3

    asyncio.run(run())


# --- fan-outs, scans ---------------------------------------------------------------------


def test_a_partition_answered_twice_is_503() -> None:
    with pytest.raises(HttpError, match=r"partitions \[1\] .* two workers") as twice:
        check_coverage([0, 1, 1, 2, 3], PARTS, "t")
    assert twice.value.status == 503
    one, two = World(), World()
    every = {t: list(range(PARTS)) for t in (*TOPICS, COUNTS_TOPIC)}

    def both() -> Placement:  # both think they hold every partition (a rebalance)
        mine = frozenset((t, p) for t in (*TOPICS, COUNTS_TOPIC) for p in range(PARTS))
        return Placement(one.url, {one.url: every, two.url: every}, mine, True)

    one.placement = both  # type: ignore[method-assign]

    async def test(one_client: TestClient, two_client: TestClient) -> None:
        counts = await one_client.get("/api/workflows")
        assert counts.status == 503 and "two workers" in (await counts.json())["message"]
        assert (await one_client.get("/api/instances")).status == 503

    _serve(one, two)(test)


class Exploding(dict[bytes, bytes]):
    """A table whose scan fails as a Faust table does when its partitions move."""

    def __init__(self, on_scan: Callable[[], None]) -> None:
        super().__init__()
        self.on_scan = on_scan

    def items(self) -> Any:
        self.on_scan()
        raise RuntimeError("dictionary changed size during iteration")


def test_a_scan_that_fails_is_503_only_when_the_partitions_moved() -> None:
    world = World()
    moved = [False]

    def placement() -> Placement:
        base = World.placement(world)
        return replace(base, actives=frozenset()) if moved[0] else base

    world.placement = placement  # type: ignore[method-assign]
    world.views = Exploding(lambda: None)

    async def test(client: TestClient) -> None:
        bug = await client.get("/api/instances")
        assert bug.status == 500 and (await bug.json())["error"] == "internal"

    _serve(world)(test)
    moved[0] = False
    world.views = Exploding(lambda: moved.__setitem__(0, True))

    async def moving(client: TestClient) -> None:
        answer = await client.get("/api/instances")
        assert answer.status == 503 and "moved" in (await answer.json())["message"]

    _serve(world)(moving)


# --- the CLI's client ------------------------------------------------------------------------


def _answer(status: int, body: Any) -> http_client.Answer:
    return http_client.Answer(status, body, "http://api", "http://w", "0", 0.001)


def test_cli_history_asks_the_topic_when_the_api_cannot_answer_for_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings.from_env({})
    snapshot = "/api/instances/order_fulfillment/o-1"
    pages: dict[str, http_client.Answer] = {}

    def get(_: Settings, path: str) -> http_client.Answer:
        return pages[path.split("?", maxsplit=1)[0]]

    monkeypatch.setattr(http_client, "get", get)
    row = {"seq": 1}
    page = {"seq": 1, "records": [row], "missing": [], "next_from_seq": None}
    pages[snapshot] = _answer(200, {"seq": 1})
    pages[snapshot + "/history"] = _answer(200, page)
    assert http_client.history(settings, "order_fulfillment", "o-1")[0] == [row]
    pages[snapshot] = _answer(404, {"error": "not_found"})  # gone or not there: the pages say
    assert http_client.history(settings, "order_fulfillment", "o-1")[0] == [row]
    pages[snapshot] = _answer(200, {"seq": 2})  # the index lags the reducer
    with pytest.raises(http_client.ApiUnavailable, match="ends at seq 1, the snapshot is at seq 2"):
        http_client.history(settings, "order_fulfillment", "o-1")
    pages[snapshot + "/history"] = _answer(404, {"error": "not_found"})
    with pytest.raises(http_client.ApiUnavailable, match="no journal"):
        http_client.history(settings, "order_fulfillment", "o-1")


def test_cli_history_reads_the_topic_after_an_api_404(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [decode_journal(raw) for raw in _journal("o-1", [("$start", START)])]
    asked: list[str] = []

    def history(*_: Any) -> Any:
        raise http_client.ApiUnavailable("the API has no journal of order_fulfillment:o-1 (yet)")

    async def read_history(settings: Settings, workflow: str, instance: str) -> Any:
        asked.append(f"{workflow}:{instance}")
        return records

    monkeypatch.setattr(cli_runtime.api, "history", history)
    monkeypatch.setattr(cli_runtime, "read_history", read_history)
    args = argparse.Namespace(
        workflow="order_fulfillment", instance_id="o-1", json=True, verbose=True
    )
    assert cli_runtime._history(args) == 0
    out, err = capsys.readouterr()
    assert asked == ["order_fulfillment:o-1"] and json.loads(out)["seq"] == 1
    assert "reading the journal topic instead" in err


def test_the_cli_client_reads_an_answer_only_up_to_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"x": "a" * 5000}).encode()
            self.send_response(200)
            self.send_header("X-OmniNode-App", "omninode")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
            sent.append(len(body))

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = Settings.from_env({"OMNINODE_API_URL": url})
        assert http_client.get(settings, "/x").body == {"x": "a" * 5000}
        monkeypatch.setattr(http_client, "MAX_ANSWER_BYTES", 1000)
        with pytest.raises(http_client.ApiUnavailable, match="answered 200"):
            http_client.get(settings, "/x")
    finally:
        server.shutdown()
        server.server_close()
    assert len(sent) == 2


# --- the small ones ------------------------------------------------------------------------


def test_patterns_match_whole_inputs_and_limits_say_what_they_check() -> None:
    for bad in ("order_fulfillment\n", "order_fulfillment\r\n", "Order", "a" * 129):
        with pytest.raises(HttpError):
            inputs.workflow_name(bad)
        with pytest.raises(HttpError):
            inputs.list_query({"workflow": bad})
    assert inputs.history_query({"from_seq": str(2**53)}) == (2**53, 100)
    assert inputs.history_query({"from_seq": "1000000000"})[0] == 1_000_000_000
    with pytest.raises(HttpError, match=f"from 1 to {2**53}, not '{2**53 + 1}'"):
        inputs.history_query({"from_seq": str(2**53 + 1)})
    with pytest.raises(HttpError, match="from 1 to 1000"):
        inputs.history_query({"limit": "1001"})


def test_the_openapi_document_names_every_answer() -> None:
    for path, operations in OPENAPI["paths"].items():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"421", "500"} <= set(answers), (path, method)
            if method == "post":
                assert {"400", "401", "403", "404", "415", "503"} <= set(answers), path
                assert operation["requestBody"]["content"].keys() == {"application/json"}
            if "503" in answers:
                assert "Retry-After" in answers["503"]["headers"]
    reads = ("/api/instances", "/api/instances/{workflow}/{id}", "/api/deadletters")
    for path in reads:
        assert {"400", "503"} <= set(OPENAPI["paths"][path]["get"]["responses"]) or path.endswith(
            "{id}"
        )
    assert "503" in OPENAPI["paths"]["/api/workflows"]["get"]["responses"]
    assert "503" in OPENAPI["paths"]["/api/deadletters/{id}"]["get"]["responses"]


def test_a_forwarded_answer_keeps_its_headers_and_no_empty_content_type() -> None:
    async def bare(request: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers={"Allow": "GET"})

    async def run() -> None:
        target = web.Application()
        target.router.add_get("/x", bare)
        async with TestClient(TestServer(target)) as server_client:
            url = str(server_client.make_url("")).rstrip("/")
            front = web.Application()
            forwarder = Forwarder(lambda: "http://127.0.0.1:1")

            async def forward(request: web.Request) -> web.StreamResponse:
                return await forwarder.forward(request, url, None)

            front.router.add_get("/x", forward)
            async with TestClient(TestServer(front)) as client:
                answer = await client.get("/x")
                assert answer.status == 204 and answer.headers.get("Content-Type") != ""
                assert answer.headers["Allow"] == "GET"
            await forwarder.close()

    asyncio.run(run())
