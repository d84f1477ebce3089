"""CEL expressions (``when:``, ``assign:``, ``input:``) compiled once per chart.

Evaluation goes through the maintained Rust CEL interpreter (``common-expression-language``);
nothing is ever handed to Python's ``eval``. Each expression sees two variables, ``data`` (the
instance data) and ``event`` (``type``, ``payload``, ``id``, ``occurred_at``), and may call
``in_state("dotted.path")`` (RSS v1.1, SCXML ``In()``). That function is bound per step, and
only for the expressions that call it: the others run on a plain dict of variables, which
the CEL binding evaluates faster than a ``cel.Context``. An expression is given only the
variables it names: the binding converts every variable it is handed, on every run, and
``event`` costs most of the run of an expression such as ``data.count + 1``
(docs/performance.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from app.core.errors import StepFailure
from app.spi.limits import DEFAULT_LIMITS

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")
_IN_STATE_CALL = re.compile(r"\bin_state\s*\(")
_IN_STATE_LITERAL = re.compile(r"""\bin_state\s*\(\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\)""")

_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")

StatePredicate = Callable[[str], bool]


class CelSyntaxError(ValueError):
    """A CEL expression does not parse; ``message`` is one line with the column."""


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled CEL expression and where it came from."""

    source: str
    line: int
    program: Any = field(compare=False, repr=False)
    # The paths named by its ``in_state("...")`` calls (checked against the chart at load).
    state_paths: tuple[str, ...] = ()
    # The variables it names (comprehension variables included: they are never given).
    names: tuple[str, ...] = ()

    def evaluate(self, variables: Mapping[str, Any], in_state: StatePredicate | None = None) -> Any:
        """Run the expression; any failure becomes :class:`StepFailure` with the reason.
        ``in_state`` answers the expression's ``in_state()`` calls, if it makes any."""
        named = {name: variables[name] for name in self.names if name in variables}
        try:
            if self.state_paths and in_state is not None:
                context = cel.Context(variables=named, functions={"in_state": in_state})
                return self.program.execute(context)
            return self.program.execute(named)
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
    return Expr(
        source=source,
        line=line,
        program=program,
        state_paths=_in_state_paths(source),
        names=tuple(program.variables()),
    )


def _in_state_paths(source: str) -> tuple[str, ...]:
    """The literal paths of ``in_state(...)`` calls; a call with anything but one string
    literal cannot be checked against the chart, so it is a syntax error. Text inside other
    string literals (``'in_state(x)'`` as data) is not a call."""
    literals = [a or b for a, b in _IN_STATE_LITERAL.findall(source)]
    rest = _STRING.sub("''", _IN_STATE_LITERAL.sub("", source))
    if _IN_STATE_CALL.search(rest):
        raise CelSyntaxError(
            f"in_state() in {source!r} takes one string literal, a dotted state path "
            '(in_state("shipping.packing"))'
        )
    return tuple(dict.fromkeys(literals))


def _syntax_message(source: str, raw: str) -> str:
    match = _POSITION.search(raw)
    if not match:
        return f"CEL syntax error in {source!r}: {raw.splitlines()[0]}"
    column, detail = match.group(2), match.group(3)
    return f"CEL syntax error in {source!r} at column {column}: {detail}"


_PLAIN = frozenset({str, int, bool, type(None)})  # exact types that are JSON as they are


def to_json_value(value: Any, where: str, max_depth: int = DEFAULT_LIMITS.json_depth) -> Any:
    """Check that a CEL result is plain JSON (null, bool, number, string, list, map) nested at
    most ``max_depth`` levels (``Limits.json_depth``); returns it as plain lists and dicts.

    Runs on every assignment and dispatch input, so scalars are recognised by exact type
    before anything else (no call for the items of a list or map that are scalars)."""
    if type(value) in _PLAIN:
        return value
    try:
        return _json(value, where, max_depth)
    except _TooDeep:
        raise StepFailure(
            f"{where}: result is nested deeper than {max_depth} levels (OMNINODE_MAX_JSON_DEPTH)"
        ) from None


class _TooDeep(Exception):
    """Raised from inside :func:`_json`; :func:`to_json_value` names the limit."""


def _json(value: Any, where: str, depth_left: int) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise StepFailure(f"{where}: result {value!r} is not a JSON number")
        return value
    if kind is list or kind is tuple:
        if depth_left < 1:
            raise _TooDeep
        depth_left -= 1
        return [item if type(item) in _PLAIN else _json(item, where, depth_left) for item in value]
    if kind is dict:
        if depth_left < 1:
            raise _TooDeep
        depth_left -= 1
        result = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise StepFailure(f"{where}: map keys must be strings to be stored as JSON")
            result[key] = item if type(item) in _PLAIN else _json(item, where, depth_left)
        return result
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StepFailure(f"{where}: result {value!r} is not a JSON number")
        return value
    if value is None or isinstance(value, bool | int | str):  # subclasses of the plain types
        return value
    if isinstance(value, list | tuple | dict):
        return _json(list(value) if not isinstance(value, dict) else dict(value), where, depth_left)
    raise StepFailure(f"{where}: result of type {type(value).__name__} is not JSON")
