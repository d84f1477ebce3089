"""Schema registry ids (app/infra/registry.py, ``omninode contract register``), against
confluent-kafka's own mock registry client: never a live registry.

The mock keeps its schemas in the one client object (two clients of one ``mock://`` URL
share nothing) and, unlike a live registry, gives the same schema a new id under each
subject: the case of one schema with several ids, all read, the first written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import fastavro
import fastavro.schema
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from faust.serializers import codecs

from app.cli import contract_cmd
from app.cli.main import main
from app.infra.avro import (
    HEADER,
    MAGIC,
    SCHEMA_NAMES,
    AvroDecodeError,
    codec,
    register_faust_codecs,
)
from app.infra.registry import (
    RegistryError,
    install_registry_ids,
    register_schemas,
    registry_client,
    safe_url,
    schema_text,
    use_registry_ids,
)
from app.infra.settings import Settings
from app.infra.topics import TopicSpec

EVENT = "omninode.Event"
RECORD = {
    "event_id": "e-1",
    "workflow_type": "w",
    "instance_id": "i-1",
    "type": "$start",
    "occurred_at": "2024-01-01T00:00:00Z",
}
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def hash_ids() -> Iterator[None]:
    """Codecs are per process: every test leaves them writing and reading hash ids only."""
    yield
    for name in SCHEMA_NAMES:
        codec(name).reset_ids()


@pytest.fixture
def manifest() -> dict[str, TopicSpec]:
    return Settings().manifest()


@pytest.fixture
def client() -> Iterator[SchemaRegistryClient]:
    client = registry_client("mock://omninode-tests")
    yield client
    client.close()


def subjects(manifest: dict[str, TopicSpec]) -> list[str]:
    return [f"{spec.name}-value" for spec in manifest.values()]


def canonical(schema: Any) -> str:
    return fastavro.schema.to_parsing_canonical_form(schema)


def framed(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    """A record in Confluent wire format, written with ``schema`` under ``schema_id``."""
    buffer = io.BytesIO()
    buffer.write(HEADER.pack(MAGIC, schema_id))
    fastavro.schemaless_writer(buffer, schema, record)
    return buffer.getvalue()


# -- registering -----------------------------------------------------------------------------


def test_mock_urls_give_confluent_kafkas_mock_sharing_nothing(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    assert type(client).__name__ == "MockSchemaRegistryClient"
    register_schemas(client, manifest)
    other = registry_client("mock://omninode-tests")
    assert other.get_subjects() == []
    other.close()


def test_every_topic_is_registered_under_its_value_subject(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    rows = register_schemas(client, manifest)
    assert [row.subject for row in rows] == subjects(manifest)
    assert [row.schema for row in rows] == [spec.value_schema for spec in manifest.values()]
    assert sorted(client.get_subjects()) == sorted(subjects(manifest))
    for row in rows:
        registered = client.get_latest_version(row.subject)
        assert registered.schema_id == row.id
        assert registered.schema.schema_type == "AVRO"
        # Self-contained (JournalRecord's Event inlined) and the very schema of the hash id.
        text = registered.schema.schema_str
        assert canonical(fastavro.parse_schema(json.loads(text))) == canonical(
            codec(row.schema).schema
        )
        assert "__fastavro" not in text


def test_every_version_text_is_self_contained_and_the_same_schema() -> None:
    for name in SCHEMA_NAMES:
        for schema in codec(name).versions.values():
            parsed = fastavro.schema.parse_schema(json.loads(schema_text(schema)))
            assert canonical(parsed) == canonical(schema), name


def test_registering_again_changes_nothing(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    first = register_schemas(client, manifest)
    assert register_schemas(client, manifest) == first
    for subject in subjects(manifest):
        assert client.get_versions(subject) == [1]


# -- writing and reading registry ids --------------------------------------------------------


def test_codecs_write_the_registry_id_and_read_both_kinds(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    event = codec(EVENT)
    hashed = event.encode(RECORD)
    assert hashed[:5] == HEADER.pack(MAGIC, event.schema_id)
    rows = register_schemas(client, manifest)
    writes = use_registry_ids(client, manifest)
    ids = {row.subject: row.id for row in rows}
    # The mock gives Event one id per subject (events, results): the first is written.
    assert writes[EVENT] == ids["omninode.events-value"] != ids["omninode.results-value"]
    assert writes == _first_ids(rows)
    registered = event.encode(RECORD)
    assert registered[:5] == HEADER.pack(MAGIC, ids["omninode.events-value"])
    assert registered[5:] == hashed[5:]
    expected = event.decode(hashed)
    assert event.decode(registered) == expected
    under_results = framed(ids["omninode.results-value"], event.schema, RECORD)
    assert event.decode(under_results) == expected
    for name in SCHEMA_NAMES:
        assert codec(name).write_id == writes[name]


def _first_ids(rows: list[Any]) -> dict[str, int]:
    first: dict[str, int] = {}
    for row in rows:
        first.setdefault(row.schema, row.id)
    return first


def test_an_unknown_id_still_fails(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    register_schemas(client, manifest)
    use_registry_ids(client, manifest)
    event = codec(EVENT)
    with pytest.raises(AvroDecodeError, match=r"schema id 999 is not omninode\.Event"):
        event.decode(framed(999, event.schema, RECORD))
    # Another schema's registry id is not an Event either.
    command_id = codec("omninode.Command").write_id
    with pytest.raises(AvroDecodeError, match=rf"schema id {command_id} is not omninode\.Event"):
        event.decode(framed(command_id, event.schema, RECORD))


def test_a_registered_earlier_version_is_read_by_resolution(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    """A registry that had v1 of Event before: records under v1's registry id still read."""
    event = codec(EVENT)
    (old_hash, old_schema), *_ = ((k, v) for k, v in event.versions.items() if k != event.schema_id)
    old_id = client.register_schema(
        "omninode.events-value", Schema(schema_text(old_schema), "AVRO")
    )
    register_schemas(client, manifest)
    use_registry_ids(client, manifest)
    old_record = dict(RECORD)
    decoded = event.decode(framed(old_id, old_schema, old_record))
    assert decoded == event.decode(framed(old_hash, old_schema, old_record))
    assert decoded["event_id"] == "e-1"
    assert event.write_id != old_id


