"""Reading RSS files and handler modules from disk (the I/O the pure core refuses to do)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from app.core.composition_build import check_invocations
from app.core.errors import ChartError, Diagnostic, DuplicateWorkflow
from app.core.guards import GuardRegistry
from app.core.loader import load_chart
from app.core.migration_build import check_migrations
from app.core.model import Chart
from app.core.router import ChartRegistry
from app.spi.limits import DEFAULT_LIMITS, Limits

RSS_SUFFIXES = (".yaml", ".yml")


class HandlerImportError(Exception):
    """A handler module named in OMNINODE_HANDLERS (or beside the charts) failed to import."""


def chart_files(paths: Iterable[str | Path]) -> list[Path]:
    """RSS files named directly or found (recursively) in the given directories."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found.extend(sorted(p for p in entry.rglob("*") if p.suffix in RSS_SUFFIXES))
        else:
            found.append(entry)
    return found


def read_chart(
    path: Path, guards: GuardRegistry | None = None, limits: Limits = DEFAULT_LIMITS
) -> Chart:
    """Load one chart file; unreadable files become a ChartError like any other problem.

    A file over ``limits.chart_bytes`` is refused from its size, before it is read; the read
    itself stops one byte past the limit (a file that grows meanwhile, a device or a pipe).
    """
    try:
        size = path.stat().st_size
        if size <= limits.chart_bytes:
            with path.open("rb") as source:
                raw = source.read(limits.chart_bytes + 1)
            size = len(raw)
        if size > limits.chart_bytes:
            raise ChartError([_too_large(path, size, limits)])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError([Diagnostic(str(path), 1, f"cannot read: {exc}")]) from exc
    return load_chart(text, str(path), guards, limits)


def _too_large(path: Path, size: int, limits: Limits) -> Diagnostic:
    message = (
        f"the chart is {size} bytes, over the limit of {limits.chart_bytes} "
        "(OMNINODE_MAX_CHART_BYTES)"
    )
    return Diagnostic(str(path), 1, message)


@dataclass
class LoadedCharts:
    """Every chart of a set of files in one registry, or why each failed."""

    registry: ChartRegistry = field(default_factory=ChartRegistry)
    loaded: list[tuple[Path, Chart]] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)


def load_charts(files: Iterable[Path], limits: Limits = DEFAULT_LIMITS) -> LoadedCharts:
    """Load each file and register it; the one loop behind ``validate`` and the workers."""
    result = LoadedCharts()
    for path in files:
        try:
            chart = read_chart(path, limits=limits)
            result.registry.register(chart)
        except ChartError as exc:
            result.problems.extend(exc.diagnostics)
            continue
        except DuplicateWorkflow as exc:
            result.problems.append(Diagnostic(str(path), 1, str(exc)))
            continue
        result.loaded.append((path, chart))
    # Across the charts loaded together: every invoked workflow type (and version) is here.
    loaded = [chart for _, chart in result.loaded]
    across = check_invocations(loaded) + check_migrations(loaded)
    result.problems.extend(across)
    failing = {problem.file for problem in across}
    result.loaded = [(path, chart) for path, chart in result.loaded if chart.file not in failing]
    return result


def handler_specs(chart_paths: Iterable[str | Path]) -> list[str]:
    """Handler modules to import: OMNINODE_HANDLERS if set (``none``: none), else
    ``handlers.py`` beside the charts.

    Only that one conventional file name is imported from a chart folder (each folder that
    holds a chart found under ``chart_paths``, or a folder named there); any other ``*.py``
    there (a helper script, a test) is never run by loading charts.
    """
    configured = os.environ.get("OMNINODE_HANDLERS", "").strip()
    if configured.lower() == "none":
        return []  # deliberately no handler modules, not even handlers.py beside the charts
    if configured:
        return [part.strip() for part in configured.split(",") if part.strip()]
    paths = list(map(Path, chart_paths))
    folders = {entry for entry in paths if entry.is_dir()}
    folders.update(chart.parent for chart in chart_files(paths))
    return sorted(str(f / "handlers.py") for f in folders if (f / "handlers.py").is_file())


def import_handlers(specs: Iterable[str]) -> list[ModuleType]:
    """Import each module name or ``.py`` file, in order, and return the modules (so callers
    can say which were imported); failures raise HandlerImportError."""
    return [_import_one(spec) for spec in specs]


def _import_one(spec: str) -> ModuleType:
    try:
        if spec.endswith(".py"):
            path = Path(spec).resolve()
            name = f"omninode_handlers.{path.stem}_{abs(hash(str(path))) % 10**8}"
            if name in sys.modules:
                return sys.modules[name]
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise HandlerImportError(f"cannot import handler file {spec}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except HandlerImportError:
        raise
    except Exception as exc:
        raise HandlerImportError(
            f"cannot import handler module {spec}: {type(exc).__name__}: {exc}"
        ) from exc
