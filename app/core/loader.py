"""Load an RSS document in stages: YAML with lines -> schema check -> build and semantic
checks -> an immutable :class:`Chart`. Every failure is a :class:`ChartError` whose
diagnostics read ``file:line: message``. Pure: it takes text, never a path to open.
"""

from __future__ import annotations

from app.core.builder import ChartBuilder
from app.core.errors import ChartError, Diagnostic
from app.core.guards import GuardRegistry, default_guards
from app.core.model import Chart
from app.core.schema_check import check_schema
from app.core.yamlsrc import parse_yaml


def load_chart(text: str, file: str = "<rss>", guards: GuardRegistry | None = None) -> Chart:
    """Parse, check and build one chart, or raise :class:`ChartError` with every problem."""
    doc, problems = parse_yaml(text, file)
    if doc is None:
        raise ChartError(problems)
    if not isinstance(doc.data, dict):
        raise ChartError(problems or [_not_a_mapping(file)])
    problems = check_schema(doc)
    if problems:
        raise ChartError(problems)
    builder = ChartBuilder(doc, guards if guards is not None else default_guards)
    chart = builder.build()
    if chart is None:
        raise ChartError(builder.problems)
    return chart


def _not_a_mapping(file: str) -> Diagnostic:
    return Diagnostic(file, 1, "an RSS document must be a mapping")
