"""Load an RSS document in stages: YAML with lines -> schema check -> build and semantic
checks -> an immutable :class:`Chart`. Every failure is a :class:`ChartError` whose
diagnostics read ``file:line: message``. Pure: it takes text, never a path to open.

Every stage holds the document to ``limits`` (:class:`app.spi.limits.Limits`), and the
chart carries them so the reducer holds its steps to them too.
"""

from __future__ import annotations

from app.core.builder import ChartBuilder, state_depth_problems
from app.core.errors import ChartError, Diagnostic
from app.core.guards import GuardRegistry, default_guards
from app.core.model import Chart
from app.core.schema_check import check_schema
from app.core.yamlsrc import parse_yaml
from app.spi.limits import DEFAULT_LIMITS, Limits


def load_chart(
    text: str,
    file: str = "<rss>",
    guards: GuardRegistry | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Chart:
    """Parse, check and build one chart, or raise :class:`ChartError` with every problem."""
    doc, problems = parse_yaml(text, file, limits)
    if doc is None:
        raise ChartError(problems)
    if not isinstance(doc.data, dict):
        raise ChartError(problems or [_not_a_mapping(file)])
    # States nested too deep are refused before the (recursive) schema validator sees them.
    problems = state_depth_problems(doc, limits)
    if problems:
        raise ChartError(problems)
    try:
        problems = check_schema(doc)
        if problems:
            raise ChartError(problems)
        builder = ChartBuilder(doc, guards if guards is not None else default_guards, limits)
        chart = builder.build()
    except RecursionError:  # only reachable with OMNINODE_MAX_YAML_DEPTH set far too high
        raise ChartError([Diagnostic(file, 1, _TOO_DEEP)]) from None
    if chart is None:
        raise ChartError(builder.problems)
    return chart


_TOO_DEEP = "the chart is nested too deeply to check; lower OMNINODE_MAX_YAML_DEPTH"


def _not_a_mapping(file: str) -> Diagnostic:
    return Diagnostic(file, 1, "an RSS document must be a mapping")
