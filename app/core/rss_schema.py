"""Stage 1 of loading: the structural JSON Schema of an RSS v1 document.

Unknown keys are rejected everywhere (``additionalProperties: false``) so typos surface
as errors with a suggestion instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any

from app.spi.envelopes import QUEUE_PATTERN

STATE_NAME = r"^[a-z_][a-z0-9_]*$"
WORKFLOW_NAME = r"^[a-z][a-z0-9_]*$"
DISPATCH_NAME = r"^[a-z_][a-z0-9_]*$"
DATA_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
EVENT_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]*$"
DECLARED_EVENT_NAME = r"^(\$start|\$cancel|[A-Za-z_][A-Za-z0-9_.:-]*)$"

_LITERAL_OR_CEL: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}

_DISPATCH: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "pattern": DISPATCH_NAME},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": DISPATCH_NAME},
                "mode": {"enum": ["await", "fire_and_forget"]},
                "input": {"type": "object", "additionalProperties": _LITERAL_OR_CEL},
                "retry": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "backoff": {"enum": ["fixed", "exponential"]},
                        "initial": {"type": "string"},
                        "max": {"type": "string"},
                    },
                },
                "timeout": {"type": "string"},
                "compensate": {"type": "string", "pattern": DISPATCH_NAME},
                "queue": {"type": "string", "pattern": QUEUE_PATTERN},
                "description": {"type": "string"},
            },
        },
    ]
}

RAISED_NAME = r"^\$?[A-Za-z_][A-Za-z0-9_.:-]*$"  # `$` names get a semantic error of their own
_RAISE: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "pattern": RAISED_NAME},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["event"],
            "properties": {
                "event": {"type": "string", "pattern": RAISED_NAME},
                "payload": {"type": "object", "additionalProperties": _LITERAL_OR_CEL},
            },
        },
    ]
}

_INVOKE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "workflow"],
    "properties": {
        "name": {"type": "string", "pattern": DISPATCH_NAME},
        "workflow": {"type": "string", "pattern": WORKFLOW_NAME},
        "version": {"type": "integer", "minimum": 1},
        "input": {"type": "object", "additionalProperties": _LITERAL_OR_CEL},
        "id": {"type": "string"},
        "timeout": {"type": "string"},
        "description": {"type": "string"},
    },
}

_ACTION_KEYS: dict[str, Any] = {
    "assign": {
        "type": "object",
        "propertyNames": {"pattern": DATA_PATH},
        "additionalProperties": _LITERAL_OR_CEL,
    },
    "raise": {"type": "array", "items": _RAISE},
    "effects": {"type": "array", "items": {"$ref": "#/$defs/dispatch"}},
    "computes": {"type": "array", "items": {"$ref": "#/$defs/dispatch"}},
}

_TARGET: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}

_TRANSITION_OBJECT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "target": {"$ref": "#/$defs/target"},
        "guard": {"type": "string"},
        "when": {"type": "string"},
        "internal": {"type": "boolean"},
        "description": {"type": "string"},
        **_ACTION_KEYS,
    },
}

_TRANSITIONS: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"$ref": "#/$defs/transition_object"},
        {"type": "array", "items": {"$ref": "#/$defs/transition"}, "minItems": 1},
    ]
}

_AFTER_ENTRY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["delay"],
    "properties": {
        "delay": {"type": "string"},
        **_TRANSITION_OBJECT["properties"],
    },
}

_STATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["atomic", "compound", "parallel", "final", "history"]},
        "description": {"type": "string"},
        "initial": {"type": "string"},
        "states": {"$ref": "#/$defs/states"},
        "on": {
            "type": "object",
            "propertyNames": {"pattern": EVENT_NAME},
            "additionalProperties": {"$ref": "#/$defs/transitions"},
        },
        "always": {"$ref": "#/$defs/transitions"},
        "after": {"type": "array", "items": {"$ref": "#/$defs/after_entry"}},
        "entry": {"$ref": "#/$defs/actions"},
        "exit": {"$ref": "#/$defs/actions"},
        "on_done": {"$ref": "#/$defs/transitions"},
        "history": {"enum": ["shallow", "deep"]},
        "target": {"$ref": "#/$defs/target"},
        "status": {"enum": ["done", "failed"]},
        "invoke": {"type": "array", "items": _INVOKE, "minItems": 1},
        "output": {"type": "object", "additionalProperties": _LITERAL_OR_CEL},
    },
}

STATE_PATH = r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$"

_MIGRATION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["from"],
    "properties": {
        "from": {"type": "integer", "minimum": 1},
        "states": {
            "type": "object",
            "propertyNames": {"pattern": STATE_PATH},
            "additionalProperties": {"type": "string"},
        },
        "data": {
            "type": "object",
            "propertyNames": {"pattern": DATA_PATH},
            "additionalProperties": _LITERAL_OR_CEL,
        },
        "description": {"type": "string"},
    },
}

RSS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "RSS v1 document",
    "type": "object",
    "additionalProperties": False,
    "required": ["rss", "workflow", "version", "initial", "states"],
    "properties": {
        "rss": {"const": 1},
        "workflow": {"type": "string", "pattern": WORKFLOW_NAME},
        "version": {"type": "integer", "minimum": 1},
        "description": {"type": "string"},
        "data": {"type": "object"},
        "data_schema": {"type": "object"},
        "events": {
            "type": "object",
            "propertyNames": {"pattern": DECLARED_EVENT_NAME},
            "additionalProperties": {"type": ["object", "null"]},
        },
        "initial": {"type": "string"},
        "states": {"$ref": "#/$defs/states"},
        "migrate": {"type": "array", "items": _MIGRATION, "minItems": 1},
    },
    "$defs": {
        "states": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": STATE_NAME},
            "additionalProperties": {"$ref": "#/$defs/state"},
        },
        "state": _STATE,
        "transitions": _TRANSITIONS,
        "transition": {"oneOf": [{"type": "string"}, {"$ref": "#/$defs/transition_object"}]},
        "transition_object": _TRANSITION_OBJECT,
        "after_entry": _AFTER_ENTRY,
        "target": _TARGET,
        "actions": {"type": "object", "additionalProperties": False, "properties": _ACTION_KEYS},
        "dispatch": _DISPATCH,
    },
}

# Keys a user may write at each kind of place, for "did you mean" suggestions.
KNOWN_KEYS: tuple[str, ...] = tuple(
    sorted(
        set(RSS_SCHEMA["properties"])
        | set(_STATE["properties"])
        | set(_AFTER_ENTRY["properties"])
        | set(_DISPATCH["oneOf"][1]["properties"])
        | set(_INVOKE["properties"])
        | set(_MIGRATION["properties"])
        | {"event", "payload"}
        | {"max_attempts", "backoff", "initial", "max"}
    )
)
