"""The HTTP API in two ``faust -A app.main worker`` processes on a real broker.

Every endpoint is asked through either worker, and the one that holds the instance's
partition answers (``X-OmniNode-Served-By``), on the partition its snapshot's changelog
records are on; 404, 400, 401 and 409 change nothing; an ``Idempotency-Key`` sent twice,
through both workers, is applied once; lists and counts cover both workers' partitions;
``omninode status`` and ``history`` read through the API and say so with ``--verbose``.
Prints the GET latencies it measured (answered here, and forwarded).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.infra.control import new_event, read_snapshot, send_events
from app.infra.kafka_client import read_topic
from app.infra.worker_process import WorkerProcess, free_port, worker_environment
from tests.conftest import ROOT, Deployment
from tests.helpers import until

pytestmark = pytest.mark.kafka

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IDS = [f"o-{n}" for n in range(8)]
Reply = tuple[int, Any, dict[str, str]]


def call(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> Reply:
    """One request; a POST says Content-Type: application/json unless ``headers`` name
    another (urllib's default, a form, is refused with 415)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if method == "POST" else {}
    sent.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            status, raw, got = answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    kind = got.get("Content-Type", "")
    return status, json.loads(raw) if "json" in kind else raw.decode(), dict(got)


def _start(i: str) -> dict[str, Any]:
    return {"order_id": i, "total": 40, "items": ["book"]}


def _both_ready(workers: list[WorkerProcess]) -> bool:
    """Both answer /readyz and each holds snapshot partitions (the group has settled)."""
    for worker in workers:
        status, body, _ = call(worker.api_url + "/readyz")
        if status != 200 or not any(
            "-snapshots-changelog:" in p for p in body["active_partitions"]
        ):
            return False
    return True


def test_every_endpoint_through_either_worker(deployment: Deployment) -> None:
    env = {"OMNINODE_API_TOKEN": TOKEN}
    workers = [deployment.worker(name, **env) for name in ("a", "b")]
    for worker in workers:
        worker.wait_ready()
    assert until(lambda: _both_ready(workers)), deployment.logs()
    urls = [w.api_url for w in workers]
    base = "/api/instances/order_fulfillment"
    applied_before = _metric(urls, "omninode_events_total", outcome="applied")

    # Writes: 401 without the token, 400 and 404 with nothing produced, then 202s.
    assert call(urls[0] + f"{base}/o-0", "POST", _start("o-0"))[0] == 401
    _browser_checks(urls[1], f"{base}/o-0")
    assert call(urls[1] + f"{base}/o-0", "POST", b"{not json", AUTH)[0] == 400
    assert call(urls[1] + f"{base}/o-0", "POST", {"total": 1}, AUTH)[0] == 400  # no order_id
    assert call(urls[0] + "/api/instances/nope/o-0", "POST", {}, AUTH)[0] == 404
    for n, i in enumerate(IDS):
        status, body, _ = call(
            urls[n % 2] + f"{base}/{i}",
            "POST",
            _start(i),
            {**AUTH, "Idempotency-Key": f"{i}:start"},
        )
        assert status == 202 and body["event_id"] == f"{i}:start", body
    assert until(lambda: all(call(urls[0] + f"{base}/{i}")[0] == 200 for i in IDS))
    again = call(
        urls[1] + f"{base}/o-0", "POST", _start("o-0"), {**AUTH, "Idempotency-Key": "o-0:start"}
    )
    assert again[0] == 202 and again[1]["duplicate"] is True
    assert call(urls[1] + f"{base}/o-0", "POST", _start("o-0"), AUTH)[0] == 409
    assert call(urls[0] + f"{base}/o-0/events/SHIP_IT", "POST", {}, AUTH)[0] == 400

    # One PAY per instance, sent twice through both workers with one Idempotency-Key.
    for i in IDS:
        for url in urls:
            status, _, _ = call(
                url + f"{base}/{i}/events/PAY",
                "POST",
                {"amount": 40},
                {**AUTH, "Idempotency-Key": f"{i}:pay"},
            )
            assert status == 202
    assert until(lambda: all(call(urls[1] + f"{base}/{i}")[1]["seq"] >= 2 for i in IDS))
    # The metrics moved with the events: every $start and PAY applied, summed over workers;
    # the second PAY of each pair was a duplicate.
    applied = _metric(urls, "omninode_events_total", outcome="applied") - applied_before
    assert applied >= 2 * len(IDS)
    assert _metric(urls, "omninode_step_seconds_count") >= 2 * len(IDS)
    assert _metric(urls, "omninode_commands_total", name="charge_card") >= len(IDS)

    # Reads through either worker: the same answer, from the partition's owner.
    changelog = deployment.run(
        read_topic(deployment.settings, deployment.settings.changelog_topic("snapshots"))
    )
    partition_of = {r.key.decode(): r.partition for r in changelog if r.key}
    served_by: set[tuple[str, str]] = set()
    for i in IDS:
        answers = [call(url + f"{base}/{i}") for url in urls]
        assert answers[0][1] == answers[1][1] and answers[0][1]["instance_id"] == i
        owner = {a[2]["X-OmniNode-Served-By"] for a in answers}
        assert len(owner) == 1
        assert int(answers[0][2]["X-OmniNode-Partition"]) == partition_of[f"order_fulfillment:{i}"]
        served_by |= {
            (url, a[2]["X-OmniNode-Served-By"]) for url, a in zip(urls, answers, strict=True)
        }
        pages = [call(url + f"{base}/{i}/history") for url in urls]
        assert pages[0][1] == pages[1][1]
        records = pages[0][1]["records"]
        assert [r["event"]["type"] for r in records if not r["ignored"]].count("PAY") == 1
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert any(url != by for url, by in served_by), "no request was forwarded"
    assert call(urls[0] + f"{base}/nobody")[0] == 404
    assert call(urls[1] + f"{base}/nobody/history")[0] == 404
    _lists_and_counts(urls)
    _dead_letters(deployment, urls)
    _operations(urls)
    _cli_reads_through_the_api(deployment, urls[1])
    _measure(urls)


def _metric(urls: list[str], metric: str, **labels: str) -> float:
    """A metric summed over the workers' /metrics and over the samples with these labels."""
    total = 0.0
    for url in urls:
        status, text, _ = call(url + "/metrics")
        assert status == 200
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                wanted = all(sample.labels.get(k) == v for k, v in labels.items())
                if sample.name == metric and wanted:
                    total += sample.value
    return total


def _lists_and_counts(urls: list[str]) -> None:
    for url in urls:
        keys, cursor = [], ""
        while True:
            status, page, _ = call(
                url + f"/api/instances?workflow=order_fulfillment&limit=3{cursor}"
            )
            assert status == 200, page
            keys += [row["key"] for row in page["instances"]]
            if page["next_cursor"] is None:
                break
            cursor = f"&cursor={page['next_cursor']}"
        assert sorted(keys) == sorted(f"order_fulfillment:{i}" for i in IDS)
        assert call(url + "/api/instances?status=done")[1]["instances"] == []
        assert call(url + "/api/instances?limit=999")[0] == 400

    def counted() -> bool:
        rows = [call(url + "/api/workflows")[1]["workflows"] for url in urls]
        mine = [next(w for w in r if w["workflow"] == "order_fulfillment") for r in rows]
        return all(sum(m["statuses"].values()) == len(IDS) for m in mine)

    assert until(counted)


def _dead_letters(deployment: Deployment, urls: list[str]) -> None:
    stray = new_event("order_fulfillment", "ghost", "PAY", {"amount": 1}, "ghost:pay")
    deployment.run(send_events(deployment.settings, [stray]))  # no such instance: a letter

    def listed() -> list[dict[str, Any]]:
        return call(urls[0] + "/api/deadletters")[1]["deadletters"]

    (letter,) = until(listed)
    assert letter["instance_id"] == "ghost" and call(urls[1] + "/api/deadletters")[1][
        "deadletters"
    ] == [letter]
    shown = call(urls[1] + f"/api/deadletters/{letter['id']}")[1]
    assert shown["record"]["event_id"] == "ghost:pay" and shown["value"]
    partition, offset = letter["id"].split(":")
    for absent in (f"{partition}:{int(offset) + 1000}", "999:0", "x"):
        assert call(urls[0] + f"/api/deadletters/{absent}")[0] == 404, absent
    with ThreadPoolExecutor(4) as pool:  # at once: they share one read of the topic
        pages = list(pool.map(lambda _: call(urls[0] + "/api/deadletters"), range(4)))
    assert all(page[:2] == (200, pages[0][1]) for page in pages)
    assert call(urls[1] + f"/api/deadletters/{letter['id']}/replay", "POST")[0] == 401
    replay = urls[1] + f"/api/deadletters/{letter['id']}/replay"
    assert call(replay, "POST", None, {**AUTH, "Content-Type": "text/plain"})[0] == 415
    assert call(replay, "POST", None, AUTH)[0] == 202  # the header alone, no body
    assert until(lambda: len(listed()) == 2)  # replayed, refused again


def _browser_checks(url: str, path: str) -> None:
    """A worker refuses what a page elsewhere could make a browser send, nothing produced."""
    port = url.rsplit(":", 1)[1]
    assert call(url + path, headers={"Host": f"evil.example:{port}"})[0] == 421
    form = {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    assert call(url + path, "POST", b"order_id=o-0", form)[0] == 415
    crossed = {**AUTH, "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
    assert call(url + path, "POST", _start("o-0"), crossed)[0] == 403
    assert call(url + path, "POST", _start("o-0"), {**AUTH, "Origin": "null"})[0] == 403
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    assert "Access-Control-Allow-Origin" not in call(url + path, "OPTIONS", None, preflight)[2]
    status, _, headers = call(url + "/")
    assert status == 200 and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert call(url + path)[0] == 404  # nothing was produced


def _operations(urls: list[str]) -> None:
    for url in urls:
        assert call(url + "/healthz")[:2] == (200, {"status": "ok"})
        metrics = call(url + "/metrics")
        assert metrics[0] == 200 and metrics[2]["Content-Type"].startswith("text/plain")
        assert "# TYPE" in metrics[1]
        assert "/api/workflows" in call(url + "/api/openapi.json")[1]["paths"]
        svg = call(url + "/api/workflows/order_fulfillment/diagram.svg?active=charging")
        assert svg[0] == 200 and "<svg" in svg[1]
        assert call(url + "/")[0] == 200
        assert call(url + "/console/../../settings.py")[0] == 404


def _cli_reads_through_the_api(deployment: Deployment, api_url: str) -> None:
    def omninode(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = worker_environment(deployment.settings, {"OMNINODE_API_URL": url})
        return subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=ROOT,
            check=False,
            env=env,
        )

    status = omninode(api_url, "status", "order_fulfillment", "o-3", "--json", "--verbose")
    assert status.returncode == 0, status.stderr
    assert "read through the API at" in status.stderr
    topic = deployment.run(read_snapshot(deployment.settings, "order_fulfillment", "o-3"))
    assert topic is not None and json.loads(status.stdout) == topic.to_dict()
    history = omninode(api_url, "history", "order_fulfillment", "o-3", "--json", "--verbose")
    assert history.returncode == 0 and "read through the API at" in history.stderr
    nobody = f"http://127.0.0.1:{free_port()}"
    fallback = omninode(nobody, "history", "order_fulfillment", "o-3", "--json", "--verbose")
    assert "reading the journal topic instead" in fallback.stderr
    assert fallback.stdout == history.stdout


def _measure(urls: list[str]) -> None:
    """GET latencies: answered by the worker asked, and forwarded to the other."""
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(5):
        for i in IDS:
            for url in urls:
                started = time.perf_counter()
                _, _, headers = call(url + f"/api/instances/order_fulfillment/{i}")
                timings[headers["X-OmniNode-Served-By"] == url].append(
                    time.perf_counter() - started
                )
    for here, values in timings.items():
        if values:
            print(
                f"GET snapshot {'here' if here else 'forwarded'}: n={len(values)} "
                f"p50={statistics.median(values) * 1000:.1f} ms max={max(values) * 1000:.1f} ms"
            )
