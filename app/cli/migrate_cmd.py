"""``omninode migrate plan|apply WORKFLOW --to N``: move running instances onto another
version of their chart.

``plan`` reads every snapshot of the workflow and the journals of the active instances on
another version, and prints per instance what ``$migrate`` would make of it and the spec's
replay check (:mod:`app.core.migration_plan`), then a table of counts. ``apply`` computes
the same plan, sends one ``$migrate`` per instance (every one that maps, or with
``--only-agreeing`` the ones whose replay agrees) and watches the snapshots until each has
moved, or had the migration ignored, or the timeout passed.

Charts and handler modules are loaded as the workers load them (``OMNINODE_RSS_PATH``,
``OMNINODE_HANDLERS``). Exit: 0 when every instance maps and agrees (plan) or now runs on
the target version (apply); 1 otherwise; 2 for bad input (charts that do not load, an
unknown workflow, a target version not loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from app.core.errors import ChartError
from app.core.migration_plan import (
    VERDICTS,
    MigrationPlan,
    Plan,
    migrate_event,
    plan_migration,
    target_problem,
)
from app.core.router import ChartRegistry
from app.infra.control import send_events
from app.infra.migration_reads import (
    InstanceReads,
    Progress,
    read_journals,
    read_workflow_snapshots,
    watch_migrations,
)
from app.infra.runtime import load_registry
from app.infra.settings import Settings
from app.infra.wire import utc_now

EXIT_BAD_INPUT = 2
DEFAULT_TIMEOUT_S = 60.0


class BadTarget(ValueError):
    """An unknown workflow or a version not loaded (the CLI's ``guarded`` exits 2)."""


def add_command(commands: Any) -> None:
    """Register the command's parser on the CLI's subparsers."""
    migrate = commands.add_parser(
        "migrate", help="plan and apply the move of running instances to another chart version"
    )
    actions = migrate.add_subparsers(dest="action", required=True, metavar="ACTION")
    plan = actions.add_parser(
        "plan", help="per instance: the mapped configuration and the replay check; counts"
    )
    _common_args(plan)
    plan.add_argument("--json", action="store_true", help="the plan as one JSON object")
    plan.set_defaults(registry_ids=True, handler=_plan)
    apply = actions.add_parser(
        "apply", help="send $migrate to the instances that map, and follow them"
    )
    _common_args(apply)
    apply.add_argument(
        "--only-agreeing", action="store_true", help="only the instances whose replay agrees"
    )
    apply.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the instances to move (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    apply.set_defaults(registry_ids=True, handler=_apply)


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW", help="workflow type")
    parser.add_argument(
        "--to", type=_version, required=True, metavar="N", help="the version to migrate to"
    )


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise argparse.ArgumentTypeError(f"not a chart version (a positive integer): {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"not a number of seconds (0 < s < 86400): {text!r}")
    return seconds


# -- the commands ----------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    registry = _registry(settings, args.workflow, args.to)
    if registry is None:
        return EXIT_BAD_INPUT
    plan, _ = asyncio.run(read_plan(settings, registry, args.workflow, args.to))
    if args.json:
        print(json.dumps(plan_json(plan), indent=2, sort_keys=True))
    else:
        print("\n".join(plan_report(plan)))
    return 0 if plan.ok else 1


def _apply(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    registry = _registry(settings, args.workflow, args.to)
    if registry is None:
        return EXIT_BAD_INPUT
    plan, reads = asyncio.run(read_plan(settings, registry, args.workflow, args.to))
    print(plan_heading(plan))
    if not plan.plans:
        return 0
    chosen = [p for p in plan.plans if sendable(p, args.only_agreeing)]
    now = utc_now()
    sent = {p.key: migrate_event(reads.snapshots[p.key], args.to, now) for p in chosen}
    progress: list[Progress] = []
    if sent:
        asyncio.run(send_events(settings, list(sent.values())))
        print(f"sent $migrate to {len(sent)} of {len(plan.plans)} instances", flush=True)
        report = progress_reporter(args.timeout)
        progress = asyncio.run(watch_migrations(settings, sent, args.to, args.timeout, report))
    print("\n".join(outcome_report(plan, progress)))
    moved = sum(1 for p in progress if p.outcome == "migrated")
    return 0 if moved == len(plan.plans) else 1


def _registry(settings: Settings, workflow: str, target: int) -> ChartRegistry | None:
    """The charts as the workers load them; None (said on stderr) when they do not load."""
    try:
        registry = load_registry(settings)
    except ChartError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return None
    problem = target_problem(registry, workflow, target)
    if problem is not None:
        raise BadTarget(problem)
    return registry


async def read_plan(
    settings: Settings, registry: ChartRegistry, workflow: str, target: int
) -> tuple[MigrationPlan, InstanceReads]:
    """Read the workflow's snapshots, then the journals of the instances concerned; plan."""
    reads = await read_workflow_snapshots(settings, workflow)
    concerned = [k for k, s in reads.snapshots.items() if s.is_active and s.version != target]
    if concerned:
        await read_journals(settings, concerned, reads)
    for problem in reads.unreadable:
        print(f"omninode: left out, does not decode: {problem}", file=sys.stderr)
    plan = plan_migration(registry, workflow, target, reads.snapshots.values(), reads.journals)
    return plan, reads


def sendable(plan: Plan, only_agreeing: bool) -> bool:
    """Whether ``apply`` sends this instance its ``$migrate``."""
    return plan.verdict == "agrees" if only_agreeing else plan.maps


# -- what plan prints ------------------------------------------------------------------------


def plan_heading(plan: MigrationPlan) -> str:
    others = len(plan.plans)
    return (
        f"{plan.workflow}: migration to version {plan.target}: {others} active "
        f"instance{'s' if others != 1 else ''} on other versions "
        f"({plan.on_target} already on version {plan.target}, {plan.finished} finished)"
    )


def plan_line(plan: Plan, width: int = 0) -> str:
    """One instance: ``KEY  vFROM STATES -> vTO STATES  CHECK`` (the key padded to ``width``)."""
    before = ", ".join(plan.configuration) or "-"
    after = "?" if plan.mapped is None else ", ".join(plan.mapped) or "-"
    return f"{plan.key:<{width}}  v{plan.version} {before} -> v{plan.target} {after}  {plan.check}"


def summary_table(plan: MigrationPlan) -> list[str]:
    """Counts of each verdict per version migrated from, and in all."""
    header = ["from", *VERDICTS, "total"]
    rows = [
        [f"v{version}", *(str(counts[v]) for v in VERDICTS), str(sum(counts.values()))]
        for version, counts in plan.counts_by_version().items()
    ]
    totals = plan.counts()
    rows.append(["total", *(str(totals[v]) for v in VERDICTS), str(len(plan.plans))])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [_table_row(row, widths) for row in [header, *rows]]


def _table_row(cells: list[str], widths: list[int]) -> str:
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)]).rstrip()


def plan_verdict(plan: MigrationPlan) -> str:
    if plan.ok:
        return "ready: every instance maps and its replay agrees"
    agreeing = plan.counts()["agrees"]
    return (
        f"not ready: {len(plan.plans) - agreeing} of {len(plan.plans)} instances do not map "
        f"or their replay does not agree (apply --only-agreeing sends the {agreeing} that do)"
    )


def plan_report(plan: MigrationPlan) -> list[str]:
    lines = [plan_heading(plan)]
    if plan.plans:
        width = max(len(p.key) for p in plan.plans)
        lines += ["", *(plan_line(p, width) for p in plan.plans), "", *summary_table(plan)]
    return [*lines, "", plan_verdict(plan)]


def plan_json(plan: MigrationPlan) -> dict[str, Any]:
    return {
        "workflow": plan.workflow,
        "to": plan.target,
        "ok": plan.ok,
        "on_target": plan.on_target,
        "finished": plan.finished,
        "counts": dict(plan.counts()),
        "instances": [_plan_row(p) for p in plan.plans],
    }


def _plan_row(plan: Plan) -> dict[str, Any]:
    return {
        "key": plan.key,
        "version": plan.version,
        "seq": plan.seq,
        "configuration": list(plan.configuration),
        "mapped": list(plan.mapped) if plan.mapped is not None else None,
        "verdict": plan.verdict,
        "check": plan.check,
        "replayed": list(plan.replayed) if plan.replayed is not None else None,
        "replayed_status": plan.replayed_status,
        "reason": plan.reason,
        "event_id": plan.event_id,
    }


# -- what apply prints -----------------------------------------------------------------------


def progress_reporter(timeout_s: float) -> Callable[[list[Progress]], None]:
    """Says how many have moved whenever that changes."""
    last: list[tuple[int, int, int]] = []

    def report(progress: list[Progress]) -> None:
        counts = progress_counts(progress)
        if not last or counts != last[-1]:
            migrated, ignored, waiting = counts
            print(
                f"  {migrated}/{len(progress)} migrated, {ignored} ignored, {waiting} waiting "
                f"(up to {timeout_s:.0f}s)",
                flush=True,
            )
            last.append(counts)

    return report


def progress_counts(progress: list[Progress]) -> tuple[int, int, int]:
    outcomes = [p.outcome for p in progress]
    return outcomes.count("migrated"), outcomes.count("ignored"), outcomes.count("waiting")


def outcome_report(plan: MigrationPlan, progress: list[Progress]) -> list[str]:
    """One line per instance of the plan, then the count of those now on the target."""
    by_key = {p.event.key: p for p in progress}
    width = max((len(p.key) for p in plan.plans), default=0)
    lines = [outcome_line(p, by_key.get(p.key), width) for p in plan.plans]
    moved = sum(1 for p in progress if p.outcome == "migrated")
    lines.append(f"{moved} of {len(plan.plans)} instances now run on version {plan.target}")
    return lines


def outcome_line(plan: Plan, progress: Progress | None, width: int = 0) -> str:
    """``migrated``, ``ignored``, ``waiting`` or ``not sent``, the key (padded to ``width``)
    and where the instance is."""
    key = f"{plan.key:<{width}}"
    if progress is None:
        return f"not sent  {key}  stays on v{plan.version}: {plan.check}"
    snapshot = progress.snapshot
    if progress.outcome == "migrated" and snapshot is not None:
        states = ", ".join(snapshot.configuration) or "-"
        return f"migrated  {key}  v{plan.version} -> v{plan.target} {states}"
    if progress.outcome == "ignored":
        return f"ignored   {key}  stays on v{plan.version}: {progress.reason}"
    seen = "no snapshot" if snapshot is None else f"v{snapshot.version} at seq {snapshot.seq}"
    return f"waiting   {key}  still {seen}; its $migrate ({progress.event.event_id}) may yet arrive"
