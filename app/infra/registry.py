"""Schema registry ids: ``omninode contract register``, and what workers write with
``SCHEMA_REGISTRY_URL`` set (docs/schema-registry.md).

Without a registry every record carries its schema's own id, a hash (app/infra/avro.py).
With one, each topic's value schema is registered under the subject ``<topic>-value``
(Confluent's TopicNameStrategy), and the codecs write the registry's id of the current
schema. They go on reading the hash ids, and read every registry id of every version the
registry holds under the manifest's subjects, so records written before stay readable.

The client is confluent-kafka's ``SchemaRegistryClient`` (its ``schemaregistry`` extra),
imported when first needed. ``mock://`` URLs give its in-memory mock, whose schemas live in
that one client object: two clients of the same mock URL share nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from app.infra.avro import codec
from app.infra.topics import TopicSpec

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

T = TypeVar("T")
NOT_FOUND = 404
SERVER_ERROR = 500


class RegistryError(ValueError):
    """The schema registry cannot be reached, refused a request or lacks a schema, in one
    line naming the URL (without credentials) and the subject. ``unavailable``: it was not
    reached or answered 5xx, so trying again later may help."""

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True)
class Registered:
    """One subject's current schema in the registry."""

    subject: str
    schema: str
    id: int


def value_subject(spec: TopicSpec) -> str:
    """The subject of a topic's values (TopicNameStrategy): ``<topic>-value``."""
    return f"{spec.name}-value"


def schema_text(schema: Any) -> str:
    """A parsed schema as the registry gets it: self-contained JSON (a named type another
    file defines is inlined where first used), without fastavro's own keys."""
    return json.dumps(_plain(schema), separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def registry_client(url: str, **options: Any) -> SchemaRegistryClient:
    """A client of the registry at ``url`` (``mock://…``: confluent-kafka's mock); other
    ``options`` are the client's own settings (``max.retries``, ``basic.auth.user.info``)."""
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    except ImportError as exc:
        raise RegistryError(
            f"schema registry support needs confluent-kafka[schemaregistry]: {exc}"
        ) from exc
    try:
        return SchemaRegistryClient.new_client({"url": url, **options})
    except (ValueError, TypeError) as exc:
        raise RegistryError(f"schema registry {safe_url(url)}: {exc}") from exc


def register_schemas(
    client: SchemaRegistryClient, manifest: Mapping[str, TopicSpec]
) -> list[Registered]:
    """Register every topic's current value schema under ``<topic>-value``; registering a
    schema the subject already has changes nothing and answers the same id."""
    from confluent_kafka.schema_registry import Schema  # noqa: PLC0415

    rows = []
    for spec in manifest.values():
        subject = value_subject(spec)
        schema = Schema(schema_text(codec(spec.value_schema).schema), "AVRO")
        schema_id = _call(client, subject, client.register_schema, subject, schema)
        rows.append(Registered(subject, spec.value_schema, schema_id))
    return rows


def use_registry_ids(
    client: SchemaRegistryClient, manifest: Mapping[str, TopicSpec]
) -> dict[str, int]:
    """Make the codecs write the registry's ids and read them besides the hash ids. Per
    topic, looks up every version of its value schema under ``<topic>-value``; the current
    one must be there (``omninode contract register``), earlier ones may. A schema found
    with different ids under different subjects writes the first and reads them all.
    Answers the id each schema now writes; installs nothing unless every lookup succeeds."""
    writes: dict[str, int] = {}
    aliases: dict[str, dict[int, int]] = {}
    for spec in manifest.values():
        subject, avro = value_subject(spec), codec(spec.value_schema)
        for own, schema in avro.versions.items():
            found = _lookup(client, subject, schema_text(schema))
            if found is None and own == avro.schema_id:
                raise RegistryError(
                    f"schema registry {_url(client)}: subject {subject} has no {avro.name} "
                    "of this version; run `omninode contract register`"
                )
            if found is not None:
                aliases.setdefault(avro.name, {})[found] = own
                if own == avro.schema_id:
                    writes.setdefault(avro.name, found)
    try:
        for name, write_id in writes.items():
            codec(name).use_ids(write_id, aliases[name])
    except ValueError as exc:
        for name in writes:
            codec(name).reset_ids()
        raise RegistryError(f"schema registry {_url(client)}: {exc}") from exc
    return writes


def install_registry_ids(url: str | None, manifest: Mapping[str, TopicSpec]) -> dict[str, int]:
    """What a process that writes records calls at startup with ``SCHEMA_REGISTRY_URL``:
    :func:`use_registry_ids` with a client of ``url``; without a URL, nothing (hash ids)."""
    if url is None:
        return {}
    client = registry_client(url)
    try:
        return use_registry_ids(client, manifest)
    finally:
        client.close()


def _lookup(client: SchemaRegistryClient, subject: str, text: str) -> int | None:
    """The id of ``text`` under ``subject``; None if the registry does not have it there."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryError  # noqa: PLC0415

    try:
        return client.lookup_schema(subject, Schema(text, "AVRO")).schema_id
    except SchemaRegistryError as exc:
        if exc.http_status_code == NOT_FOUND:
            return None
        raise _error(client, subject, exc) from exc
    except Exception as exc:  # the client's transport errors (httpx), any of them
        raise _error(client, subject, exc) from exc


def _call(client: SchemaRegistryClient, subject: str, method: Callable[..., T], *args: Any) -> T:
    try:
        return method(*args)
    except Exception as exc:  # SchemaRegistryError, and the client's transport errors
        raise _error(client, subject, exc) from exc


def _error(client: SchemaRegistryClient, subject: str, exc: Exception) -> RegistryError:
    from confluent_kafka.schema_registry import SchemaRegistryError  # noqa: PLC0415

    if isinstance(exc, SchemaRegistryError):
        reason = f"{exc.error_message} (HTTP {exc.http_status_code})"
        unavailable = exc.http_status_code >= SERVER_ERROR
    else:
        reason, unavailable = " ".join(f"{type(exc).__name__}: {exc}".split()), True
    where = f"schema registry {_url(client)}, subject {subject}"
    return RegistryError(f"{where}: {reason}", unavailable)


def _url(client: SchemaRegistryClient) -> str:
    conf = client.config()  # type: ignore[no-untyped-call]  # unannotated in confluent-kafka
    return safe_url(str(conf.get("url", "")))


def safe_url(url: str) -> str:
    """``url`` (or a comma-separated list of them) without user names and passwords."""
    parts = [urlsplit(one.strip()) for one in url.split(",")]
    return ",".join(p._replace(netloc=p.netloc.rpartition("@")[2]).geturl() for p in parts)
