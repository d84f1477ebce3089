"""The workflow contract: one AsyncAPI 3.0 document of what OmniNode reads and writes on Kafka.

Built from the topic manifest (one channel per topic, at the deployment's real topic name),
the Avro schemas (the records on the wire, each with its schema id) and the loaded charts
(per workflow: the events a client may send, the command of each effect and compute, and
the result events a handler answers with). Operations are the workers' own: what each role
receives and sends. A service in another language that starts instances, sends events or
runs effects reads the same document.

A record is Avro in the Confluent wire format; the per-workflow messages describe the JSON
object carried as text in one of its fields (``Event.payload``, ``Command.input``), so each
says in ``x-omninode-envelope`` which record, which field, and the record fields that tell
it apart (``workflow_type`` and ``type``; ``kind`` and ``name``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from app.core.model import Chart, DispatchSpec
from app.core.queues import command_queues
from app.infra import topics
from app.infra.avro import HEADER, MAGIC, SCHEMA_DIR, SCHEMA_NAMES, codec
from app.infra.settings import Settings
from app.infra.topics import TopicSpec
from app.infra.worker_agent import ERROR_CHARS
from app.spi.envelopes import CANCEL, DEFAULT_QUEUE, RESULT_SUFFIXES, START

Json = dict[str, Any]
ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
KAFKA_BINDING = "0.5.0"
OUTCOMES = tuple(suffix.removeprefix(".") for suffix in RESULT_SUFFIXES)
# AsyncAPI's component keys allow only these characters (``$start`` does not fit).
_NOT_KEY = re.compile(r"[^A-Za-z0-9_.\-]")

# What each role receives and sends (app/infra/faust_app.py), as (role, action, topic,
# groups of the channel's messages, summary); no groups: every message of the channel.
OPERATIONS: tuple[tuple[str, str, str, tuple[str, ...] | None, str], ...] = (
    ("reducer", "receive", topics.EVENTS, None, "Steps the instance the event is keyed by."),
    ("reducer", "receive", topics.RESULTS, None, "Steps the instance a result answers."),
    ("reducer", "send", topics.JOURNAL, None, "Every accepted event, with its seq."),
    (
        "reducer",
        "send",
        topics.EVENTS,
        ("record",),
        "Timer firings ($after.<state>.<i>) and a child workflow's $start and $cancel.",
    ),
    (
        "reducer",
        "send",
        topics.RESULTS,
        ("record",),
        "A child workflow's answer to its parent (<invoke>.done|failed).",
    ),
    ("effects", "send", topics.RESULTS, ("results.effect",), "An awaited effect's answer."),
    ("computes", "send", topics.RESULTS, ("results.compute",), "An awaited compute's answer."),
    ("projector", "receive", topics.JOURNAL, None, "Folds the journal into the read models."),
    ("projector", "send", topics.INSTANCE_VIEWS, None, "One view per instance."),
    ("projector", "send", topics.STATE_DELTAS, None, "+1/-1 per state, keyed by state."),
    ("projector", "receive", topics.STATE_DELTAS, None, "Sums the deltas of each state."),
    ("projector", "send", topics.STATE_COUNTS, None, "Instances per state."),
    *(
        (role, "send", topics.DEAD_LETTERS, None, "What it could not process, and why.")
        for role in ("reducer", "effects", "computes", "projector")
    ),
)


class ContractError(ValueError):
    """Two messages of the contract would have the same key."""


@dataclass(frozen=True, slots=True)
class SchemaId:
    """An Avro schema's id, as every process derives it (app/infra/avro.py)."""

    name: str
    value: int

    @property
    def hex(self) -> str:
        return f"0x{self.value:08x}"

    @property
    def header(self) -> str:
        """The 5 bytes before every record's Avro body: magic byte 0, then the id."""
        return HEADER.pack(MAGIC, self.value).hex()


def schema_ids() -> list[SchemaId]:
    return [SchemaId(name, codec(name).schema_id) for name in SCHEMA_NAMES]


def ids_table(ids: Iterable[SchemaId]) -> list[str]:
    """One aligned line per schema: name, id in decimal and hex, the wire header in hex."""
    rows = [("schema", "id", "hex", "header")]
    rows += [(i.name, str(i.value), i.hex, i.header) for i in ids]
    name, value, hex_ = (max(len(row[column]) for row in rows) for column in range(3))
    return [f"{r[0]:<{name}}  {r[1]:<{value}}  {r[2]:<{hex_}}  {r[3]}" for r in rows]


