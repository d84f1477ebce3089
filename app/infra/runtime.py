"""What a worker loads before it starts: handler modules, then every chart on the RSS path."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from app.core.errors import ChartError, Diagnostic
from app.core.handlers import HandlerRegistry
from app.core.model import Chart
from app.core.queues import command_queues, command_routes
from app.core.router import ChartRegistry
from app.infra.chart_files import chart_files, handler_specs, import_handlers, load_charts
from app.infra.settings import Settings
from app.infra.topics import TopicSpec
from app.spi.envelopes import DispatchKind


def load_registry(settings: Settings) -> ChartRegistry:
    """Import the handler modules and load the charts; every problem in one ChartError."""
    specs = list(settings.handler_modules) or handler_specs(settings.rss_paths)
    import_handlers(specs)
    # Said on stderr (the worker's log): which code a worker runs must never be a guess.
    print(f"omninode: handlers: {', '.join(specs) or 'none'}", file=sys.stderr, flush=True)
    return load_chart_registry(settings)


def load_chart_registry(settings: Settings) -> ChartRegistry:
    """Every chart on the RSS path (no handlers imported); problems in one ChartError."""
    files = chart_files(settings.rss_paths)
    if not files:
        where = ", ".join(settings.rss_paths)
        raise ChartError(
            [Diagnostic(where, 1, "no RSS files (*.yaml, *.yml) on OMNINODE_RSS_PATH")]
        )
    charts = load_charts(files, settings.limits)
    if charts.problems:
        raise ChartError(charts.problems)
    return charts.registry


def deployment_manifest(settings: Settings, charts: Iterable[Chart]) -> dict[str, TopicSpec]:
    """The deployment's topics: the manifest, with one command topic per task queue the
    charts name."""
    return settings.manifest(command_queues(charts))


def served_kinds(settings: Settings) -> frozenset[DispatchKind]:
    """The kinds of command this worker's roles run (``effects``, ``computes``)."""
    roles: dict[str, DispatchKind] = {"effects": "effect", "computes": "compute"}
    return frozenset(kind for role, kind in roles.items() if role in settings.roles)


def served_queues(
    settings: Settings,
    charts: Iterable[Chart],
    handlers: HandlerRegistry,
    kinds: frozenset[DispatchKind],
) -> tuple[str, ...]:
    """The task queues this worker reads: ``OMNINODE_QUEUES``, else every queue on which
    the charts send a command that it has a handler for (of a kind its roles run). Said on
    stderr, as the handlers are."""
    if not kinds:
        queues: tuple[str, ...] = ()
    elif settings.queues is not None:
        queues = tuple(sorted(settings.queues))
    else:
        routes = command_routes(charts)
        served = {r.queue for r in routes if r.kind in kinds and handlers.get(r.kind, r.name)}
        queues = tuple(sorted(served))
    print(f"omninode: task queues: {', '.join(queues) or 'none'}", file=sys.stderr, flush=True)
    return queues
