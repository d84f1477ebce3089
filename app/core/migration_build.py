"""Building a chart's ``migrate`` entries (RSS v1.1 "Versions and migration of running
instances"), and the check that needs the older version loaded beside it.

Within the chart: ``from`` is an older version, named once; every target in ``states``
(``"review.waiting"`` or ``"#review.waiting"``: a dotted path from the root of this chart)
is a state of this chart; ``data`` compiles like ``assign``. Across the charts loaded
together: every old path in ``states`` is an atomic state of the version it migrates from.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from app.core.errors import Diagnostic
from app.core.model import ROOT, Assignment, Chart, MigrationSpec
from app.core.yamlsrc import Path

if TYPE_CHECKING:
    from app.core.builder import ChartBuilder


def migrations(builder: ChartBuilder, raw: list[Any], version: int) -> dict[int, MigrationSpec]:
    """The document's ``migrate`` list, by the version each entry migrates from (problems
    go to the builder, like every other check's)."""
    built: dict[int, MigrationSpec] = {}
    for index, entry in enumerate(raw):
        where: Path = ("migrate", index)
        origin = int(entry["from"])
        if origin >= version:
            builder.error(
                (*where, "from"), f"migrate from {origin}: not older than version {version}"
            )
            continue
        if origin in built:
            builder.error((*where, "from"), f"migrate from {origin} is declared twice")
            continue
        built[origin] = _migration(builder, entry, origin, where)
    return built


def _migration(
    builder: ChartBuilder, entry: dict[str, Any], origin: int, where: Path
) -> MigrationSpec:
    states: dict[str, str] = {}
    lines: dict[str, int] = {}
    for old, target in (entry.get("states") or {}).items():
        place = (*where, "states", old)
        lines[old] = builder.line(place)
        path = target[1:] if target.startswith("#") else target
        if path == ROOT or path not in builder.types or builder.types[path] == "history":
            builder.error(place, f"migrate from {origin}: '{target}' is not a state of this chart")
            continue
        states[old] = path
    assigns = []
    for key, value in (entry.get("data") or {}).items():
        compiled = builder.expr(value, (*where, "data", key))
        if compiled is not None:
            assigns.append(Assignment(tuple(key.split(".")), compiled))
    return MigrationSpec(
        origin,
        MappingProxyType(states),
        tuple(assigns),
        builder.line(where),
        MappingProxyType(lines),
    )


def check_migrations(charts: Sequence[Chart]) -> list[Diagnostic]:
    """Every old path a ``migrate`` entry maps is an atomic state of the version it migrates
    from, when that version is loaded too."""
    by_version = {(c.workflow, c.version): c for c in charts}
    problems = []
    for chart in charts:
        for origin, spec in chart.migrations.items():
            old = by_version.get((chart.workflow, origin))
            if old is None:
                continue
            for path, line in spec.state_lines.items():
                node = old.states.get(path)
                if node is None or not node.is_atomic:
                    what = "no state" if node is None else f"a {node.type} state, not an atomic one"
                    message = f"migrate from {origin}: '{path}' is {what} of version {origin}"
                    problems.append(Diagnostic(chart.file, line, message))
    return problems
