"""The worker's web server: Faust's aiohttp server carrying OmniNode's routes, and nothing
of Faust's own (its ``/table`` pages would show table data, ``/router`` the topology).

Besides the API of ``http_api``: ``/healthz`` (the process answers), ``/readyz`` (its
partitions are assigned and its tables recovered), ``/metrics`` (Prometheus text of the
default registry), ``/api/openapi.json``, the chart drawing
``/api/workflows/{workflow}/diagram.svg`` and the web console's static files (``/`` and
``/console/{file}`` from ``app/infra/web/console``). One middleware checks the ``Host``
and, for a ``POST``, where it comes from, its bearer token (when ``OMNINODE_API_TOKEN`` is
set) and its ``Content-Type`` (``http_guard``); turns every failure into a JSON error
(never a traceback); and names the worker that answered.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import prometheus_client
from aiohttp import web
from faust.web import drivers
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from yarl import URL

from app.core.chart_svg import render_svg
from app.core.router import ChartRegistry
from app.infra.http_api import Api, TableRef, Tables
from app.infra.http_commands import Produce, chart_for
from app.infra.http_guard import CONSOLE_POLICY, Guard, check_json, secure
from app.infra.http_inputs import check_token, not_found, version, workflow_name
from app.infra.http_letters import KafkaLetters
from app.infra.http_openapi import OPENAPI
from app.infra.http_routing import (
    APP_HEADER,
    SERVED_BY,
    Forwarder,
    HttpError,
    Placement,
    faust_placement,
)
from app.infra.http_views import JOURNAL_INDEX_TABLE, dumps
from app.infra.settings import Settings
from app.infra.topics import EVENTS, SNAPSHOT_TABLE

log = logging.getLogger("omninode.http")
CONSOLE_DIR = Path(__file__).resolve().parent / "web" / "console"
PRODUCE_TIMEOUT_S = 10.0  # the longest a POST waits for Kafka to acknowledge its event
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ACTIVE_STATES = 100  # paths in a diagram's ?active=
NOT_INSTALLED = (
    "<!doctype html><title>OmniNode</title><p>The OmniNode web console is not installed "
    "(app/infra/web/console/index.html is missing). The API is at /api/ "
    '(<a href="/api/openapi.json">OpenAPI</a>).'
)
VIEWS_TABLE, COUNTS_TABLE = "instance-views", "state-counts"  # the projector's tables
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Web(AiohttpWeb):
    """Faust's aiohttp web driver without Faust's built-in pages (``omninode://``)."""

    default_blueprints = ()
    production_blueprints = ()
    debug_blueprints = ()
    optional_blueprints = ()


drivers.DRIVERS.aliases.setdefault("omninode", f"{__name__}:Web")


def error(exc: HttpError) -> web.Response:
    body = dumps({"error": exc.code, "message": exc.message})
    return web.Response(
        text=body, status=exc.status, content_type="application/json", headers=exc.headers
    )


_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
CONSOLE_HEADERS = {"Content-Security-Policy": CONSOLE_POLICY}


def _from_aiohttp(exc: web.HTTPException, max_body: int) -> HttpError:
    if exc.status == 413:
        message = f"the body is over the limit of {max_body} bytes (OMNINODE_MAX_EVENT_BYTES)"
    elif exc.status == 404:
        message = "no such endpoint (see /api/openapi.json)"
    else:
        message = exc.reason
    allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
    return HttpError(exc.status, _CODES.get(exc.status, "bad_request"), message, allow)


def check(request: web.Request, guard: Guard, token: str | None) -> None:
    """Before any handler: the ``Host``; for a ``POST`` to an endpoint (a wrong method or
    path is left to its 404 or 405), where it comes from, the token and the JSON type."""
    guard.check_host(request)
    if request.method in SAFE_METHODS or request.match_info.http_exception is not None:
        return
    guard.check_site(request)
    check_token(request.headers.get("Authorization"), token)
    check_json(request)


def middleware(
    token: str | None, app_id: str, self_url: Callable[[], str], max_body: int, guard: Guard
) -> Any:
    @web.middleware
    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            check(request, guard, token)
            response = await handler(request)
        except HttpError as exc:
            response = error(exc)
        except web.HTTPException as exc:  # no route, wrong method, body over client_max_size
            response = error(_from_aiohttp(exc, max_body))
        except Exception as exc:
            log.exception("omninode api: %s %s failed", request.method, request.path)
            reason = f"internal error ({type(exc).__name__}); the worker's log has the details"
            response = error(HttpError(500, "internal", reason))
        secure(response)
        response.headers.setdefault(SERVED_BY, self_url())
        response.headers[APP_HEADER] = app_id
        return response

    return answer


class Server:
    """The routes around the API: health, metrics, OpenAPI, diagrams, the console."""

    def __init__(self, api: Api, placement: Callable[[], Placement]) -> None:
        self.api = api
        self.placement = placement

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
            web.get("/api/openapi.json", self.openapi),
            web.get("/api/workflows/{workflow}/diagram.svg", self.diagram),
            web.get("/", self.index),
            web.get("/console/{path:.+}", self.console_file),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        placement = self.placement()
        partitions = sorted(f"{topic}:{p}" for topic, p in placement.actives)
        body = {"ready": placement.ready, "active_partitions": partitions}
        if not placement.ready:
            body["reason"] = "partitions are being assigned or its tables recovered"
        return web.json_response(body, status=200 if placement.ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        text = prometheus_client.generate_latest(prometheus_client.REGISTRY)
        return web.Response(
            body=text, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def diagram(self, request: web.Request) -> web.Response:
        workflow = workflow_name(request.match_info["workflow"])
        unknown = sorted(set(request.query) - {"version", "active"})
        if unknown:
            raise HttpError(400, "bad_request", f"unknown query parameters {unknown}")
        chart = chart_for(self.api.registry, workflow, version(request.query))
        active = [p for p in request.query.get("active", "").split(",") if p]
        if len(active) > MAX_ACTIVE_STATES:
            raise HttpError(400, "bad_request", f"at most {MAX_ACTIVE_STATES} active states")
        if strange := [p for p in active if p not in chart.states]:
            raise HttpError(400, "bad_request", f"{workflow} has no state {strange[0][:100]!r}")
        svg = render_svg(chart, frozenset(active))
        return web.Response(text=svg, content_type="image/svg+xml")

    async def index(self, request: web.Request) -> web.StreamResponse:
        page = CONSOLE_DIR / "index.html"
        if page.is_file():
            return web.FileResponse(page, headers=CONSOLE_HEADERS)
        return web.Response(text=NOT_INSTALLED, content_type="text/html", headers=CONSOLE_HEADERS)

    async def console_file(self, request: web.Request) -> web.StreamResponse:
        """A file of the console directory; nothing outside it (``..``, links, absolute)."""
        root = CONSOLE_DIR
        target = (root / request.match_info["path"]).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise not_found("no such console file")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return web.FileResponse(target, headers={"Content-Type": kind, **CONSOLE_HEADERS})


def install_api(
    app: Any, settings: Settings, registry: ChartRegistry, outbox: Any, partitions: int
) -> None:
    """Mount the API on the Faust app's web server, over the tables this worker keeps
    (its roles decide which) and the app's producer (murmur2 of the key, as every
    producer's), through ``outbox``'s events topic."""

    def ref(name: str) -> TableRef:
        return TableRef(settings.changelog_topic(name), partitions, app.tables.get(name))

    tables = Tables(
        ref(SNAPSHOT_TABLE), ref(VIEWS_TABLE), ref(JOURNAL_INDEX_TABLE), ref(COUNTS_TABLE)
    )
    install(app, settings, registry, tables, outbox.topic(EVENTS))


def install(
    app: Any, settings: Settings, registry: ChartRegistry, tables: Tables, events: Any
) -> None:
    """Mount the API on the app's web server; ``events`` is the Faust topic of events."""

    def self_url() -> str:
        return str(app.conf.canonical_url)

    def placement() -> Placement:
        return faust_placement(app)

    forwarder = Forwarder(self_url)
    letters = KafkaLetters(settings)
    api = Api(registry, settings.limits, tables, placement, forwarder, producer(events), letters)
    guard = Guard.of(self_url, settings.web_bind, settings.api_hosts)
    web_app: web.Application = app.web.web_app
    mount(web_app, api, settings.api_token, settings.app_id, self_url, guard)


def producer(events: Any, timeout_s: float = PRODUCE_TIMEOUT_S) -> Produce:
    """Produce on the Faust topic ``events``: the partition, once Kafka acknowledged the
    record; TimeoutError after ``timeout_s`` (the API's 503). The send itself is not
    cancelled then: the record may still land, so a retry keeps its Idempotency-Key."""

    async def produce(key: bytes, value: bytes) -> int:
        async with asyncio.timeout(timeout_s):
            delivered = await events.send(key=key, value=value)
            return int((await asyncio.shield(delivered)).partition)

    return produce


def mount(
    web_app: web.Application,
    api: Api,
    token: str | None,
    app_id: str,
    self_url: Callable[[], str],
    guard: Guard | None = None,
) -> None:
    """The middleware and every route on ``web_app`` (the tests mount a bare aiohttp app);
    ``guard`` by default knows the worker's own host, localhost and IP addresses."""

    async def close(_: web.Application) -> None:
        await api.forwarder.close()

    max_body = api.limits.event_bytes
    checks = guard or Guard(self_url)
    web_app.middlewares.append(middleware(token, app_id, self_url, max_body, checks))
    web_app.router.add_routes([*api.routes(), *Server(api, api.placement).routes()])
    web_app.on_cleanup.append(close)


def web_options(settings: Settings) -> dict[str, Any]:
    """The Faust settings of the web server: this driver, bind address, port, the URL the
    other workers use, and the largest body (the inbound event limit)."""
    return {
        "web": "omninode://",
        "web_bind": settings.web_bind,
        "web_port": settings.web_port,
        "web_host": URL(settings.canonical_url).host,
        "canonical_url": settings.canonical_url,
        "web_application_options": {"client_max_size": settings.limits.event_bytes},
    }
