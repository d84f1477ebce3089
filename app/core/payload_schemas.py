"""The JSON Schemas a chart declares (``data_schema``, ``events``), compiled once at load.

They are user input, checked so that validating against them can never raise nor reach
the network during a step: a ``$ref`` must resolve inside the schema itself (nothing is ever
retrieved: the registry refuses every remote lookup), and a schema that refers to itself
without end (``$ref: '#'``) is reported instead of recursing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

ENDLESS = "the schema refers to itself without end (a $ref loop)"
_ROOT = "urn:omninode:chart-schema"


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(uri)


_NO_REMOTE: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]


class BoundedValidator:
    """A validator that reports a ``$ref`` loop or an unresolvable ``$ref`` as a validation
    error instead of raising: the reducer must never raise on a chart the loader accepted."""

    def __init__(self, schema: Any) -> None:
        self.inner = Draft202012Validator(schema, registry=_NO_REMOTE)
        self.schema = schema

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        try:
            yield from self.inner.iter_errors(instance)
        except RecursionError:
            yield ValidationError(ENDLESS)
        except Unresolvable as exc:
            yield ValidationError(f"$ref {exc.ref!r} cannot be resolved")


def compile_payload_schema(schema: Any) -> tuple[BoundedValidator | None, str | None]:
    """A validator for ``schema``, or why it is not a usable schema."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return None, exc.message
    problem = _unresolvable_ref(schema)
    if problem is not None:
        return None, problem
    validator = BoundedValidator(schema)
    first = next(validator.iter_errors({}), None)
    if first is not None and first.message == ENDLESS:
        return None, ENDLESS
    return validator, None


def _unresolvable_ref(schema: Any) -> str | None:
    resolver = Registry().with_resource(_ROOT, DRAFT202012.create_resource(schema)).resolver(_ROOT)
    work = [schema]
    while work:
        node = work.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    return f"$ref {ref!r} cannot be resolved (only references inside the schema)"
            work.extend(node.values())
        elif isinstance(node, list):
            work.extend(node)
    return None