@dataclass
class _Catalog:
    """The messages by key (``components.messages``) and, per channel, its message keys by
    group (``record``: the Avro record itself; ``events``; ``commands``; ``results.<kind>``)."""

    messages: dict[str, Json] = field(default_factory=dict)
    channels: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def add(self, channel: str, group: str, name: str, message: Json) -> None:
        key = _NOT_KEY.sub("_", name)
        if key in self.messages:
            raise ContractError(f"two messages of the contract are both keyed {key!r}")
        self.messages[key] = {"name": name, **message}
        self.link(channel, group, key)

    def link(self, channel: str, group: str, key: str) -> None:
        self.channels.setdefault(channel, {}).setdefault(group, []).append(key)

    def keys(self, channel: str, groups: tuple[str, ...] | None = None) -> list[str]:
        by_group = self.channels.get(channel, {})
        chosen = by_group if groups is None else groups
        return [key for group in chosen for key in by_group.get(group, [])]


def build_contract(settings: Settings, charts: Iterable[Chart], servers: str | None = None) -> Json:
    """The AsyncAPI document of the deployment ``settings`` names, for these charts;
    ``servers`` (KAFKA_BOOTSTRAP_SERVERS) become its servers when given."""
    charts = list(charts)
    queues = command_queues(charts)
    manifest = settings.manifest(queues)
    catalog = _Catalog()
    _add_records(catalog, manifest)
    by_workflow: dict[str, list[Chart]] = {}
    for chart in sorted(charts, key=lambda c: (c.workflow, c.version)):
        by_workflow.setdefault(chart.workflow, []).append(chart)
    for workflow, versions in by_workflow.items():
        _add_workflow(catalog, workflow, versions)
    body: Json = {
        "channels": {name: _channel(settings, spec, catalog) for name, spec in manifest.items()},
        "operations": _operations(catalog, queues),
        "components": {"messages": catalog.messages},
    }
    workflows = {w: [c.version for c in versions] for w, versions in by_workflow.items()}
    document: Json = {"asyncapi": ASYNCAPI_VERSION, "info": _info(settings, workflows, body)}
    if servers:
        document["servers"] = _servers(servers, settings.security.protocol)
    # A plain JSON tree: no object shared between two places (YAML would print an alias).
    return cast(Json, json.loads(json.dumps({**document, **body})))


def _info(settings: Settings, workflows: dict[str, list[int]], body: Json) -> Json:
    # The version names the contract itself: it changes exactly when a message, a topic or
    # an operation does (the servers aside: the same contract runs on any cluster).
    canonical = json.dumps([workflows, body], sort_keys=True, separators=(",", ":"))
    return {
        "title": f"OmniNode workflows ({settings.app_id})",
        "version": hashlib.sha256(canonical.encode()).hexdigest()[:12],
        "description": (
            "The topics, records and workflow messages of an OmniNode deployment, generated "
            "by `omninode contract` from the topic manifest, the Avro schemas and the charts "
            "on OMNINODE_RSS_PATH. Records are Avro in the Confluent wire format (byte 0, the "
            "4-byte big-endian schema id, the Avro body); a workflow message is the JSON "
            "object carried as text in the record field its x-omninode-envelope names. "
            "Operations are the workers': what each role receives and sends."
        ),
        "x-omninode-app-id": settings.app_id,
        "x-omninode-workflows": workflows,
    }


def _servers(bootstrap: str, security_protocol: str) -> Json:
    hosts = [host.strip() for host in bootstrap.split(",") if host.strip()]
    protocol = "kafka" if security_protocol == "PLAINTEXT" else "kafka-secure"
    server = {"protocol": protocol, "description": f"KAFKA_BOOTSTRAP_SERVERS ({security_protocol})"}
    if len(hosts) == 1:
        return {"kafka": {"host": hosts[0], **server}}
    return {f"kafka-{n}": {"host": host, **server} for n, host in enumerate(hosts, start=1)}


