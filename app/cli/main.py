"""``omninode``: check, simulate, draw and diff RSS workflows; run, replay, migrate on Kafka.

Exit codes: 0 success, 1 not found (status/history of an unknown instance) or a check that
failed (replay diverges, a migration plan that is not clean, projections that differ), 2 bad input
(invalid chart, malformed events file or JSON, input over a limit, bad settings, unreadable
file), 3 Kafka unreachable (or a read that could not reach the end of a partition in time),
70 internal error (a bug: reported as one line, never as a traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from app.cli.runtime import add_commands, guarded
from app.core.chart_diff import diff_charts, incomparable
from app.core.diagram import to_dot, to_mermaid
from app.core.errors import ChartError, SimulationInputError
from app.core.migration_build import check_migrations
from app.core.model import Chart
from app.core.simulate import Simulator, parse_script
from app.infra.chart_files import (
    HandlerImportError,
    chart_files,
    handler_specs,
    import_handlers,
    load_charts,
    read_chart,
)
from app.infra.settings import limits_from_env

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE
INTERNAL_ERROR_CHARS = 500


def main(argv: Sequence[str] | None = None) -> int:
    # The CLI reports Kafka failures itself, as one line; the client's own logs would repeat them.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return guarded(args)
    except BrokenPipeError:
        # The reader went away (`omninode simulate ... | head`): stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (HandlerImportError, OSError) as exc:
        print(f"omninode: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last resort: one line, never a traceback
        print(f"omninode: internal error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(text) > INTERNAL_ERROR_CHARS:
        text = text[:INTERNAL_ERROR_CHARS] + f"... ({len(text)} characters)"
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omninode", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check RSS files; print file:line errors")
    validate.add_argument("paths", nargs="+", help="RSS files or directories")
    validate.set_defaults(handler=_validate)

    simulate = commands.add_parser("simulate", help="run a chart over a JSON-lines events file")
    simulate.add_argument("rss", help="the RSS file; the script's events go to its instance")
    simulate.add_argument("events", help="JSON lines; the first is the $start event")
    simulate.add_argument("--instance", default="sim-1", help="instance id (default: sim-1)")
    simulate.add_argument(
        "--chart",
        action="append",
        default=[],
        metavar="OTHER",
        help="another RSS file in the same simulated world (a workflow the chart invokes); "
        "repeatable",
    )
    simulate.set_defaults(handler=_simulate)

    diagram = commands.add_parser("diagram", help="draw a chart as Mermaid or Graphviz DOT")
    diagram.add_argument("rss", help="the RSS file")
    diagram.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    diagram.add_argument("-o", "--output", help="write here instead of stdout")
    diagram.set_defaults(handler=_diagram)

    diff = commands.add_parser("diff", help="report what changed between two versions of a chart")
    diff.add_argument("old", metavar="OLD", help="the older version's RSS file")
    diff.add_argument("new", metavar="NEW", help="the newer version's RSS file")
    diff.add_argument("--json", action="store_true", help="one JSON object instead of text")
    diff.set_defaults(handler=_diff)
    add_commands(commands)
    return parser


def _print_diagnostics(error: ChartError) -> None:
    for diagnostic in error.diagnostics:
        print(diagnostic, file=sys.stderr)


def _import_handlers(paths: Sequence[str]) -> list[str]:
    """Import the handler modules for these charts (OMNINODE_HANDLERS, else ``handlers.py``
    beside them); returns what was imported, as named."""
    specs = handler_specs(paths)
    import_handlers(specs)
    return specs


def handlers_line(specs: Sequence[str]) -> str:
    """``handlers: imported a.py, b`` or ``handlers: none``."""
    return f"handlers: imported {', '.join(specs)}" if specs else "handlers: none"


def _load_one(path: str) -> Chart | None:
    """Load a chart (after its handler modules), printing diagnostics on failure."""
    _import_handlers([path])
    try:
        return read_chart(Path(path), limits=limits_from_env())
    except ChartError as exc:
        _print_diagnostics(exc)
        return None


def _validate(args: argparse.Namespace) -> int:
    # On stdout, with the `ok` lines: stderr holds only the file:line diagnostics.
    print(handlers_line(_import_handlers(args.paths)), flush=True)
    files = chart_files(args.paths)
    if not files:
        print("omninode: no RSS files (*.yaml, *.yml) found", file=sys.stderr)
        return EXIT_BAD_INPUT
    charts = load_charts(files, limits_from_env())
    for diagnostic in charts.problems:
        print(diagnostic, file=sys.stderr)
    for path, chart in charts.loaded:
        states = len(chart.states) - 1
        print(f"ok  {path}  ({chart.workflow} v{chart.version}, {states} states)")
    return EXIT_BAD_INPUT if charts.problems else 0


def _simulate(args: argparse.Namespace) -> int:
    charts = _load_world([args.rss, *args.chart])
    if charts is None:
        return EXIT_BAD_INPUT
    first, *others = charts
    limits = limits_from_env()
    try:
        text = Path(args.events).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        print(f"{args.events}:1: not UTF-8 text: {exc.reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        script = parse_script(text, args.events, limits)
        simulator = Simulator(
            first, file=args.events, instance_id=args.instance, limits=limits, others=others
        )
        for row in simulator.run(script):
            print(json.dumps(row, sort_keys=True), flush=True)
    except SimulationInputError as exc:
        print(exc.diagnostic, file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in simulator.notes:
        print(note, file=sys.stderr)
    return 0


def _load_world(paths: Sequence[str]) -> list[Chart] | None:
    """The simulated world's charts, the first file's first; ``None`` (with ``file:line``
    diagnostics printed) when one fails, or an invoked workflow or version is missing."""
    _import_handlers(paths)
    files = list(dict.fromkeys(Path(p) for p in paths))  # a file named twice loads once
    loaded = load_charts(files, limits_from_env())
    for diagnostic in loaded.problems:
        print(diagnostic, file=sys.stderr)
    if loaded.problems:
        return None
    return [chart for _, chart in loaded.loaded]


def _diagram(args: argparse.Namespace) -> int:
    chart = _load_one(args.rss)
    if chart is None:
        return EXIT_BAD_INPUT
    text = to_mermaid(chart) if args.format == "mermaid" else to_dot(chart)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _diff(args: argparse.Namespace) -> int:
    # Both folders' handlers first: a guard registered beside one chart serves the other too
    # (an old version checked out elsewhere names the same guards).
    _import_handlers([args.old, args.new])
    old, new = _load_one(args.old), _load_one(args.new)
    if old is None or new is None:
        return EXIT_BAD_INPUT
    refusal = incomparable(old, new)
    if refusal is not None:
        print(f"omninode: {refusal}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # As `validate` does for two versions loaded together: old paths in `migrate` must exist.
    problems = check_migrations([old, new])
    for diagnostic in problems:
        print(diagnostic, file=sys.stderr)
    if problems:
        return EXIT_BAD_INPUT
    report = diff_charts(old, new)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
