"""``omninode contract``: the AsyncAPI 3.0 document of the topics, the Avro records and the
example workflows, and ``--format ids``, offline.

No maintained PyPI package ships the AsyncAPI 3.0 JSON Schema (it is published on npm as
``@asyncapi/specs``), so the document's shape is checked here structurally: the parts of
the 3.0 schema it uses (required fields, key patterns, operation actions, every ``$ref``
resolving to a message of the operation's channel). With ``ASYNCAPI_SCHEMA`` naming a copy
of ``schemas/3.0.0-without-$id.json`` from that package, the document is also validated
against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro.schema
import jsonschema
import pytest
import yaml

from app.cli.main import main
from app.core.model import Chart
from app.infra import topics
from app.infra.avro import SCHEMA_DIR, SCHEMA_NAMES, codec
from app.infra.chart_files import chart_files, import_handlers, load_charts
from app.infra.contract import build_contract, schema_ids
from app.infra.settings import Settings
from app.infra.topics import load_manifest

ROOT = Path(__file__).resolve().parents[1]
RSS = ROOT / "rss"
Run = Callable[..., tuple[int, str, str]]
# AsyncAPI 3.0: keys of components, and of specification extensions.
COMPONENT_KEY = re.compile(r"^[\w\d.\-_]+$", re.ASCII)
EXTENSION = re.compile(r"^x-[\w\d.\-_]+$", re.ASCII)


@pytest.fixture
def contract(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``omninode contract ARGS`` on the example charts (or ``rss=``), no servers set."""

    def run(*argv: str, rss: Path = RSS, **env: str) -> tuple[int, str, str]:
        monkeypatch.setenv("OMNINODE_RSS_PATH", str(rss))
        monkeypatch.setenv("OMNINODE_HANDLERS", str(RSS / "handlers.py"))
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "OMNINODE_APP_ID", "OMNINODE_PARTITIONS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = main(["contract", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def document(contract: Run) -> dict[str, Any]:
    code, out, err = contract()
    assert code == 0, err
    loaded = yaml.safe_load(out)
    assert isinstance(loaded, dict)
    return loaded


def example_charts() -> list[Chart]:
    import_handlers([str(RSS / "handlers.py")])
    loaded = load_charts(chart_files([RSS]))
    assert loaded.problems == []
    return [chart for _, chart in loaded.loaded]


def effects_and_computes(chart: Chart) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for node in chart.states.values():
        for actions in (node.entry, node.exit):
            found |= {(s.kind, s.name) for s in (*actions.effects, *actions.computes)}
    for transition in chart.transitions():
        found |= {
            (s.kind, s.name) for s in (*transition.actions.effects, *transition.actions.computes)
        }
    return found


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# -- the document ----------------------------------------------------------------------------


def test_yaml_and_json_are_the_same_asyncapi_3_document(
    contract: Run, document: dict[str, Any]
) -> None:
    code, out, err = contract("--json")
    assert code == 0, err
    assert json.loads(out) == document
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "OmniNode workflows (omninode)"
    assert re.fullmatch(r"[0-9a-f]{12}", document["info"]["version"])
    assert document["info"]["x-omninode-workflows"] == {
        "document_approval": [1],
        "loan_application": [1],
        "order_fulfillment": [2],
        "shipment": [1],
    }
    assert "omninode: handlers: " in err  # the charts load as the workers load them
    assert "servers" not in document  # KAFKA_BOOTSTRAP_SERVERS unset


