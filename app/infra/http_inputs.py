"""Every input of the HTTP API, checked against a documented limit with a clear reason.

Path parts (workflow type, instance id, event type), the JSON body, the ``Idempotency-Key``
header, the query of the instance list and of a history page, the bearer token, and the
list's opaque cursor. Each check raises :class:`HttpError` (400, 401, 404 or 413) with
the reason, and nothing has been produced or read when it does. docs/api.md lists them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.infra.http_routing import HttpError
from app.spi.envelopes import InstanceStatus
from app.spi.limits import Limits, json_problem, strict_json_loads, utf8_problem

WORKFLOW_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,127}")  # as RSS names one (fullmatch)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_IDEMPOTENCY_KEY = 200  # characters of an Idempotency-Key (it becomes the event id)
MAX_EVENT_TYPE = 200  # characters of an event type in a path
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 500
HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX = 100, 1000
MAX_CURSOR = 1024  # characters of a list cursor
STATUSES: tuple[InstanceStatus, ...] = ("active", "done", "failed", "cancelled")


def bad_request(message: str) -> HttpError:
    return HttpError(400, "bad_request", message)


def not_found(message: str) -> HttpError:
    return HttpError(404, "not_found", message)


def _plain(text: str, max_chars: int) -> bool:
    """1 to ``max_chars`` characters of UTF-8 without control characters."""
    return 0 < len(text) <= max_chars and not _CONTROL.search(text) and not utf8_problem(text)


def workflow_name(text: str) -> str:
    if not WORKFLOW_PATTERN.fullmatch(text):
        raise not_found(f"no workflow type {text[:140]!r} (a type is [a-z][a-z0-9_]*)")
    return text


def instance_id(workflow: str, text: str, limits: Limits) -> str:
    """An instance id: not empty, no control characters, its key within the key limit."""
    if not text:
        raise bad_request("the instance id is empty")
    if _CONTROL.search(text):
        raise bad_request("the instance id contains a control character")
    if (bad := utf8_problem(text)) is not None:
        raise bad_request(f"the instance id has {bad}")
    size = len(f"{workflow}:{text}".encode())
    if size > limits.key_bytes:
        raise bad_request(
            f"the key {workflow}:{text[:40]}... is {size} bytes, over the limit of "
            f"{limits.key_bytes} bytes (OMNINODE_MAX_KEY_BYTES)"
        )
    return text


def event_type(text: str) -> str:
    if not _plain(text, MAX_EVENT_TYPE):
        raise bad_request(
            f"not an event type: 1 to {MAX_EVENT_TYPE} characters of UTF-8 without control "
            "characters"
        )
    return text


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The ``Idempotency-Key`` header, which becomes the event id (None: a random one)."""
    key = headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _plain(key, MAX_IDEMPOTENCY_KEY):
        raise bad_request(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters of UTF-8 without "
            "control characters"
        )
    return key


