"""The HTTP API without a broker: routing decisions, input checks, auth, cursors, and every
endpoint on aiohttp test servers over dict tables (two of them for forwarding).

The broker test, tests/test_http_api_kafka.py, runs the same API in two real workers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.partitioner import DefaultPartitioner

from app.cli.replay_cmd import journal_row as cli_journal_row
from app.core.interpreter import step
from app.core.ports import StoredInstance
from app.core.router import ChartRegistry
from app.infra import http_inputs as inputs
from app.infra.chart_files import read_chart
from app.infra.http_api import Api, TableRef, Tables
from app.infra.http_inputs import ListQuery
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
from app.infra.http_server import CONSOLE_DIR, mount
from app.infra.http_views import (
    JournalIndexer,
    history_page,
    index_key,
    list_page,
    merge_pages,
    view_row,
)
from app.infra.instance_store import encode_stored
from app.infra.kafka_client import partition_for
from app.infra.outbox import journal_record
from app.infra.projector_agent import stored_view
from app.infra.reducer_agent import partition_of
from app.infra.wire import decode_event, decode_journal, encode_journal
from app.spi.envelopes import Event
from app.spi.limits import Limits
from projectors.instances import project
from tests.conftest import ROOT

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
    assert page["records"][0] == cli_journal_row(decode_journal(records[0]))
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
        self.letters: list[dict[str, Any]] = []
        self.replayed: list[str] = []
        self.url = "http://127.0.0.1:1"
        self.owner: str | None = None  # None: this worker holds everything
        self.token = token

    def placement(self) -> Placement:
        owner = self.owner or self.url
        distribution = {owner: {t: list(range(PARTS)) for t in (*TOPICS, COUNTS_TOPIC)}}
        mine = [] if self.owner else [(t, p) for t in (*TOPICS, COUNTS_TOPIC) for p in range(PARTS)]
        return Placement(self.url, distribution, frozenset(mine), True)

    def api(self) -> Api:
        async def produce(key: bytes, value: bytes) -> int:
            self.produced.append((key, value))
            return partition_for(key, PARTS)

        async def read() -> list[dict[str, Any]]:
            return self.letters

        async def replay(letters: list[dict[str, Any]]) -> None:
            self.replayed += [d["id"] for d in letters]

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
            read,
            replay,
        )

    def app(self) -> web.Application:
        application = web.Application(client_max_size=4096)
        mount(application, self.api(), self.token, "s", lambda: self.url)
        return application


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
            refused = await client.post(f"/api/instances/order_fulfillment/{path}", data=body)
            assert refused.status == 400, path
            assert reason in (await refused.json())["message"], path
        too_big = await client.post(
            "/api/instances/order_fulfillment/o-1/events/PAY", data=b" " * 5000
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
    world.letters = [
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
        assert (await client.post("/api/deadletters/0:1/replay")).status == 202
        assert world.replayed == ["0:1"]
        assert (await client.post("/api/deadletters/9:9/replay")).status == 404
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

    _serve(world)(test)


def test_a_bug_is_a_short_json_500_never_a_traceback(tmp_path: Path) -> None:
    world = World()

    async def broken() -> list[dict[str, Any]]:
        raise RuntimeError("secret detail")

    async def test(client: TestClient) -> None:
        answer = await client.get("/api/deadletters")
        body = await answer.json()
        assert answer.status == 500 and body["error"] == "internal"
        assert "secret" not in body["message"] and "Traceback" not in json.dumps(body)

    world.letters = []
    api = world.api()
    api.read_letters = broken
    application = web.Application()
    mount(application, api, None, "s", lambda: world.url)

    async def run() -> None:
        async with TestClient(TestServer(application)) as client:
            await test(client)

    asyncio.run(run())
    assert CONSOLE_DIR.name == "console"