def test_every_topic_of_the_manifest_is_a_channel_with_its_resolved_name(contract: Run) -> None:
    code, out, err = contract("--json", OMNINODE_APP_ID="staging", OMNINODE_PARTITIONS="4")
    assert code == 0, err
    channels = json.loads(out)["channels"]
    manifest = load_manifest()
    assert set(channels) == set(manifest)
    settings = Settings(app_id="staging")
    for logical, spec in manifest.items():
        channel = channels[logical]
        assert channel["address"] == settings.topic(logical) == f"staging{logical[8:]}"
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == channel["address"]
        assert kafka["partitions"] == 4
        assert kafka["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        assert kafka["topicConfiguration"]["retention.ms"] == spec.retention_ms
        assert spec.key in channel["description"]
        assert spec.value_schema in channel["messages"]


def test_each_avro_record_is_a_message_with_its_schema_and_id(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    for name in SCHEMA_NAMES:
        message = messages[name]
        schema_id = codec(name).schema_id
        assert (
            message["payload"]["schemaFormat"] == "application/vnd.apache.avro+json;version=1.9.0"
        )
        avsc = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8"))
        assert message["payload"]["schema"] == avsc
        assert message["x-omninode-schema-id"] == schema_id
        assert message["x-omninode-schema-id-hex"] == f"0x{schema_id:08x}"
        assert message["x-omninode-wire-header"] == "00" + f"{schema_id:08x}"
        binding = message["bindings"]["kafka"]
        assert (binding["schemaIdLocation"], binding["schemaIdPayloadEncoding"]) == (
            "payload",
            "confluent",
        )
    for message in messages.values():  # a workflow message names the record that carries it
        envelope = message.get("x-omninode-envelope")
        if envelope is not None:
            assert envelope["schemaId"] == codec(envelope["record"]).schema_id


def test_the_schema_id_is_the_documented_computation() -> None:
    for name in SCHEMA_NAMES:
        canonical = fastavro.schema.to_parsing_canonical_form(
            fastavro.schema.load_schema(str(SCHEMA_DIR / f"{name}.avsc"))
        )
        digest = hashlib.sha256(canonical.encode()).digest()
        assert codec(name).schema_id == int.from_bytes(digest[:4], "big", signed=False) >> 1


def test_every_effect_and_compute_of_the_examples_has_its_command_and_results(
    document: dict[str, Any],
) -> None:
    messages = document["components"]["messages"]
    channels = document["channels"]
    for chart in example_charts():
        for kind, name in effects_and_computes(chart):
            key = f"{chart.workflow}.{kind}.{name}"
            assert key in channels["omninode.commands.default"]["messages"], key
            assert messages[key]["x-omninode-envelope"]["match"] == {
                "workflow_type": chart.workflow,
                "kind": kind,
                "name": name,
            }
    charge = messages["order_fulfillment.effect.charge_card"]["payload"]
    assert charge["required"] == ["order_id", "amount"]
    assert charge["properties"]["amount"] == {"description": "CEL: data.total"}
    for outcome in ("done", "failed", "timeout"):
        key = f"order_fulfillment.charge_card.{outcome}"
        assert key in channels["omninode.results"]["messages"]
        assert messages[key]["x-omninode-envelope"]["match"]["type"] == f"charge_card.{outcome}"
    assert messages["order_fulfillment.charge_card.failed"]["payload"]["required"] == [
        "error",
        "attempts",
    ]
    assert messages["order_fulfillment.charge_card.timeout"]["payload"]["required"] == ["attempts"]
    # Fire-and-forget dispatches (a compensation among them) are answered by nobody.
    refund = messages["order_fulfillment.effect.refund_card"]
    assert refund["x-omninode-envelope"]["modes"] == ["fire_and_forget"]
    assert refund["payload"]["properties"]["effect"] == {"const": "charge_card"}
    assert "order_fulfillment.refund_card.done" not in messages
    assert "document_approval.notify_reviewers.done" not in messages


def test_each_workflow_event_is_a_message_with_its_declared_payload_schema(
    document: dict[str, Any],
) -> None:
    messages = document["components"]["messages"]
    on_events = document["channels"]["omninode.events"]["messages"]
    for chart in example_charts():
        declared = dict(chart.events)
        for event in {"$start", "$cancel", *declared}:
            key = f"{chart.workflow}.{event}".replace("$", "_")
            assert key in on_events, key
            message = messages[key]
            assert message["name"] == f"{chart.workflow}.{event}"
            assert message["payload"] == (declared.get(event) or {"type": "object"})
            assert message["x-omninode-envelope"]["match"] == {
                "workflow_type": chart.workflow,
                "type": event,
            }
    # Without `events:`, the events its transitions name (not results, timers or `$done`).
    loan = {k for k in on_events if k.startswith("loan_application.")}
    assert loan == {
        f"loan_application.{e}"
        for e in ("_start", "_cancel", "SUBMIT_DOCS", "HOLD", "APPROVE", "DECLINE", "RESUME")
    }


def test_operations_are_the_workers_and_reference_their_channels_messages(
    document: dict[str, Any],
) -> None:
    operations = document["operations"]
    expected = {
        ("reducer", "receive", topics.EVENTS),
        ("reducer", "receive", topics.RESULTS),
        ("reducer", "send", topics.JOURNAL),
        ("reducer", "send", topics.DEFAULT_COMMANDS),
        ("workers", "receive", topics.DEFAULT_COMMANDS),
        ("effects", "send", topics.RESULTS),
        ("projector", "receive", topics.JOURNAL),
        ("projector", "send", topics.STATE_COUNTS),
    }
    found = {
        (op["tags"][0]["name"], op["action"], resolve(document, op["channel"]["$ref"])["title"])
        for op in operations.values()
    }
    assert expected <= found
    for op in operations.values():
        channel_ref = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/")
            resolve(document, message["$ref"])
    sent = operations["effects.send.results"]["messages"]
    assert {
        "$ref": "#/channels/omninode.results/messages/order_fulfillment.charge_card.done"
    } in sent
    assert all(".credit_score." not in m["$ref"] for m in sent)  # a compute's answer


def test_the_document_has_the_asyncapi_3_shape(document: dict[str, Any]) -> None:
    """The parts of the AsyncAPI 3.0 JSON Schema this document uses (see the module's doc)."""
    assert set(document) <= {
        "asyncapi",
        "id",
        "info",
        "servers",
        "defaultContentType",
        "channels",
        "operations",
        "components",
    }
    assert {"title", "version"} <= set(document["info"])
    assert all(
        EXTENSION.match(k) for k in document["info"] if k not in {"title", "version", "description"}
    )
    for key, channel in document["channels"].items():
        assert COMPONENT_KEY.match(key), key
        assert set(channel) <= {
            "address",
            "messages",
            "title",
            "summary",
            "description",
            "bindings",
        }
        assert set(channel["bindings"]["kafka"]) <= {
            "topic",
            "partitions",
            "replicas",
            "topicConfiguration",
            "bindingVersion",
        }
        for ref in channel["messages"].values():
            assert set(ref) == {"$ref"}
            resolve(document, ref["$ref"])
    message_fields = {
        "name",
        "title",
        "summary",
        "description",
        "contentType",
        "payload",
        "bindings",
    }
    for key, message in document["components"]["messages"].items():
        assert COMPONENT_KEY.match(key), key
        assert all(k in message_fields or EXTENSION.match(k) for k in message), key
        assert set(message["bindings"]["kafka"]) <= {
            "key",
            "schemaIdLocation",
            "schemaIdPayloadEncoding",
            "bindingVersion",
        }
        payload = message["payload"]
        if "schemaFormat" not in payload:
            jsonschema.Draft7Validator.check_schema(payload)  # a JSON Schema
    for op in document["operations"].values():
        assert op["action"] in ("send", "receive")
        assert set(op) <= {"action", "channel", "messages", "summary", "tags"}


def test_the_document_is_valid_against_the_asyncapi_3_json_schema(document: dict[str, Any]) -> None:
    path = os.environ.get("ASYNCAPI_SCHEMA")
    if not path:
        pytest.skip("ASYNCAPI_SCHEMA names no copy of @asyncapi/specs' 3.0.0-without-$id.json")
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(document)
    ]
    assert errors == []


# -- options and other charts ----------------------------------------------------------------


def test_servers_come_from_kafka_bootstrap_servers(contract: Run) -> None:
    code, out, err = contract(KAFKA_BOOTSTRAP_SERVERS="k1:9092, k2:9093")
    assert code == 0, err
    servers = yaml.safe_load(out)["servers"]
    assert {name: s["host"] for name, s in servers.items()} == {
        "kafka-1": "k1:9092",
        "kafka-2": "k2:9093",
    }
    assert {s["protocol"] for s in servers.values()} == {"kafka"}


def test_output_writes_the_file(contract: Run, tmp_path: Path, document: dict[str, Any]) -> None:
    target = tmp_path / "contract.yaml"
    code, out, err = contract("--output", str(target))
    assert (code, out) == (0, ""), err
    assert yaml.safe_load(target.read_text(encoding="utf-8")) == document


def test_versions_and_sites_are_merged(contract: Run, tmp_path: Path) -> None:
    """Two versions declaring $start differently: either schema, each naming its versions;
    one effect dispatched from two places: each key with both expressions; an effect with no
    `input` sends the instance's data."""
    base = "rss: 1\nworkflow: w\ndata: {a: 0}\ndata_schema: {type: object}\ninitial: s\n"
    one = "states:\n  s:\n    entry:\n      effects:\n        - {name: e, input: {x: data.a}}\n    on: {e.done: t}\n  t: {type: final}\n"
    two = (
        "states:\n  s:\n    entry:\n      effects:\n        - {name: e, input: {x: data.a + 1}}\n"
        "        - {name: f, mode: fire_and_forget}\n    on: {e.done: t}\n  t: {type: final}\n"
    )
    (tmp_path / "w1.yaml").write_text(base + "version: 1\nevents: {$start: {type: object}}\n" + one)
    (tmp_path / "w2.yaml").write_text(
        base + "version: 2\nevents: {$start: {required: [a]}}\n" + two
    )
    code, out, err = contract("--json", rss=tmp_path)
    assert code == 0, err
    messages = json.loads(out)["components"]["messages"]
    assert messages["w._start"]["x-omninode-versions"] == [1, 2]
    assert messages["w._start"]["payload"] == {
        "anyOf": [
            {"description": "versions 1", "allOf": [{"type": "object"}]},
            {"description": "versions 2", "allOf": [{"required": ["a"]}]},
        ]
    }
    assert messages["w.effect.e"]["payload"]["properties"] == {
        "x": {"description": "CEL: data.a | data.a + 1"}
    }
    assert messages["w.effect.f"]["payload"] == {
        "description": "the instance's data",
        "type": "object",
    }
    assert "w.f.done" not in messages


def test_charts_that_do_not_load_are_exit_2(contract: Run, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rss: 1\nworkflow: bad\n", encoding="utf-8")
    code, out, err = contract(rss=tmp_path)
    assert (code, out) == (2, "")
    assert "bad.yaml" in err


def test_the_contract_of_another_deployment_differs_only_by_names() -> None:
    charts = example_charts()
    here = build_contract(Settings(), charts)
    there = build_contract(Settings(app_id="other"), charts)
    assert here["info"]["version"] != there["info"]["version"]
    assert here["components"] == there["components"]


# -- --format ids ----------------------------------------------------------------------------


def test_format_ids_prints_each_schema_id_and_header(contract: Run) -> None:
    code, out, err = contract("--format", "ids")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["schema", "id", "hex", "header"]
    assert len(lines) == len(SCHEMA_NAMES)
    for line, name in zip(lines, SCHEMA_NAMES, strict=True):
        schema_id = codec(name).schema_id
        assert line.split() == [name, str(schema_id), f"0x{schema_id:08x}", f"00{schema_id:08x}"]


def test_format_ids_json_and_the_wire_header(contract: Run) -> None:
    code, out, err = contract("--format", "ids", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["schema"] for row in rows] == list(SCHEMA_NAMES)
    for row, sid in zip(rows, schema_ids(), strict=True):
        assert row["id"] == sid.value == codec(row["schema"]).schema_id
    # The header is what every encoded record starts with.
    event = codec("omninode.Event").encode(
        {
            "event_id": "e",
            "workflow_type": "w",
            "instance_id": "i",
            "type": "$start",
            "occurred_at": "t",
        }
    )
    assert event[:5].hex() == rows[0]["header"]


def test_the_docs_list_the_current_ids() -> None:
    """docs/runtime.md's table of ids (and cli.md's example) go stale when a schema changes."""
    runtime = (ROOT / "docs" / "runtime.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| `(omninode\.\w+)` \| (\d+) \| `(0x[0-9a-f]{8})` \| `([0-9a-f ]+)` \|$", runtime, re.M
    )
    assert [row[0] for row in rows] == list(SCHEMA_NAMES)
    for name, decimal, hexadecimal, header in rows:
        schema_id = codec(name).schema_id
        assert (int(decimal), int(hexadecimal, 16)) == (schema_id, schema_id), name
        assert bytes.fromhex(header) == b"\x00" + schema_id.to_bytes(4, "big"), name
    cli = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    lines = re.findall(r"^(omninode\.\w+) +(\d+) +0x[0-9a-f]{8} +00[0-9a-f]{8}$", cli, re.M)
    assert lines
    assert all(int(decimal) == codec(name).schema_id for name, decimal in lines)


QUEUED = """\
rss: 1
workflow: pay
version: 1
initial: a
states:
  a:
    entry:
      effects:
        - {name: charge, queue: payments, compensate: refund}
        - {name: notify}
    on: {charge.done: b}
  b: {type: final}
"""


def test_each_task_queue_is_a_channel_with_its_commands_and_operations(
    contract: Run, tmp_path: Path
) -> None:
    (tmp_path / "pay.yaml").write_text(QUEUED, encoding="utf-8")
    code, out, err = contract("--json", rss=tmp_path)
    assert code == 0, err
    document = json.loads(out)
    channels = document["channels"]
    assert channels["omninode.commands.payments"]["address"] == "omninode.commands.payments"
    assert set(channels["omninode.commands.payments"]["messages"]) == {
        "omninode.Command",
        "pay.effect.charge",
        "pay.effect.refund",  # a compensation travels on its effect's queue
    }
    assert "pay.effect.notify" in channels["omninode.commands.default"]["messages"]
    operations = document["operations"]
    assert operations["workers.receive.commands.payments"]["channel"] == {
        "$ref": "#/channels/omninode.commands.payments"
    }
    assert "reducer.send.commands.payments" in operations
