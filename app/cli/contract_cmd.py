"""``omninode contract [--format asyncapi|ids] [--json] [--output FILE]``: the workflow
contract other services speak; ``omninode contract register [--json]``: its schemas in a
schema registry.

``asyncapi`` (the default) prints one AsyncAPI 3.0 document (:mod:`app.infra.contract`),
YAML or with ``--json`` JSON, from the topic manifest, the Avro schemas and the charts on
``OMNINODE_RSS_PATH``, loaded as the workers load them (with their handler modules). Topic
names are this deployment's (``OMNINODE_APP_ID``); ``KAFKA_BOOTSTRAP_SERVERS``, when set,
become its servers. ``ids`` prints each Avro schema's id and the 5-byte header every record
starts with (``--json``: one JSON object per line). Nothing talks to Kafka.

``register`` registers each topic's value schema in the schema registry at
``SCHEMA_REGISTRY_URL`` under the subject ``<topic>-value`` (:mod:`app.infra.registry`,
docs/schema-registry.md) and prints subject, schema and id (``--json``: one JSON object
per line). Registering again changes nothing.

Exit: 0; 2 for charts that do not load (``file:line: message``), bad settings, no
``SCHEMA_REGISTRY_URL`` or a request the registry refused, or an unwritable ``--output``;
3 for a registry that cannot be reached (or answers 5xx).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from app.infra.contract import build_contract, ids_table, schema_ids
from app.infra.registry import Registered, RegistryError, register_schemas, registry_client
from app.infra.runtime import deployment_manifest, load_registry
from app.infra.settings import Settings
from app.infra.topics import TopicSpec

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


def add_command(commands: Any) -> None:
    """Register the command's parser on the CLI's subparsers."""
    contract = commands.add_parser(
        "contract", help="the AsyncAPI 3.0 document of the topics, records and workflows"
    )
    contract.add_argument(
        "--format",
        choices=("asyncapi", "ids"),
        default="asyncapi",
        help="the AsyncAPI document (default), or the Avro schema ids and wire headers",
    )
    contract.add_argument("--json", action="store_true", help="JSON instead of YAML / a table")
    contract.add_argument("--output", "-o", metavar="FILE", help="write to FILE, not stdout")
    contract.set_defaults(handler=_contract)
    actions = contract.add_subparsers(
        dest="action", metavar="ACTION", help="none: print the contract (--format)"
    )
    register = actions.add_parser(
        "register", help="register the topics' value schemas in SCHEMA_REGISTRY_URL"
    )
    # SUPPRESS: `contract --json register` keeps the --json given before the action.
    register.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object per line"
    )
    register.set_defaults(handler=_register)


def _contract(args: argparse.Namespace) -> int:
    if args.format == "ids":
        text = ids_text(args.json)
    else:
        settings = Settings.from_env()
        registry = load_registry(settings)  # a ChartError: `file:line` lines (guarded)
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
        document = build_contract(settings, registry, servers)
        text = render(document, args.json)
    _write(text, args.output)
    return 0


def _register(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.schema_registry_url is None:
        print(
            "omninode: contract register needs SCHEMA_REGISTRY_URL, the schema registry's URL",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    manifest = registry_manifest(settings)  # a ChartError: `file:line` lines (guarded)
    try:
        client = registry_client(settings.schema_registry_url)
        try:
            rows = register_schemas(client, manifest)
        finally:
            client.close()
    except RegistryError as exc:
        print(f"omninode: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.unavailable else EXIT_BAD_INPUT
    _write(registered_text(rows, args.json), args.output)
    return 0


def registry_manifest(settings: Settings) -> dict[str, TopicSpec]:
    """The topics whose value schemas ``register`` registers: the deployment's, with the
    command topic of every task queue the charts name."""
    return deployment_manifest(settings, load_registry(settings))


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def render(document: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def ids_text(as_json: bool) -> str:
    ids = schema_ids()
    if as_json:
        rows = ({"schema": i.name, "id": i.value, "hex": i.hex, "header": i.header} for i in ids)
        return "".join(json.dumps(row) + "\n" for row in rows)
    return "".join(line + "\n" for line in ids_table(ids))


def registered_text(rows: list[Registered], as_json: bool) -> str:
    """One line per subject: subject, schema, the registry's id (aligned, or JSON)."""
    if as_json:
        lines = (json.dumps({"subject": r.subject, "schema": r.schema, "id": r.id}) for r in rows)
        return "".join(line + "\n" for line in lines)
    table = [("subject", "schema", "id"), *((r.subject, r.schema, str(r.id)) for r in rows)]
    subject, schema = (max(len(row[column]) for row in table) for column in range(2))
    return "".join(f"{r[0]:<{subject}}  {r[1]:<{schema}}  {r[2]}\n" for r in table)
