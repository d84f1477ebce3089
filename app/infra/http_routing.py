"""Which worker answers an API request: the owner of the key's partition of a table.

Kafka Streams calls this interactive queries; Faust keeps what it needs in its partition
assignor: after every rebalance each worker learns the *changelog distribution*, the
canonical URL of every member with the changelog partitions it holds as active. A request
for an instance goes to the worker whose table holds the instance's partition: murmur2 of
the key's UTF-8 bytes, the partition the reducer wrote it on (``partition_for`` is the
same partitioner the producers and Faust's own ``key_store`` use).

The decisions are pure functions of a :class:`Placement`, a picture of the assignor taken
per request, so they are tested without a cluster. A request is forwarded at most once:
the forwarded copy carries :data:`FORWARDED`, and a worker that gets a forwarded request for
a partition it does not hold answers 503 with ``Retry-After`` (the assignment is moving)
instead of forwarding it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from app.infra.kafka_client import partition_for

FORWARDED = "X-OmniNode-Forwarded"  # set on a forwarded request: its sender's URL
SERVED_BY = "X-OmniNode-Served-By"  # on every answer: the URL of the worker that made it
PARTITION = "X-OmniNode-Partition"  # on answers about one key: the partition it lives on
APP_HEADER = "X-OmniNode-App"  # on every answer: the deployment (OMNINODE_APP_ID)
RETRY_AFTER_S = 1
FORWARD_TIMEOUT_S = 10.0
# Headers a forwarded request keeps (the rest, Host included, are the hop's own).
PASSED_HEADERS = ("Accept", "Authorization", "Content-Type", "Idempotency-Key")


class HttpError(Exception):
    """An answer other than 2xx, with the reason: the API turns it into a JSON error."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def unavailable(message: str) -> HttpError:
    return HttpError(503, "unavailable", message, {"Retry-After": str(RETRY_AFTER_S)})


@dataclass(frozen=True, slots=True)
class Placement:
    """The assignor's picture when a request arrives: this worker's URL, the URL and active
    changelog partitions of every member, this worker's active partitions, and whether
    this worker is ready (no rebalance or table recovery under way)."""

    self_url: str
    distribution: Mapping[str, Mapping[str, Sequence[int]]]  # url -> changelog -> partitions
    actives: frozenset[tuple[str, int]]
    ready: bool


@dataclass(frozen=True, slots=True)
class Local:
    partition: int


@dataclass(frozen=True, slots=True)
class Forward:
    url: str
    partition: int


Route = Local | Forward


def same_worker(a: str, b: str) -> bool:
    """Whether two canonical URLs name one worker (host and port; ``localhost`` is
    ``127.0.0.1``)."""
    one, two = URL(a), URL(b)

    def host(url: URL) -> str:
        name = (url.host or "").lower()
        return "127.0.0.1" if name == "localhost" else name

    return host(one) == host(two) and one.port == two.port


def owner(placement: Placement, topic: str, partition: int) -> str | None:
    """The URL of the member holding ``partition`` of changelog ``topic`` as active."""
    for url, topics in placement.distribution.items():
        if partition in topics.get(topic, ()):
            return url
    return None


def route(placement: Placement, topic: str, partitions: int, key: bytes, forwarded: bool) -> Route:
    """Answer here, forward once, or refuse with 503 (raised): see the module doc."""
    partition = partition_for(key, partitions)
    if (topic, partition) in placement.actives:
        if not placement.ready:
            raise unavailable(
                f"this worker is recovering its tables (partition {partition}); retry shortly"
            )
        return Local(partition)
    if forwarded:
        raise unavailable(
            f"partition {partition} of {topic} moved while the request was forwarded "
            "(a rebalance); retry shortly"
        )
    url = owner(placement, topic, partition)
    if url is None or same_worker(url, placement.self_url):
        raise unavailable(
            f"no worker holds partition {partition} of {topic} yet (the workers are "
            "joining or rebalancing, or none runs the role that keeps this table)"
        )
    return Forward(url, partition)