def json_object(raw: bytes, limits: Limits) -> dict[str, Any]:
    """A request body: empty (``{}``) or one JSON object of plain JSON, at most
    ``OMNINODE_MAX_EVENT_BYTES`` bytes, nested at most ``OMNINODE_MAX_JSON_DEPTH`` levels."""
    if len(raw) > limits.event_bytes:
        raise too_large(len(raw), limits)
    if not raw.strip():
        return {}
    try:
        value = strict_json_loads(raw)
    except RecursionError as exc:
        raise bad_request("the body is nested too deeply to parse") from exc
    except json.JSONDecodeError as exc:
        raise bad_request(f"the body is not JSON: {exc.msg} (line {exc.lineno})") from exc
    except ValueError as exc:  # NaN, Infinity, a number beyond a double, bad UTF-8
        raise bad_request(f"the body is not plain JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise bad_request(f"the body must be a JSON object, not {type(value).__name__}")
    problem = json_problem(value, limits.json_depth)
    if problem is not None:
        raise bad_request(f"the body: {problem}")
    return value


def too_large(size: int, limits: Limits) -> HttpError:
    return HttpError(
        413,
        "payload_too_large",
        f"the body is {size} bytes, over the limit of {limits.event_bytes} bytes "
        "(OMNINODE_MAX_EVENT_BYTES)",
    )


def positive_int(query: Mapping[str, str], name: str, default: int, most: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    digits = len(str(most))
    if not raw.isascii() or not raw.isdigit() or len(raw) > digits or not 1 <= int(raw) <= most:
        raise bad_request(f"{name} must be an integer from 1 to {most}, not {raw[:20]!r}")
    return int(raw)


def version(query: Mapping[str, str]) -> int | None:
    if query.get("version") in (None, ""):
        return None
    return positive_int(query, "version", 1, 999_999_999)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """``GET /api/instances``: filters, page size and where the page starts."""

    workflow: str | None = None
    status: str | None = None
    state: str | None = None
    limit: int = LIST_LIMIT_DEFAULT
    after: tuple[int, str] | None = None  # (updated_at ms, key) of the last row seen

    def to_query(self) -> dict[str, str]:
        """The query string that asks another worker the same thing."""
        query = {"limit": str(self.limit)}
        query.update({k: v for k, v in self._filters().items() if v is not None})
        if self.after is not None:
            query["cursor"] = encode_cursor(self.after)
        return query

    def _filters(self) -> dict[str, str | None]:
        return {"workflow": self.workflow, "status": self.status, "state": self.state}


def list_query(query: Mapping[str, str]) -> ListQuery:
    unknown = sorted(set(query) - {"workflow", "status", "state", "limit", "cursor"})
    if unknown:
        raise bad_request(f"unknown query parameters {unknown}")
    workflow = query.get("workflow") or None
    if workflow is not None and not WORKFLOW_PATTERN.fullmatch(workflow):
        raise bad_request(f"workflow {workflow[:140]!r} is not a workflow type")
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise bad_request(f"status must be one of {', '.join(STATUSES)}, not {status[:40]!r}")
    state = query.get("state") or None
    if state is not None and not _plain(state, 500):
        raise bad_request("state must be a state path of at most 500 characters")
    limit = positive_int(query, "limit", LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)
    cursor = query.get("cursor") or None
    after = decode_cursor(cursor) if cursor is not None else None
    return ListQuery(workflow, status, state, limit, after)


def history_query(query: Mapping[str, str]) -> tuple[int, int]:
    """``?from_seq=&limit=`` of a history page: the first seq and the most records."""
    first = positive_int(query, "from_seq", 1, 2**53)
    return first, positive_int(query, "limit", HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX)


def encode_cursor(after: tuple[int, str]) -> str:
    """An opaque cursor: base64url of ``[updated_at ms, key]``."""
    text = json.dumps([after[0], after[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    invalid = bad_request("cursor is not one this API gave out (pass next_cursor as it is)")
    if len(cursor) > MAX_CURSOR or not cursor.isascii():
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise invalid from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
        or utf8_problem(value[1])
    ):
        raise invalid
    return value[0], value[1]


def check_token(authorization: str | None, token: str | None) -> None:
    """With ``OMNINODE_API_TOKEN`` set, a mutating request carries ``Bearer <token>``.
    Compared as bytes: a header's bytes that are not UTF-8 reach here as surrogates
    (aiohttp decodes headers with ``surrogateescape``); ``surrogatepass`` encodes any of
    them, so a strange header is a 401, never an exception."""
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    matches = hmac.compare_digest(_raw(given.strip()), _raw(token))
    if scheme.lower() != "bearer" or not matches:
        raise HttpError(
            401,
            "unauthorized",
            "this request changes state: send Authorization: Bearer <OMNINODE_API_TOKEN>",
            {"WWW-Authenticate": 'Bearer realm="omninode"'},
        )


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def letters_query(query: Mapping[str, str]) -> tuple[str | None, ListQuery]:
    """``GET /api/deadletters?stage=&limit=&cursor=``."""
    unknown = sorted(set(query) - {"stage", "limit", "cursor"})
    if unknown:
        raise bad_request(f"unknown query parameters {unknown}")
    stage = query.get("stage") or None
    if stage is not None and not _plain(stage, 40):
        raise bad_request("stage must be a stage name (decode, route, step, handler, internal)")
    limit = positive_int(query, "limit", HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX)
    cursor = query.get("cursor") or None
    return stage, ListQuery(limit=limit, after=decode_cursor(cursor) if cursor else None)
