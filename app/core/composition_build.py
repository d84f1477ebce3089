"""Building the RSS v1.1 parts of a chart: ``raise`` actions, ``invoke`` entries, ``output``
on final states, and the checks that need the whole chart (``in_state`` paths, names) or
every chart loaded together (invoked workflow types and versions).

The functions take the :class:`~app.core.builder.ChartBuilder` that is building the chart
and report through it, so every problem carries its file and line like the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.core.errors import Diagnostic
from app.core.expressions import Expr
from app.core.model import Chart, InvokeSpec, RaiseSpec
from app.core.yamlsrc import Path
from app.spi.envelopes import RESULT_SUFFIXES

if TYPE_CHECKING:
    from app.core.builder import ChartBuilder


def raises(builder: ChartBuilder, items: list[Any], where: Path) -> tuple[RaiseSpec, ...]:
    """A ``raise`` list: event names, or ``{event, payload: {key: CEL}}``."""
    built = []
    for index, item in enumerate(items):
        place = (*where, index)
        spec: dict[str, Any] = {"event": item} if isinstance(item, str) else dict(item)
        event = str(spec["event"])
        if event.startswith("$"):
            builder.error(place, f"raise '{event}': a raised event may not use a '$' name")
            continue
        builder.raised_names.append((event, place))
        payload = _exprs(builder, spec.get("payload") or {}, (*place, "payload"))
        built.append(RaiseSpec(event, payload, builder.line(place)))
    return tuple(built)


def invocations(
    builder: ChartBuilder, path: str, raw: list[Any], where: Path
) -> tuple[InvokeSpec, ...]:
    """A state's ``invoke`` list."""
    if builder.types[path] in ("final", "history"):
        builder.error(where, f"state '{path}': a {builder.types[path]} state cannot invoke")
        return ()
    built = []
    for index, spec in enumerate(raw):
        place = (*where, index)
        name = str(spec["name"])
        builder.invoke_names.append((name, place))
        inputs = _exprs(builder, spec["input"], (*place, "input")) if "input" in spec else None
        child_id = builder.expr(spec["id"], (*place, "id")) if "id" in spec else None
        timeout = builder.delay(spec["timeout"], (*place, "timeout")) if "timeout" in spec else None
        built.append(
            InvokeSpec(
                name=name,
                workflow=str(spec["workflow"]),
                version=spec.get("version"),
                input=inputs,
                id=child_id,
                timeout_ms=timeout,
                line=builder.line(place),
            )
        )
    return tuple(built)


def output(
    builder: ChartBuilder, path: str, raw: dict[str, Any], where: Path
) -> tuple[tuple[str, Expr], ...] | None:
    """A top-level final state's ``output`` (SCXML ``<donedata>``)."""
    if "output" not in raw:
        return None
    top_level_final = builder.types[path] == "final" and "." not in path
    if not top_level_final:
        builder.error(
            (*where, "output"), f"state '{path}': 'output' only applies to top-level final states"
        )
        return None
    return _exprs(builder, raw["output"], (*where, "output"))


def check_state_paths(builder: ChartBuilder, expr: Expr, where: Path) -> None:
    """``in_state("path")`` must name a state of this chart."""
    for path in expr.state_paths:
        if not path or path not in builder.types:
            builder.error(where, f"in_state('{path}'): no state '{path}' in this chart")


def check_names(builder: ChartBuilder, dispatch_names: set[str]) -> None:
    """Invoke names are unique among the chart's effect, compute and invoke names; a raised
    event is not a dispatch's result event."""
    seen: set[str] = set()
    for name, where in builder.invoke_names:
        if name in dispatch_names or name in seen:
            builder.error(
                (*where, "name"),
                f"invoke name '{name}' is already used by an effect, compute or invoke",
            )
        seen.add(name)
    every = dispatch_names | seen
    for event, where in builder.raised_names:
        base, dot, suffix = event.rpartition(".")
        if dot and f".{suffix}" in RESULT_SUFFIXES and base in every:
            builder.error(where, f"raise '{event}': a raised event may not be a result event")


def check_invocations(charts: Sequence[Chart]) -> list[Diagnostic]:
    """Every invoked workflow type (and pinned version) is among ``charts``."""
    versions: dict[str, set[int]] = {}
    for chart in charts:
        versions.setdefault(chart.workflow, set()).add(chart.version)
    problems = []
    for chart in charts:
        for node, spec in chart.invocations():
            known = versions.get(spec.workflow)
            if known is None:
                loaded = ", ".join(sorted(versions)) or "none"
                message = (
                    f"state '{node.path}' invokes workflow '{spec.workflow}', which is not "
                    f"among the charts loaded together (loaded: {loaded})"
                )
            elif spec.version is not None and spec.version not in known:
                have = ", ".join(str(v) for v in sorted(known))
                message = (
                    f"state '{node.path}' invokes '{spec.workflow}' version {spec.version}, "
                    f"which is not loaded (loaded versions: {have})"
                )
            else:
                continue
            problems.append(Diagnostic(chart.file, spec.line, message))
    return problems


def _exprs(builder: ChartBuilder, raw: dict[str, Any], where: Path) -> tuple[tuple[str, Expr], ...]:
    compiled = ((key, builder.expr(value, (*where, key))) for key, value in raw.items())
    return tuple((key, expr) for key, expr in compiled if expr is not None)