def hosts(placement: Placement, topic: str) -> dict[str, tuple[int, ...]]:
    """Every member holding partitions of ``topic``, with them (for a fan-out)."""
    found = {
        url: tuple(sorted(topics.get(topic, ())))
        for url, topics in placement.distribution.items()
        if topics.get(topic)
    }
    return dict(sorted(found.items()))


def local_partitions(placement: Placement, topic: str) -> tuple[int, ...]:
    return tuple(sorted(p for t, p in placement.actives if t == topic))


def check_coverage(served: Sequence[int], partitions: int, topic: str) -> None:
    """A fan-out's answers must cover every partition of the table exactly once: a partition
    missing or reported by two workers (both think they hold it, in a rebalance) is 503,
    never a count that misses or doubles it."""
    missing = sorted(set(range(partitions)) - set(served))
    if missing:
        raise unavailable(
            f"no answer for partitions {missing} of {topic} (the workers are rebalancing); "
            "retry shortly"
        )
    twice = sorted({p for p in served if served.count(p) > 1})
    if twice:
        raise unavailable(
            f"partitions {twice} of {topic} were answered by two workers (the workers are "
            "rebalancing); retry shortly"
        )


def faust_placement(app: Any) -> Placement:
    """The placement of a running Faust app (its assignor and recovery state)."""
    assignor = app.assignor
    actives = frozenset((tp.topic, tp.partition) for tp in assignor.assigned_actives())
    recovery = app.tables.recovery
    ready = (
        recovery.completed.is_set()
        and not getattr(app, "rebalancing", False)
        and not getattr(app, "in_recovery", False)
    )
    distribution = {
        str(url): {topic: list(parts) for topic, parts in topics.items()}
        for url, topics in assignor.tables_metadata().items()
    }
    return Placement(str(app.conf.canonical_url), distribution, actives, bool(ready))


class Forwarder:
    """Sends a request on to another worker, once, and hands its answer back."""

    def __init__(self, self_url: Callable[[], str], timeout_s: float = FORWARD_TIMEOUT_S) -> None:
        self.self_url = self_url  # read per request: ``faust worker --web-port`` may change it
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request, url: str, body: bytes | None) -> web.Response:
        """The owner's answer to ``request``. The forwarded copy goes to the owner's canonical
        URL, so its ``Host`` is the owner's own name (which the owner accepts); it carries
        no ``Origin`` or ``Sec-Fetch-*`` (this worker checked those), and keeps
        :data:`PASSED_HEADERS` whose values are UTF-8 (the checks refused the others)."""
        target = URL(url.rstrip("/") + request.raw_path, encoded=True)
        headers = {
            h: value
            for h in PASSED_HEADERS
            if (value := request.headers.get(h)) is not None and _utf8(value)
        }
        headers[FORWARDED] = self.self_url()
        try:
            async with self.session().request(
                request.method, target, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                kept = {
                    h: answer.headers[h]
                    for h in ("Content-Type", "Retry-After", "Allow", SERVED_BY, PARTITION)
                    if h in answer.headers
                }
                return web.Response(body=payload, status=answer.status, headers=kept)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise unavailable(f"the worker at {url} did not answer: {_reason(exc)}") from exc

    async def get_json(self, url: str, path: str) -> Any:
        """A fan-out's GET to one worker (marked forwarded: it answers for itself only)."""
        target = URL(url.rstrip("/") + path, encoded=True)
        try:
            async with self.session().get(target, headers={FORWARDED: self.self_url()}) as answer:
                payload = await answer.json(content_type=None)
                if answer.status != 200:
                    message = payload.get("message") if isinstance(payload, dict) else None
                    raise unavailable(f"the worker at {url} answered {answer.status}: {message}")
                return payload
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise unavailable(f"the worker at {url} did not answer: {_reason(exc)}") from exc


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
