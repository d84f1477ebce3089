"""The configuration contract, read from the environment once per process.

| variable | meaning | default |
|---|---|---|
| KAFKA_BOOTSTRAP_SERVERS | the cluster every command and worker talks to | 127.0.0.1:9092 |
| OMNINODE_RSS_PATH | directories (or files) of charts, ``:``-separated | rss/ |
| OMNINODE_HANDLERS | handler modules or ``.py`` files, comma-separated | ``handlers.py`` |
| OMNINODE_PROFILE | ``production`` or ``local`` (the embedded broker's settings) | production |
| OMNINODE_ROLES | what this worker runs: reducer, effects, computes, projector | all four |
| OMNINODE_PARTITIONS | overrides the manifest's partition count (dev and tests) | manifest |
| OMNINODE_REPLICATION | overrides the manifest's replication factor | manifest |
| OMNINODE_APP_ID | Faust app id (consumer group, changelogs) and topic prefix | omninode |
| OMNINODE_WEB_PORT | the worker's HTTP API port (Faust's web server) | 6066 |
| OMNINODE_WEB_BIND | the address the HTTP API listens on | 127.0.0.1 |
| OMNINODE_WEB_URL | how other workers reach this one's API (http://host:port) | bind + port |
| OMNINODE_API_TOKEN | bearer token every mutating API request must carry | off |
| OMNINODE_API_URL | the worker API ``omninode status``/``history`` ask first | local port |
| OMNINODE_API_HOSTS | host names the API answers besides its own, comma-separated; `*`: any | |
| OMNINODE_QUEUES | task queues this worker serves, comma-separated | its handlers' |
| SCHEMA_REGISTRY_URL | a Confluent-compatible schema registry: write its ids | off (hash ids) |
| OMNINODE_REDUCER_BATCH | records per reducer batch (tables written once per key) | 500 |
| OMNINODE_REDUCER_BATCH_WAIT_MS | longest a batch waits for more records | 0 |
| OMNINODE_QUEUE_CONCURRENCY | per task queue, `queue=N,...` (1 to 256) | the worker's |
| OMNINODE_WORKER_CONCURRENCY | commands a worker runs at once per agent | 8 |
| OMNINODE_PROCESSING_GUARANTEE | at_least_once or exactly_once (transactions) | at_least_once |
| OMNINODE_MAX_* | input limits (``app.spi.limits``, docs/runtime.md#limits) | see there |
| KAFKA_SECURITY_PROTOCOL | PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL | PLAINTEXT |
| KAFKA_SASL_MECHANISM / _USERNAME / _PASSWORD | SASL credentials (PLAIN, SCRAM-SHA-256/512) | |
| KAFKA_SSL_CAFILE / _CERTFILE / _KEYFILE | TLS files | |
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context

from app.infra.topics import MANIFEST, ManifestError, TopicSpec, load_manifest
from app.spi.envelopes import DEFAULT_QUEUE, QUEUE_PATTERN
from app.spi.limits import DEFAULT_LIMITS, Limits

Profile = Literal["production", "local"]
ROLES = frozenset({"reducer", "effects", "computes", "projector"})
# The embedded broker answers a fetch only when its wait expires (docs/runtime.md).
LOCAL_FETCH_MAX_WAIT_MS = 25
DEFAULT_WEB_PORT = 6066  # Faust's; a second worker on one machine needs another


class SettingsError(ValueError):
    """An environment variable has a value the runtime cannot use."""


@dataclass(frozen=True, slots=True)
class Security:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    rss_paths: tuple[str, ...] = ("rss/",)
    handler_modules: tuple[str, ...] = ()
    profile: Profile = "production"
    roles: frozenset[str] = ROLES
    partitions: int | None = None
    replication: int | None = None
    app_id: str = "omninode"
    web_port: int = DEFAULT_WEB_PORT
    web_bind: str = "127.0.0.1"
    web_url: str | None = None  # None: http://<bind, or the host name if it binds all>:<port>
    api_url: str | None = None  # None: http://127.0.0.1:<web_port>
    api_token: str | None = None
    worker_concurrency: int = 8
    reducer_batch: int = 500
    api_hosts: str = ""  # OMNINODE_API_HOSTS, read by app.infra.http_guard
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    reducer_batch_wait_ms: int = 0
    # None: the queues of the handlers this worker registered (app.infra.queues).
    queues: frozenset[str] | None = None
    schema_registry_url: str | None = None
    processing_guarantee: str = "at_least_once"
    security: Security = Security()
    limits: Limits = DEFAULT_LIMITS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        profile = env.get("OMNINODE_PROFILE", "production")
        if profile not in ("production", "local"):
            raise SettingsError(f"OMNINODE_PROFILE must be production or local, not {profile!r}")
        guarantee = env.get("OMNINODE_PROCESSING_GUARANTEE", "at_least_once")
        if guarantee not in ("at_least_once", "exactly_once"):
            raise SettingsError(
                f"OMNINODE_PROCESSING_GUARANTEE must be at_least_once or exactly_once, "
                f"not {guarantee!r}"
            )
        if guarantee == "exactly_once" and profile == "local":
            raise SettingsError(
                "OMNINODE_PROCESSING_GUARANTEE=exactly_once needs Kafka transactions, which "
                "the embedded broker does not offer; use it with a real Kafka cluster"
            )
        roles = frozenset(_split(env.get("OMNINODE_ROLES", ""), ",")) or ROLES
        if unknown := roles - ROLES:
            raise SettingsError(f"unknown OMNINODE_ROLES {sorted(unknown)}; use {sorted(ROLES)}")
        queues = frozenset(_split(env.get("OMNINODE_QUEUES", ""), ",")) or None
        for queue in sorted(queues or ()):
            if not re.match(QUEUE_PATTERN, queue):
                raise SettingsError(
                    f"OMNINODE_QUEUES: {queue!r} is not a queue name ({QUEUE_PATTERN})"
                )
        return cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            rss_paths=tuple(_split(env.get("OMNINODE_RSS_PATH", ""), ":")) or ("rss/",),
            handler_modules=tuple(_split(env.get("OMNINODE_HANDLERS", ""), ",")),
            profile=profile,  # type: ignore[arg-type]
            roles=roles,
            partitions=_int(env, "OMNINODE_PARTITIONS"),
            replication=_int(env, "OMNINODE_REPLICATION"),
            app_id=env.get("OMNINODE_APP_ID", "omninode"),
            **_web_settings(env),
            worker_concurrency=_int(env, "OMNINODE_WORKER_CONCURRENCY") or 8,
            api_hosts=env.get("OMNINODE_API_HOSTS", ""),
            queue_concurrency=_queue_concurrency(env.get("OMNINODE_QUEUE_CONCURRENCY", "")),
            reducer_batch=_bounded(env, "OMNINODE_REDUCER_BATCH", 500, 1, 10_000),
            reducer_batch_wait_ms=_bounded(env, "OMNINODE_REDUCER_BATCH_WAIT_MS", 0, 0, 1_000),
            queues=queues,
            schema_registry_url=env.get("SCHEMA_REGISTRY_URL", "").strip() or None,
            processing_guarantee=guarantee,
            security=Security(
                protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
                sasl_mechanism=env.get("KAFKA_SASL_MECHANISM"),
                sasl_username=env.get("KAFKA_SASL_USERNAME"),
                sasl_password=env.get("KAFKA_SASL_PASSWORD"),
                ssl_cafile=env.get("KAFKA_SSL_CAFILE"),
                ssl_certfile=env.get("KAFKA_SSL_CERTFILE"),
                ssl_keyfile=env.get("KAFKA_SSL_KEYFILE"),
            ),
            limits=limits_from_env(env),
        )

    @property
    def is_local(self) -> bool:
        return self.profile == "local"

    @property
    def canonical_url(self) -> str:
        """How other workers reach this worker's API: ``OMNINODE_WEB_URL``, else the bind
        address and port (a worker bound to every interface names its host instead)."""
        if self.web_url is not None:
            return self.web_url.rstrip("/")
        host = socket.gethostname() if self.web_bind in ("0.0.0.0", "::", "") else self.web_bind
        return f"http://{f'[{host}]' if ':' in host else host}:{self.web_port}"

    @property
    def cli_api_url(self) -> str:
        """The worker API the CLI asks first: ``OMNINODE_API_URL``, else the local port."""
        return (self.api_url or f"http://127.0.0.1:{self.web_port}").rstrip("/")

    def consumer_options(self) -> dict[str, object]:
        """Options for the consumers we open; the embedded broker answers a fetch only when
        its wait expires, so the local profile keeps that wait short."""
        options = self.aiokafka_options()
        if self.is_local:
            options["fetch_max_wait_ms"] = LOCAL_FETCH_MAX_WAIT_MS
        return options

    def manifest(self, queues: Iterable[str] = (DEFAULT_QUEUE,)) -> dict[str, TopicSpec]:
        """The deployment's topics, with one command topic per task queue of ``queues``
        (``app.infra.runtime.deployment_manifest`` passes the loaded charts' queues)."""
        replication = 1 if self.is_local else self.replication
        try:
            return load_manifest(MANIFEST, self.partitions, self.app_id, replication, queues)
        except ManifestError as exc:
            raise SettingsError(str(exc)) from exc

    def changelog_topic(self, table: str) -> str:
        """The changelog Faust keeps for one of the workers' tables in this deployment."""
        return f"{self.app_id}-{table}-changelog"

    def topic(self, logical: str) -> str:
        """The real name of a manifest topic in this deployment (prefixed with the app id)."""
        return self.app_id + logical.removeprefix("omninode")

    def aiokafka_options(self) -> dict[str, object]:
        """Client options shared by every aiokafka client we open outside Faust."""
        options: dict[str, object] = {"bootstrap_servers": self.bootstrap_servers}
        security = self.security
        if security.protocol != "PLAINTEXT":
            options["security_protocol"] = security.protocol
        if security.sasl_mechanism:
            options["sasl_mechanism"] = security.sasl_mechanism
            options["sasl_plain_username"] = security.sasl_username
            options["sasl_plain_password"] = security.sasl_password
        if "SSL" in security.protocol:
            options["ssl_context"] = create_ssl_context(
                cafile=security.ssl_cafile,
                certfile=security.ssl_certfile,
                keyfile=security.ssl_keyfile,
            )
        return options


def _web_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The HTTP API's settings: port, bind address, this worker's URL for the others, the
    token of mutating requests and the URL the CLI asks (docs/api.md)."""
    port = _int(env, "OMNINODE_WEB_PORT")
    if port is not None and not 0 < port < 65536:
        raise SettingsError(f"OMNINODE_WEB_PORT must be a port (1-65535), not {port}")
    urls = {
        name: env.get(name, "").strip() or None for name in ("OMNINODE_WEB_URL", "OMNINODE_API_URL")
    }
    for name, url in urls.items():
        if url is not None and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", url):
            raise SettingsError(f"{name} must be an http:// or https:// URL, not {url!r}")
    return {
        "web_port": DEFAULT_WEB_PORT if port is None else port,
        "web_bind": env.get("OMNINODE_WEB_BIND", "").strip() or "127.0.0.1",
        "web_url": urls["OMNINODE_WEB_URL"],
        "api_url": urls["OMNINODE_API_URL"],
        "api_token": env.get("OMNINODE_API_TOKEN", "").strip() or None,
    }


def limits_from_env(env: Mapping[str, str] | None = None) -> Limits:
    """``Limits`` with every ``OMNINODE_MAX_<NAME>`` that is set (a positive integer)."""
    env = os.environ if env is None else env
    values: dict[str, int] = {}
    for name in Limits.names():
        variable = f"OMNINODE_MAX_{name.upper()}"
        value = _int(env, variable)
        if value is None:
            continue
        if value <= 0:
            raise SettingsError(f"{variable} must be a positive integer, not {value}")
        values[name] = value
    return Limits(**values)


def _split(value: str, separator: str) -> list[str]:
    return [part.strip() for part in value.split(separator) if part.strip()]


def _int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from exc


def _bounded(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name)
    if value is None:
        return default
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


MAX_CONCURRENCY = 256


def _queue_concurrency(raw: str) -> dict[str, int]:
    """``payments=4,default=16`` -> {"payments": 4, "default": 16}."""
    found: dict[str, int] = {}
    for part in _split(raw, ","):
        queue, equals, number = part.partition("=")
        queue = queue.strip()
        if not equals or not re.match(QUEUE_PATTERN, queue) or not number.strip().isdigit():
            raise SettingsError(
                f"OMNINODE_QUEUE_CONCURRENCY: {part!r} is not queue=N (a queue name, a number)"
            )
        value = int(number)
        if not 1 <= value <= MAX_CONCURRENCY:
            raise SettingsError(
                f"OMNINODE_QUEUE_CONCURRENCY: {queue} must be 1 to {MAX_CONCURRENCY}, not {value}"
            )
        found[queue] = value
    return found
