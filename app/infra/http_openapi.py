"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/openapi.json`` (docs/api.md
is the prose; keep the two in step)."""

from __future__ import annotations

from typing import Any

from app.infra.http_inputs import (
    HISTORY_LIMIT_DEFAULT,
    HISTORY_LIMIT_MAX,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    MAX_IDEMPOTENCY_KEY,
    STATUSES,
)

Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


REASONS = {
    400: "bad input, with the reason (nothing was produced)",
    401: "a mutating request without the bearer token (OMNINODE_API_TOKEN)",
    403: "a POST a browser sent from another site or origin (Sec-Fetch-Site, Origin)",
    404: "no such instance, journal, workflow type or dead letter",
    409: "$start of an instance that exists",
    413: "the body is over OMNINODE_MAX_EVENT_BYTES",
    415: "a POST without Content-Type: application/json",
    421: "a Host this worker does not answer for (see OMNINODE_API_HOSTS)",
    500: "a bug: a short reason (the traceback is in the worker's log)",
    503: (
        "cannot answer now: a rebalance or recovery, a worker or Kafka not reachable, or "
        "Kafka not acknowledging in time; see Retry-After"
    ),
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}},
}
COMMON = (421, 500)  # any endpoint may answer these
POSTED = (400, 401, 403, 404, 413, 415, 503)  # any POST may answer these too


def _errors(*statuses: int) -> Json:
    answers = {}
    for status in sorted({*statuses, *COMMON}):
        answer = _json(_ref("Error"), REASONS[status])
        if status == 503:
            answer["headers"] = RETRY_AFTER
        answers[str(status)] = answer
    return answers


def _path(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: Json) -> Json:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _limit(default: int, most: int) -> Json:
    return _query(
        "limit",
        f"at most this many (default {default}, most {most})",
        {"type": "integer", "minimum": 1, "maximum": most, "default": default},
    )


INSTANCE = [_path("workflow", "workflow type"), _path("id", "instance id")]
CURSOR = _query("cursor", "next_cursor of the previous page, as given", {"type": "string"})
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "becomes the event id: the same key twice is applied once",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
}
BODY = {
    "description": (
        "a JSON object (empty body: {}), plain JSON within the limits, strings valid UTF-8; "
        "sent with Content-Type: application/json"
    ),
    "required": True,
    "content": {"application/json": {"schema": {"type": "object"}}},
}
EMPTY_BODY = {
    "description": "nothing (or any JSON); Content-Type: application/json is still required",
    "required": True,
    "content": {"application/json": {"schema": {}}},
}
ACCEPTED = _json(_ref("Accepted"), "the event is on the events topic (acknowledged by Kafka)")
SECURE: list[Json] = [{"bearer": []}]

PATHS: Json = {
    "/api/instances": {
        "get": {
            "summary": "Instances, newest first (updated_at, then key), from every worker",
            "parameters": [
                _query("workflow", "only this workflow type", {"type": "string"}),
                _query("status", "only this status", {"enum": list(STATUSES)}),
                _query("state", "only instances in this state or inside it", {"type": "string"}),
                _limit(LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX),
                CURSOR,
            ],
            "responses": {"200": _json(_ref("InstancePage"), "one page"), **_errors(400, 503)},
        }
    },
    "/api/instances/{workflow}/{id}": {
        "get": {
            "summary": "The instance's snapshot (what omninode status --json prints)",
            "parameters": INSTANCE,
            "responses": {
                "200": _json(_ref("Snapshot"), "the snapshot"),
                **_errors(400, 404, 503),
            },
        },
        "post": {
            "summary": "Start the instance: produce $start with the body as its data",
            "parameters": [
                *INSTANCE,
                IDEMPOTENCY,
                _query("version", "the chart version (default: the latest)", {"type": "integer"}),
            ],
            "requestBody": BODY,
            "security": SECURE,
            "responses": {"202": ACCEPTED, **_errors(*POSTED, 409)},
        },
    },
    "/api/instances/{workflow}/{id}/history": {
        "get": {
            "summary": "The instance's journal in seq order, a page at a time",
            "parameters": [
                *INSTANCE,
                _query("from_seq", "the first seq (default 1)", {"type": "integer"}),
                _limit(HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX),
            ],
            "responses": {
                "200": _json(_ref("HistoryPage"), "one page"),
                **_errors(400, 404, 503),
            },
        }
    },
    "/api/instances/{workflow}/{id}/events/{type}": {
        "post": {
            "summary": "Send an event to the instance, the body as its payload",
            "parameters": [*INSTANCE, _path("type", "event type"), IDEMPOTENCY],
            "requestBody": BODY,
            "security": SECURE,
            "responses": {"202": ACCEPTED, **_errors(*POSTED)},
        }
    },
    "/api/workflows": {
        "get": {
            "summary": "Loaded charts, their versions, Mermaid text and state counts",
            "responses": {"200": _json(_ref("Workflows"), "every workflow"), **_errors(503)},
        }
    },
    "/api/workflows/{workflow}/diagram.svg": {
        "get": {
            "summary": "The chart drawn as SVG, active states highlighted",
            "parameters": [
                _path("workflow", "workflow type"),
                _query("version", "default: the latest", {"type": "integer"}),
                _query("active", "comma-separated state paths", {"type": "string"}),
            ],
            "responses": {
                "200": {"description": "SVG", "content": {"image/svg+xml": {}}},
                **_errors(400, 404),
            },
        }
    },
    "/api/deadletters": {
        "get": {
            "summary": "Dead letters, newest first",
            "parameters": [
                _query("stage", "only this stage", {"type": "string"}),
                _limit(HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX),
                CURSOR,
            ],
            "responses": {
                "200": _json(_ref("DeadLetterPage"), "one page"),
                **_errors(400, 503),
            },
        }
    },
    "/api/deadletters/{id}": {
        "get": {
            "summary": "One dead letter with its original bytes (hex) and record decoded",
            "parameters": [_path("id", "partition:offset")],
            "responses": {
                "200": _json({"type": "object"}, "the letter"),
                **_errors(404, 503),
            },
        }
    },
    "/api/deadletters/{id}/replay": {
        "post": {
            "summary": "Send the letter's original record back to its topic",
            "parameters": [_path("id", "partition:offset")],
            "requestBody": EMPTY_BODY,
            "security": SECURE,
            "responses": {
                "202": _json({"type": "object"}, "replayed"),
                **_errors(*(s for s in POSTED if s != 413)),
            },
        }
    },
    "/healthz": {"get": {"summary": "The process answers", "responses": {"200": _json({}, "up")}}},
    "/readyz": {
        "get": {
            "summary": "Partitions assigned and tables recovered",
            "responses": {"200": _json({}, "ready"), "503": _json({}, "not ready")},
        }
    },
    "/metrics": {"get": {"summary": "Prometheus text", "responses": {"200": {"description": ""}}}},
}

STRING_LIST = {"type": "array", "items": {"type": "string"}}
SCHEMAS: Json = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "Accepted": {
        "type": "object",
        "required": ["event_id", "type", "key", "duplicate"],
        "properties": {
            "event_id": {"type": "string"},
            "type": {"type": "string"},
            "key": {"type": "string"},
            "duplicate": {"type": "boolean"},
            "partition": {"type": "integer"},
        },
    },
    "Snapshot": {"type": "object", "description": "see docs/api.md"},
    "InstanceView": {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "workflow_type": {"type": "string"},
            "instance_id": {"type": "string"},
            "workflow_version": {"type": "integer"},
            "status": {"enum": list(STATUSES)},
            "configuration": STRING_LIST,
            "seq": {"type": "integer"},
            "updated_at": {"type": "string"},
            "parent": {"type": ["string", "null"]},
            "children": {"type": "array", "items": {"type": "object"}},
        },
    },
    "InstancePage": {
        "type": "object",
        "properties": {
            "instances": {"type": "array", "items": _ref("InstanceView")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "HistoryPage": {
        "type": "object",
        "properties": {
            "workflow": {"type": "string"},
            "instance_id": {"type": "string"},
            "seq": {"type": "integer"},
            "records": {"type": "array", "items": {"type": "object"}},
            "missing": {"type": "array", "items": {"type": "integer"}},
            "next_from_seq": {"type": ["integer", "null"]},
        },
    },
    "Workflows": {
        "type": "object",
        "properties": {"workflows": {"type": "array", "items": {"type": "object"}}},
    },
    "DeadLetterPage": {
        "type": "object",
        "properties": {
            "deadletters": {"type": "array", "items": {"type": "object"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
}

OPENAPI: Json = {
    "openapi": "3.1.0",
    "info": {
        "title": "OmniNode Workflows API",
        "version": "1",
        "description": (
            "Served by every worker; see docs/api.md. Every POST sends Content-Type: "
            "application/json; browsers may POST only from the API's own origin."
        ),
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
