"""CEL expressions (``when:``, ``assign:``, ``input:``) compiled once per chart.

Evaluation goes through the maintained Rust CEL interpreter (``common-expression-language``);
nothing is ever handed to Python's ``eval``. Each expression sees two variables, ``data`` (the
instance data) and ``event`` (``type``, ``payload``, ``id``, ``occurred_at``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from app.core.errors import StepFailure

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


class CelSyntaxError(ValueError):
    """A CEL expression does not parse; ``message`` is one line with the column."""


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled CEL expression and where it came from."""

    source: str
    line: int
    program: Any = field(compare=False, repr=False)

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Run the expression; any failure becomes :class:`StepFailure` with the reason."""
        try:
            return self.program.execute(variables)
        except Exception as exc:  # the CEL runtime raises several builtin types
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise StepFailure(
                f"CEL expression {self.source!r} (line {self.line}): {reason}"
            ) from exc


def compile_expr(source: str, line: int) -> Expr:
    """Compile a CEL expression, or raise :class:`CelSyntaxError` naming the column."""
    if not isinstance(source, str) or not source.strip():
        raise CelSyntaxError("CEL expression is empty")
    try:
        program = cel.compile(source)
    except Exception as exc:  # the binding raises ValueError for syntax errors
        raise CelSyntaxError(_syntax_message(source, str(exc))) from exc
    return Expr(source=source, line=line, program=program)


def _syntax_message(source: str, raw: str) -> str:
    match = _POSITION.search(raw)
    if not match:
        return f"CEL syntax error in {source!r}: {raw.splitlines()[0]}"
    column, detail = match.group(2), match.group(3)
    return f"CEL syntax error in {source!r} at column {column}: {detail}"


def to_json_value(value: Any, where: str) -> Any:
    """Check that a CEL result is plain JSON (null, bool, number, string, list, map)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StepFailure(f"{where}: result {value!r} is not a JSON number")
        return value
    if isinstance(value, list | tuple):
        return [to_json_value(item, where) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise StepFailure(f"{where}: map keys must be strings to be stored as JSON")
        return {key: to_json_value(item, where) for key, item in value.items()}
    raise StepFailure(f"{where}: result of type {type(value).__name__} is not JSON")
