"""What a worker loads before it starts: handler modules, then every chart on the RSS path."""

from __future__ import annotations

import sys

from app.core.errors import ChartError, Diagnostic
from app.core.router import ChartRegistry
from app.infra.chart_files import chart_files, handler_specs, import_handlers, load_charts
from app.infra.settings import Settings


def load_registry(settings: Settings) -> ChartRegistry:
    """Import the handler modules and load the charts; every problem in one ChartError."""
    specs = list(settings.handler_modules) or handler_specs(settings.rss_paths)
    import_handlers(specs)
    # Said on stderr (the worker's log): which code a worker runs must never be a guess.
    print(f"omninode: handlers: {', '.join(specs) or 'none'}", file=sys.stderr, flush=True)
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
