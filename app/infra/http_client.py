"""The CLI's side of the HTTP API: ``omninode status`` and ``history`` ask a worker first.

A worker answers from its tables (or asks the one that holds the instance), so a lookup
costs the same however much the deployment has run. When no worker answers at
``OMNINODE_API_URL`` (default the local worker port), or the one that answers serves
another deployment (``X-OmniNode-App`` is not ``OMNINODE_APP_ID``), or it cannot give the
whole journal (records journaled before the journal index existed, an index that has not
caught up with the snapshot, or none at all yet), :class:`ApiUnavailable` says why and the
CLI reads the topics as before. Only GETs, with no ``Origin``: the API's checks against
browsers (``http_guard``) let them through.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.infra.http_inputs import HISTORY_LIMIT_MAX
from app.infra.http_routing import APP_HEADER, PARTITION, SERVED_BY
from app.infra.settings import Settings

TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # an answer longer than this is not read further


class ApiUnavailable(Exception):
    """No usable answer from the API: the reason, for ``--verbose``. ``usual`` when nothing
    listens at the default URL (no worker on this machine): the topic reads that follow
    say how the command read, and nothing more needs saying."""

    def __init__(self, message: str, usual: bool = False) -> None:
        super().__init__(message)
        self.usual = usual


@dataclass(frozen=True, slots=True)
class Answer:
    """A 200 or 404 from a worker, and how it came."""

    status: int
    body: Any
    url: str
    served_by: str
    partition: str | None
    seconds: float

    def describe(self) -> str:
        where = f", partition {self.partition}" if self.partition is not None else ""
        return (
            f"read through the API at {self.url} (answered by {self.served_by}{where}) "
            f"in {self.seconds * 1000:.1f} ms"
        )


def _path(workflow: str, instance_id: str) -> str:
    return f"/api/instances/{quote(workflow, safe='')}/{quote(instance_id, safe='')}"


def get(settings: Settings, path: str) -> Answer:
    """GET ``path`` of the API: a 200 or a 404 of this deployment, else ApiUnavailable."""
    url = settings.cli_api_url + path
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status, headers = response.status, response.headers
            raw = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read(MAX_ANSWER_BYTES + 1)
    except (OSError, ValueError) as exc:  # refused, timed out, not an http URL
        refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
        usual = refused and settings.api_url is None
        raise ApiUnavailable(f"no API at {settings.cli_api_url}: {exc}", usual) from exc
    seconds = time.perf_counter() - started
    app = headers.get(APP_HEADER)
    if app != settings.app_id:
        raise ApiUnavailable(
            f"the API at {settings.cli_api_url} serves deployment {app!r}, not "
            f"{settings.app_id!r} (OMNINODE_APP_ID)"
        )
    if status not in (200, 404) or len(raw) > MAX_ANSWER_BYTES:
        raise ApiUnavailable(f"the API at {url} answered {status}: {raw[:300]!r}")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiUnavailable(f"the API at {url} answered something that is not JSON") from exc
    return Answer(status, body, url, headers.get(SERVED_BY, "?"), headers.get(PARTITION), seconds)


def snapshot(settings: Settings, workflow: str, instance_id: str) -> Answer:
    """The snapshot (``body``), or status 404 when the instance does not exist."""
    return get(settings, _path(workflow, instance_id))


def history(settings: Settings, workflow: str, instance_id: str) -> tuple[list[Any], Answer]:
    """Every journal row of the instance, page by page, and the last page's answer.

    ApiUnavailable (the CLI then reads the journal topic) when the API cannot answer for
    the whole journal: a 404 (the projector's journal index may not have the instance
    yet, while the topic has it), a page that lacks records (``missing``), or a journal
    that ends before the snapshot's seq (asked first: the index lags the reducer)."""
    state = get(settings, _path(workflow, instance_id))
    known = state.body.get("seq") if state.status == 200 else None
    rows: list[Any] = []
    first: int | None = 1
    answer: Answer | None = None
    while first is not None:
        path = f"{_path(workflow, instance_id)}/history?from_seq={first}&limit={HISTORY_LIMIT_MAX}"
        answer = get(settings, path)
        if answer.status == 404:
            raise ApiUnavailable(f"the API has no journal of {workflow}:{instance_id} (yet)")
        if answer.body.get("missing"):
            raise ApiUnavailable(
                f"the journal index lacks seqs {answer.body['missing'][:10]} of this "
                "instance (journaled before it existed)"
            )
        rows += answer.body["records"]
        first = answer.body.get("next_from_seq")
    assert answer is not None
    last = answer.body.get("seq")
    if isinstance(known, int) and isinstance(last, int) and known > last:
        raise ApiUnavailable(
            f"the journal index ends at seq {last}, the snapshot is at seq {known} (the "
            "projector has not caught up)"
        )
    return rows, answer
