"""The limits every input is held to, and the checks of plain JSON values.

One frozen :class:`Limits` travels with the charts (the loader and the reducer read it) and
with the runtime (the agents read it); ``app.infra.settings.limits_from_env`` fills it from
``OMNINODE_MAX_*`` variables. The defaults keep every record the runtime writes (a
snapshot with its unconfirmed outputs, a journal record, a command, a dead letter) well
under Kafka's default 1 MiB request and message size. ``docs/runtime.md#limits`` is the
table users read; keep it in step with this one.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields
from typing import Any

KIB = 1024
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: no UTF-8 encodes it


@dataclass(frozen=True, slots=True)
class Limits:
    # Wire: an inbound record on the events or results topic.
    event_bytes: int = 256 * KIB  # key + value of one inbound record
    key_bytes: int = 512  # a record key, `workflowType:instanceId`
    json_depth: int = 32  # nesting of payloads, data, command inputs and handler results
    # The reducer: one instance.
    snapshot_bytes: int = 256 * KIB  # an instance's snapshot as canonical JSON
    evaluations_per_step: int = 10_000  # guards and `when` conditions evaluated by one step
    # Handlers.
    result_bytes: int = 128 * KIB  # a handler's result as JSON
    # Charts.
    chart_bytes: int = 1024 * KIB  # one RSS file
    yaml_depth: int = 64  # nesting of YAML collections in a chart
    yaml_aliases: int = 64  # `*alias` references in a chart
    yaml_nodes: int = 100_000  # YAML nodes after aliases are expanded
    state_depth: int = 16  # nesting of states
    delay_ms: int = 3650 * 86_400_000  # the longest `after` delay (ten years)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def exceeded(self, name: str, size: int) -> str | None:
        """The reason ``size`` breaks limit ``name`` (None: within it), naming its variable."""
        limit: int = getattr(self, name)
        if size <= limit:
            return None
        return f"{size} is over the limit of {limit} (OMNINODE_MAX_{name.upper()})"


DEFAULT_LIMITS = Limits()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a float's range")
    return value


# One decoder: json.loads builds a new one per call when given hooks.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def strict_json_loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses what JSON is not: NaN, Infinity, and numbers beyond a
    float's range (ValueError with the reason). Nesting is the caller's to bound
    (:func:`json_problem`); a document nested past the interpreter's stack raises
    RecursionError."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _STRICT_DECODER.decode(text)


def canonical_json(value: Any) -> str:
    """The one canonical JSON text: sorted keys, no spaces, no NaN or infinity."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def utf8_problem(text: str) -> str | None:
    """Why ``text`` has no UTF-8 encoding (None: it has one): a lone surrogate, which JSON's
    ``\\ud800`` escapes and Python's ``surrogateescape`` (undecodable bytes) produce."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return f"a lone surrogate U+{ord(found.group()):04X} at character {found.start()} (not UTF-8)"


def json_problem(value: Any, max_depth: int) -> str | None:
    """Why ``value`` is not plain JSON within ``max_depth`` levels (None: it is).

    Plain JSON: None, bool, int, finite float, str, lists and string-keyed dicts, every
    string (keys too) valid Unicode that UTF-8 encodes (no lone surrogate). Iterative, so
    a value nested far deeper than the limit is refused without deep recursion.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            if (bad := utf8_problem(item)) is not None:
                return f"{where or 'value'} has {bad}"
            continue
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{where or 'value'} is {item!r}, not a JSON number"
            continue
        if isinstance(item, list | tuple | dict) and depth > max_depth:
            nesting = f"nested deeper than {max_depth} levels at {where or 'the top'}"
            return f"{nesting} (OMNINODE_MAX_JSON_DEPTH)"
        if isinstance(item, list | tuple):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    kind = type(key).__name__
                    return f"{where or 'value'} has a {kind} key; JSON keys are strings"
                if (bad := utf8_problem(key)) is not None:
                    return f"a key of {where or 'the value'} has {bad}"
                stack.append((child, depth + 1, f"{where}.{key}" if where else key))
        else:
            return f"{where or 'value'} is a {type(item).__name__}, not a JSON value"
    return None
