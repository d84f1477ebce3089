"""``omninode contract [--format asyncapi|ids] [--json] [--output FILE]``: the workflow
contract other services speak.

``asyncapi`` (the default) prints one AsyncAPI 3.0 document (:mod:`app.infra.contract`),
YAML or with ``--json`` JSON, from the topic manifest, the Avro schemas and the charts on
``OMNINODE_RSS_PATH``, loaded as the workers load them (with their handler modules). Topic
names are this deployment's (``OMNINODE_APP_ID``); ``KAFKA_BOOTSTRAP_SERVERS``, when set,
become its servers. ``ids`` prints each Avro schema's id and the 5-byte header every record
starts with (``--json``: one JSON object per line). Nothing talks to Kafka.

Exit: 0; 2 for charts that do not load (``file:line: message``), bad settings or an
unwritable ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from app.core.errors import ChartError
from app.infra.contract import build_contract, ids_table, schema_ids
from app.infra.runtime import load_registry
from app.infra.settings import Settings

EXIT_BAD_INPUT = 2


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


def _contract(args: argparse.Namespace) -> int:
    if args.format == "ids":
        text = ids_text(args.json)
    else:
        settings = Settings.from_env()
        try:
            registry = load_registry(settings)
        except ChartError as exc:
            for diagnostic in exc.diagnostics:
                print(diagnostic, file=sys.stderr)
            return EXIT_BAD_INPUT
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
        document = build_contract(settings, registry, servers)
        text = render(document, args.json)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


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
