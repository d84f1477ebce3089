"""The ``query`` scenario: one instance's snapshot through the HTTP API (the worker's RocksDB
table, docs/api.md) against today's topic scan (``control.read_snapshot``: the changelog
partition read from offset 0), at a small and a large number of instances in the same
deployment, in the same run.

One worker (reducer role) holds every instance of the ``pinger`` workflow; the scenario
starts ``small`` instances, measures, starts the rest up to ``large``, measures again.
Each API sample is one GET on a kept-alive connection; each scan sample is one full read.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import statistics
import time
from pathlib import Path

from app.infra import topics
from app.infra.control import new_event, read_snapshot
from app.infra.wire import encode_event
from app.infra.worker_process import WorkerProcess
from bench.common import collect, fast_produce
from bench.scenarios import BENCH_HANDLERS, BENCH_RSS, deployment

API_SAMPLES = 300
SCAN_SAMPLES = {"small": 20, "large": 5}
SEED = 7


def query(bootstrap: str, workdir: Path, small: int, large: int, timeout_s: float) -> dict:
    settings = deployment(bootstrap, "bq")
    env = {
        "OMNINODE_RSS_PATH": BENCH_RSS,
        "OMNINODE_HANDLERS": BENCH_HANDLERS,
        "OMNINODE_ROLES": "reducer",
    }
    worker = WorkerProcess(settings, workdir / "query-data", workdir / "query.log", env).start()
    results: dict[str, float] = {}
    try:
        worker.wait_ready(120)
        for size, first, count in (("small", 0, small), ("large", small, large - small)):
            _start(settings, first, count, timeout_s)
            results |= _measure(settings, worker, size, first + count)
    finally:
        worker.stop()
    results["query_instances_small"] = small
    results["query_instances_large"] = large
    results["query_api_vs_scan_large"] = (
        results["query_scan_p50_ms_large"] / results["query_api_p50_ms_large"]
    )
    return results


def _start(settings, first: int, count: int, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    events = settings.topic(topics.EVENTS)
    starts = (
        new_event("pinger", f"q{n}", "$start", {}, f"q{n}:start")
        for n in range(first, first + count)
    )
    records = [(events, e.key.encode(), encode_event(e)) for e in starts]
    asyncio.run(fast_produce(settings.bootstrap_servers, records))
    journal = settings.topic(topics.JOURNAL)
    seen = asyncio.run(collect(settings.bootstrap_servers, [journal], first + count, timeout_s))
    if len(seen) < first + count:
        raise RuntimeError(f"query: {len(seen)} of {first + count} instances started in time")


def _measure(settings, worker: WorkerProcess, size: str, instances: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    pick = random.Random(SEED + instances)
    connection = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=10)
    api = []
    for _ in range(API_SAMPLES):
        path = f"/api/instances/pinger/q{pick.randrange(instances)}"
        began = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        api.append((time.perf_counter() - began) * 1000)
        if response.status != 200:
            raise RuntimeError(f"query: GET {path} answered {response.status}: {body[:200]!r}")
    connection.close()
    scan = []
    for _ in range(SCAN_SAMPLES[size]):
        instance = f"q{pick.randrange(instances)}"
        began = time.perf_counter()
        found = asyncio.run(read_snapshot(settings, "pinger", instance))
        scan.append((time.perf_counter() - began) * 1000)
        if found is None:
            raise RuntimeError(f"query: the scan did not find pinger:{instance}")
    return {
        f"query_api_p50_ms_{size}": statistics.median(api),
        f"query_api_p99_ms_{size}": _p99(api),
        f"query_scan_p50_ms_{size}": statistics.median(scan),
        f"query_scan_p99_ms_{size}": _p99(scan),
    }


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
