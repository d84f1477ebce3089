"""Stage 1 of loading: check a parsed RSS document against :data:`RSS_SCHEMA`.

jsonschema's raw messages are phrased for schema authors; these are rephrased for chart
authors, with the line of the offending key and a suggestion for likely typos.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from functools import cache

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from app.core.errors import Diagnostic
from app.core.rss_schema import KNOWN_KEYS, RSS_SCHEMA
from app.core.yamlsrc import Path, SourceDoc


@cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(RSS_SCHEMA)
    return Draft202012Validator(RSS_SCHEMA)


def check_schema(doc: SourceDoc) -> list[Diagnostic]:
    """Every structural problem of the document, one diagnostic per offending place."""
    found: dict[tuple[int, str], Diagnostic] = {}
    for error in _validator().iter_errors(doc.data):
        for path, message in _explain(_narrow(error)):
            line = doc.line_of(path)
            found.setdefault((line, message), Diagnostic(doc.file, line, message))
    return sorted(found.values())


def _narrow(error: ValidationError) -> ValidationError:
    """For oneOf/anyOf, the branch error most relevant to what the author wrote."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        deeper = best_match(error.context)
        if deeper is None:
            break
        error = deeper
    return error


def _where(path: Path) -> str:
    return ".".join(str(part) for part in path) or "the document"


def _explain(error: ValidationError) -> Iterator[tuple[Path, str]]:
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                yield (*path, key), _unknown_key(key, path, allowed)
        return
    if kind == "required":
        yield path, f"{_where(path)}: missing required key: {error.message.split(' ')[0]}"
        return
    if kind == "propertyNames":
        yield path, f"{_where(path)}: invalid name {error.instance!r} ({_name_rule(path)})"
        return
    if kind == "pattern":
        yield path, f"{_where(path)}: {error.instance!r} is not a valid name ({_name_rule(path)})"
        return
    if kind == "const" and path == ("rss",):
        yield (
            path,
            f"rss: unsupported language version {error.instance!r} (this release reads rss: 1)",
        )
        return
    yield path, f"{_where(path)}: {error.message}"


def _unknown_key(key: str, path: Path, allowed: set[str]) -> str:
    candidates = sorted(allowed) or list(KNOWN_KEYS)
    close = difflib.get_close_matches(str(key), candidates, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(candidates)})"
    return f"{_where(path)}: unknown key '{key}'{hint}"


def _name_rule(path: Path) -> str:
    last = path[-1] if path else ""
    if last == "states":
        return "state names match [a-z_][a-z0-9_]*"
    if last == "workflow":
        return "workflow names match [a-z][a-z0-9_]*"
    if last == "assign":
        return "assign keys are data paths like total or customer.email"
    if last in ("on", "events"):
        return "event types start with a letter or _ and use letters, digits, _ . : -"
    return "names match [a-z_][a-z0-9_]*"