def test_faust_topics_write_the_registry_ids(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    register_faust_codecs()
    register_schemas(client, manifest)
    writes = use_registry_ids(client, manifest)
    assert codecs.dumps(EVENT, RECORD)[:5] == HEADER.pack(MAGIC, writes[EVENT])


def test_confluents_own_serde_reads_and_writes_the_same_records(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    register_schemas(client, manifest)
    use_registry_ids(client, manifest)
    context = SerializationContext(manifest["omninode.events"].name, MessageField.VALUE)
    ours = codec(EVENT).encode(RECORD)
    assert AvroDeserializer(client)(ours, context) == codec(EVENT).decode(ours)
    serializer = AvroSerializer(
        client,
        schema_text(codec(EVENT).schema),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    theirs = serializer(codec(EVENT).decode(ours), context)
    assert theirs is not None
    assert theirs == ours


def test_reset_goes_back_to_hash_ids_only(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    register_schemas(client, manifest)
    use_registry_ids(client, manifest)
    event = codec(EVENT)
    registered = event.encode(RECORD)
    event.reset_ids()
    assert event.encode(RECORD)[:5] == HEADER.pack(MAGIC, event.schema_id)
    with pytest.raises(AvroDecodeError, match=r"is not omninode\.Event"):
        event.decode(registered)


def test_use_ids_refuses_ids_that_do_not_fit() -> None:
    event = codec(EVENT)
    old = next(k for k in event.versions if k != event.schema_id)
    with pytest.raises(ValueError, match="not the current schema"):
        event.use_ids(old, {})
    with pytest.raises(ValueError, match="cannot name version"):
        event.use_ids(event.schema_id, {7: 12345})
    with pytest.raises(ValueError, match="cannot name version"):
        event.use_ids(event.schema_id, {old: event.schema_id})
    assert event.write_id == event.schema_id


def test_no_url_installs_nothing(manifest: dict[str, TopicSpec]) -> None:
    assert install_registry_ids(None, manifest) == {}
    assert all(codec(name).write_id == codec(name).schema_id for name in SCHEMA_NAMES)


# -- errors ----------------------------------------------------------------------------------


def test_a_subject_not_registered_names_it_and_installs_nothing(
    client: SchemaRegistryClient, manifest: dict[str, TopicSpec]
) -> None:
    register_schemas(client, manifest)
    client.delete_subject("omninode.journal-value")
    with pytest.raises(RegistryError, match="omninode contract register") as caught:
        use_registry_ids(client, manifest)
    assert str(caught.value) == (
        "schema registry mock://omninode-tests: subject omninode.journal-value has no "
        "omninode.JournalRecord of this version; run `omninode contract register`"
    )
    assert not caught.value.unavailable
    assert all(codec(name).write_id == codec(name).schema_id for name in SCHEMA_NAMES)


def test_an_empty_registry_fails_on_the_first_subject(manifest: dict[str, TopicSpec]) -> None:
    with pytest.raises(RegistryError, match=r"subject omninode\.events-value has no"):
        install_registry_ids("mock://empty", manifest)


@pytest.mark.parametrize(("status", "unavailable"), [(401, False), (503, True)])
def test_http_errors_are_one_registry_error(
    client: SchemaRegistryClient,
    manifest: dict[str, TopicSpec],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    unavailable: bool,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise SchemaRegistryError(status, status * 100, "no")

    monkeypatch.setattr(client, "lookup_schema", refuse)
    monkeypatch.setattr(client, "register_schema", refuse)
    for call in (use_registry_ids, register_schemas):
        with pytest.raises(RegistryError) as caught:
            call(client, manifest)
        assert str(caught.value) == (
            f"schema registry mock://omninode-tests, subject omninode.events-value: "
            f"no (HTTP {status})"
        )
        assert caught.value.unavailable is unavailable


def test_an_unreachable_registry_is_one_error_without_its_password(
    manifest: dict[str, TopicSpec],
) -> None:
    client = registry_client("http://user:secret@127.0.0.1:1", **{"max.retries": 0})
    with pytest.raises(RegistryError, match="ConnectError") as caught:
        use_registry_ids(client, manifest)
    message = str(caught.value)
    assert message.startswith("schema registry http://127.0.0.1:1, subject omninode.events-value: ")
    assert "secret" not in message
    assert caught.value.unavailable
    client.close()


def test_a_url_the_client_refuses_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="schema registry localhost:8081: Invalid url"):
        registry_client("localhost:8081")


def test_safe_url_drops_credentials() -> None:
    assert safe_url("https://u:p@a:8081,http://b/") == "https://a:8081,http://b/"
    assert safe_url("mock://x") == "mock://x"


# -- omninode contract register --------------------------------------------------------------


@pytest.fixture
def register(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``omninode contract register ARGS`` with ``SCHEMA_REGISTRY_URL=url`` (None: unset)."""

    def run(*argv: str, url: str | None = "mock://cli") -> tuple[int, str, str]:
        for name in ("OMNINODE_APP_ID", "OMNINODE_PARTITIONS", "SCHEMA_REGISTRY_URL"):
            monkeypatch.delenv(name, raising=False)
        if url is not None:
            monkeypatch.setenv("SCHEMA_REGISTRY_URL", url)
        code = main(["contract", *argv])
        captured = capsys.readouterr()
        # register loads the charts (their task queues name command topics), which says
        # which handler modules it imported, as every command loading charts does
        said = [
            line
            for line in captured.err.splitlines(keepends=True)
            if not line.startswith("omninode: handlers: ")
        ]
        return code, captured.out, "".join(said)

    return run


def test_cli_register_prints_subject_schema_and_id(
    register: Run, manifest: dict[str, TopicSpec]
) -> None:
    code, out, err = register("register")
    assert (code, err) == (0, "")
    header, *lines = out.splitlines()
    assert header.split() == ["subject", "schema", "id"]
    expected = [
        [subject, spec.value_schema, str(number)]
        for number, (subject, spec) in enumerate(
            zip(subjects(manifest), manifest.values(), strict=True), start=1
        )
    ]
    assert [line.split() for line in lines] == expected
    assert lines[0] == "omninode.events-value                   omninode.Event          1"


def test_cli_register_json_before_or_after_the_action(register: Run) -> None:
    for argv in (("register", "--json"), ("--json", "register")):
        code, out, err = register(*argv)
        assert (code, err) == (0, "")
        rows = [json.loads(line) for line in out.splitlines()]
        assert rows[0] == {"subject": "omninode.events-value", "schema": EVENT, "id": 1}
        assert len(rows) == len(Settings().manifest())


def test_cli_register_then_a_worker_finds_the_ids(
    register: Run, manifest: dict[str, TopicSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = registry_client("mock://shared")
    monkeypatch.setattr(contract_cmd, "registry_client", lambda url: shared)
    code, out, err = register("register", "--json")
    assert (code, err) == (0, "")
    ids = {row["subject"]: row["id"] for row in map(json.loads, out.splitlines())}
    writes = use_registry_ids(shared, manifest)
    assert writes[EVENT] == ids["omninode.events-value"]


def test_cli_register_needs_the_url(register: Run) -> None:
    code, out, err = register("register", url=None)
    assert (code, out) == (2, "")
    assert (
        err == "omninode: contract register needs SCHEMA_REGISTRY_URL, the schema registry's URL\n"
    )


def test_cli_register_reports_registry_errors_in_one_line(
    register: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        contract_cmd, "registry_client", lambda url: registry_client(url, **{"max.retries": 0})
    )
    code, out, err = register("register", url="http://127.0.0.1:1")
    assert (code, out) == (3, "")
    assert err.startswith("omninode: schema registry http://127.0.0.1:1, subject ")
    assert len(err.splitlines()) == 1
    code, out, err = register("register", url="localhost:8081")
    assert (code, out) == (2, "")
    assert err == "omninode: schema registry localhost:8081: Invalid url localhost:8081\n"


def test_cli_contract_without_the_action_is_unchanged(register: Run) -> None:
    code, out, err = register("--format", "ids")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["schema", "id", "hex", "header"]