def _channel(settings: Settings, spec: TopicSpec, catalog: _Catalog) -> Json:
    logical = _logical(settings, spec)
    address = settings.topic(logical)
    return {
        "address": address,
        "title": logical,
        "description": f"{spec.purpose} Key: {spec.key}.",
        "messages": {key: _ref("components", "messages", key) for key in catalog.keys(logical)},
        "bindings": {
            "kafka": {
                "topic": address,
                "partitions": spec.partitions,
                "replicas": spec.replication,
                "topicConfiguration": {
                    "cleanup.policy": [p.strip() for p in spec.cleanup_policy.split(",")],
                    "retention.ms": spec.retention_ms,
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _logical(settings: Settings, spec: TopicSpec) -> str:
    return "omninode" + spec.name.removeprefix(settings.app_id)


def _queue_operations(queues: Iterable[str]) -> list[tuple[str, str, str, None, str]]:
    """Per task queue: the reducer sends its commands, the workers serving it run them."""
    found: list[tuple[str, str, str, None, str]] = []
    for queue in queues:
        channel = topics.command_topic(queue)
        found.append(("reducer", "send", channel, None, f"The commands of task queue {queue}."))
        summary = f"A worker serving task queue {queue} runs the command's handler."
        found.append(("workers", "receive", channel, None, summary))
    return found


def _operations(catalog: _Catalog, queues: Iterable[str]) -> Json:
    operations: Json = {}
    for role, action, channel, groups, summary in (*OPERATIONS, *_queue_operations(queues)):
        keys = catalog.keys(channel, groups)
        operations[f"{role}.{action}.{channel.removeprefix('omninode.')}"] = {
            "action": action,
            "channel": _ref("channels", channel),
            "summary": summary,
            "tags": [{"name": role}],
            "messages": [_ref("channels", channel, "messages", key) for key in keys],
        }
    return operations


def _ref(*path: str) -> Json:
    return {"$ref": "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in path)}


# -- the Avro records ------------------------------------------------------------------------


def _add_records(catalog: _Catalog, manifest: dict[str, TopicSpec]) -> None:
    keys: dict[str, str] = {}
    for spec in manifest.values():
        keys.setdefault(spec.value_schema, spec.key)
    for sid in schema_ids():
        schema = json.loads((SCHEMA_DIR / f"{sid.name}.avsc").read_text(encoding="utf-8"))
        message = {
            "title": schema.get("name", sid.name),
            "summary": schema.get("doc", f"The {sid.name} record."),
            "contentType": "avro/binary",
            "payload": {"schemaFormat": AVRO_FORMAT, "schema": schema},
            "bindings": {"kafka": _kafka_message(keys.get(sid.name, ""), confluent=True)},
            "x-omninode-schema-id": sid.value,
            "x-omninode-schema-id-hex": sid.hex,
            "x-omninode-wire-header": sid.header,
        }
        catalog.messages[sid.name] = {"name": sid.name, **message}
    for logical, spec in manifest.items():
        catalog.link(logical, "record", spec.value_schema)


def _kafka_message(key: str, confluent: bool = False, prefix: str | None = None) -> Json:
    schema: Json = {"type": "string", "description": key}
    if prefix is not None:
        schema["pattern"] = f"^{re.escape(prefix)}:"
    binding: Json = {"key": schema}
    if confluent:
        binding |= {"schemaIdLocation": "payload", "schemaIdPayloadEncoding": "confluent"}
    return {**binding, "bindingVersion": KAFKA_BINDING}


def _envelope(record: str, carried_in: str, match: Json, **more: Any) -> Json:
    return {
        "record": record,
        "schemaId": codec(record).schema_id,
        "field": carried_in,
        "match": match,
        **more,
    }


# -- per workflow ----------------------------------------------------------------------------


def _add_workflow(catalog: _Catalog, workflow: str, charts: list[Chart]) -> None:
    events: dict[str, dict[int, Json]] = {}
    for chart in charts:
        for event, schema in external_events(chart).items():
            events.setdefault(event, {})[chart.version] = schema
    for event, by_version in events.items():
        message = _event_message(workflow, event, by_version)
        catalog.add(topics.EVENTS, "events", f"{workflow}.{event}", message)
    sites: dict[tuple[str, str], list[_Site]] = {}
    for chart in charts:
        for site in dispatch_sites(chart):
            sites.setdefault((site.kind, site.name), []).append(site)
    for (kind, name), found in sorted(sites.items()):
        message = _command_message(workflow, kind, name, found)
        first, *others = sorted({site.queue for site in found})
        key = f"{workflow}.{kind}.{name}"
        catalog.add(topics.command_topic(first), "commands", key, message)
        for queue in others:  # the same handler name sent on several queues
            catalog.link(topics.command_topic(queue), "commands", _NOT_KEY.sub("_", key))
        if any(site.mode == "await" for site in found):
            for outcome in OUTCOMES:
                message = _result_message(workflow, name, outcome)
                catalog.add(
                    topics.RESULTS, f"results.{kind}", f"{workflow}.{name}.{outcome}", message
                )


def external_events(chart: Chart) -> dict[str, Json]:
    """The event types a client may send an instance of ``chart``, with the payload schemas
    it declares; a chart without ``events:`` accepts the events its transitions name, with
    any payload. ``$start`` and ``$cancel`` are always accepted."""
    found: dict[str, Json] = {START: {}, CANCEL: {}}
    found |= {event: dict(schema) for event, schema in chart.events.items()}
    if not chart.events:
        for transition in chart.transitions():
            event = transition.event
            if event is not None and _inbound(chart, event):
                found.setdefault(event, {})
    return found


def _inbound(chart: Chart, event: str) -> bool:
    base, dot, suffix = event.rpartition(".")
    is_result = bool(dot) and f".{suffix}" in RESULT_SUFFIXES and base in chart.dispatch_names
    return not (event.startswith("$") or is_result or event in chart.internal_events)


def _event_message(workflow: str, event: str, by_version: dict[int, Json]) -> Json:
    what = {START: "Starts an instance", CANCEL: "Cancels the instance"}.get(event)
    summary = f"{what or f'The {event} event'} of {workflow}."
    if event == START:
        summary += " The payload is merged over the chart's initial data."
    return {
        "title": f"{workflow} {event}",
        "summary": summary,
        "contentType": "application/json",
        "payload": _by_version({v: s or {"type": "object"} for v, s in by_version.items()}),
        "bindings": {"kafka": _kafka_message(f"{workflow}:<instanceId> (UTF-8)", prefix=workflow)},
        "x-omninode-envelope": _envelope(
            "omninode.Event", "payload", {"workflow_type": workflow, "type": event}
        ),
        "x-omninode-versions": sorted(by_version),
    }


def _by_version(by_version: dict[int, Json]) -> Json:
    """One schema when every version declares the same; else any of them, each saying
    which versions declare it (an instance is held to its own version's)."""
    distinct: dict[str, tuple[Json, list[int]]] = {}
    for version, schema in sorted(by_version.items()):
        distinct.setdefault(json.dumps(schema, sort_keys=True), (schema, []))[1].append(version)
    if len(distinct) == 1:
        return next(iter(distinct.values()))[0]
    return {
        "anyOf": [
            {"description": f"versions {', '.join(map(str, vs))}", "allOf": [schema]}
            for schema, vs in distinct.values()
        ]
    }


@dataclass(frozen=True, slots=True)
class _Site:
    """One place a chart dispatches an effect or compute (or a compensation): the keys of
    the input it sends with each key's CEL expression, or the input's whole schema."""

    kind: str
    name: str
    mode: str
    inputs: tuple[tuple[str, str], ...] | None
    schema: Json | None = None
    compensation: bool = False
    queue: str = DEFAULT_QUEUE


def dispatch_sites(chart: Chart) -> Iterator[_Site]:
    """Every effect and compute the chart dispatches, with each compensation it names."""
    for spec in chart.dispatch_specs():
        if spec.input is None:  # the dispatch sends the instance's whole data
            data = {
                "description": "the instance's data",
                **(chart.data_schema or {"type": "object"}),
            }
            yield _Site(spec.kind, spec.name, spec.mode, None, data, queue=spec.queue)
        else:
            inputs = tuple((key, expr.source) for key, expr in spec.input)
            yield _Site(spec.kind, spec.name, spec.mode, inputs, queue=spec.queue)
        if spec.compensate is not None:
            schema = _compensation(spec)
            compensation = "fire_and_forget"
            yield _Site("effect", spec.compensate, compensation, None, schema, True, spec.queue)


def _compensation(spec: DispatchSpec) -> Json:
    """The input of a compensation (app/core/run.py ``compensation_commands``)."""
    return {
        "type": "object",
        "description": f"undoes a completed {spec.name}",
        "properties": {
            "effect": {"const": spec.name},
            "dispatch_id": {"type": "string", "description": f"the {spec.name} command's id"},
            "input": {"type": "object", "description": f"the input {spec.name} was sent"},
            "result": {"type": "object", "description": f"what {spec.name} answered (.done)"},
        },
        "required": ["effect", "dispatch_id", "input", "result"],
        "additionalProperties": False,
    }


def _command_message(workflow: str, kind: str, name: str, sites: list[_Site]) -> Json:
    modes = sorted({site.mode for site in sites})
    compensation = any(site.compensation for site in sites)
    summary = f"The {kind} {name} of {workflow}" + (", a compensation" if compensation else "")
    return {
        "title": f"{workflow} {kind} {name}",
        "summary": summary + ". Input values are known only when it is dispatched.",
        "contentType": "application/json",
        "payload": _merged_inputs(sites),
        "bindings": {"kafka": _kafka_message(f"{workflow}:<instanceId> (UTF-8)", prefix=workflow)},
        "x-omninode-envelope": _envelope(
            "omninode.Command",
            "input",
            {"workflow_type": workflow, "kind": kind, "name": name},
            modes=modes,
        ),
    }


def _merged_inputs(sites: list[_Site]) -> Json:
    """One schema per distinct set of input keys, each key described by the expressions
    the sites compute it with; any of them when the sites differ."""
    keyed: dict[frozenset[str], dict[str, list[str]]] = {}
    whole: dict[str, Json] = {}
    for site in sites:
        if site.inputs is None:
            whole.setdefault(json.dumps(site.schema, sort_keys=True), site.schema or {})
            continue
        sources = keyed.setdefault(frozenset(key for key, _ in site.inputs), {})
        for key, source in site.inputs:
            if source not in sources.setdefault(key, []):
                sources[key].append(source)
    variants = [_keys_schema(sources) for sources in keyed.values()] + list(whole.values())
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _keys_schema(sources: dict[str, list[str]]) -> Json:
    return {
        "type": "object",
        "properties": {key: {"description": "CEL: " + " | ".join(s)} for key, s in sources.items()},
        "required": list(sources),
        "additionalProperties": False,
    }


def _result_message(workflow: str, name: str, outcome: str) -> Json:
    return {
        "title": f"{workflow} {name}.{outcome}",
        "summary": RESULT_SUMMARIES[outcome].format(name=name),
        "description": (
            f"The answer to an awaited {name} command: event type {name}.{outcome}, "
            f"dispatch_id and causation_id the command's command_id, event_id "
            f"<command_id>.{outcome} (so an answer sent twice is applied once)."
        ),
        "contentType": "application/json",
        "payload": RESULT_PAYLOADS[outcome],
        "bindings": {"kafka": _kafka_message(f"{workflow}:<instanceId> (UTF-8)", prefix=workflow)},
        "x-omninode-envelope": _envelope(
            "omninode.Event", "payload", {"workflow_type": workflow, "type": f"{name}.{outcome}"}
        ),
    }


RESULT_SUMMARIES = {
    "done": "{name} succeeded; the payload is what its handler returned.",
    "failed": "{name} failed: its last attempt raised, or no handler is registered.",
    "timeout": "{name}'s last attempt outlived the command's timeout_ms.",
}
_ATTEMPTS: Json = {"type": "integer", "minimum": 0, "description": "attempts made"}
RESULT_PAYLOADS: dict[str, Json] = {
    "done": {
        "type": "object",
        "description": "what the handler returned (anything but an object: {result: value})",
    },
    "failed": {
        "type": "object",
        "properties": {
            "error": {"type": "string", "maxLength": ERROR_CHARS, "description": "Type: message"},
            "attempts": _ATTEMPTS,
        },
        "required": ["error", "attempts"],
        "additionalProperties": False,
    },
    "timeout": {
        "type": "object",
        "properties": {"attempts": _ATTEMPTS},
        "required": ["attempts"],
        "additionalProperties": False,
    },
}
