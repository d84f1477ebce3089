"""Avro on the wire: the schemas in ``avro_schemas/``, parsed once, in Confluent wire format.

Every value is ``0x00`` + a 4-byte big-endian schema id + the Avro binary body. Without a
schema registry the id is derived from the schema's Parsing Canonical Form (the first 31
bits of its SHA-256), so every process computes the same id for the same schema and a
reader can tell a foreign or changed schema from its own. With a schema registry
(:mod:`app.infra.registry`) a codec writes the registry's id instead and reads both kinds.

Schemas evolve compatibly (new fields have defaults). The earlier versions of a schema are
kept in ``avro_schemas/history/<version>/``: a record written with one of them is read with
Avro's schema resolution into the current schema, so journals written before a change stay
readable and replayable.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast

import fastavro
import fastavro.schema
from faust.serializers import codecs

from app.spi.limits import DEFAULT_LIMITS, json_problem, strict_json_loads

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "avro_schemas"
MAGIC = 0
HEADER = struct.Struct(">bI")
SCHEMA_NAMES = (
    "omninode.Event",
    "omninode.Command",
    "omninode.JournalRecord",
    "omninode.DeadLetter",
    "omninode.InstanceView",
    "omninode.StateCount",
)


class AvroDecodeError(ValueError):
    """The one error of the wire's codecs: bytes that are not a record of the expected
    schema, or a record that cannot be encoded (a reason for a dead letter)."""


class AvroCodec(codecs.Codec):
    """One schema's writer and reader; also a Faust codec (``value_serializer=<name>``)."""

    def __init__(self, name: str, schema_dir: Path = SCHEMA_DIR) -> None:
        super().__init__()
        self.name = name
        self.schema = fastavro.schema.load_schema(str(schema_dir / f"{name}.avsc"))
        self.schema_id = _schema_id(self.schema)
        # Every version by its own (hash) id: the current one, then earlier versions.
        self.versions: dict[int, Any] = {self.schema_id: self.schema}
        for old in sorted((schema_dir / "history").glob(f"*/{name}.avsc")):
            earlier = fastavro.schema.load_schema(str(old))
            self.versions.setdefault(_schema_id(earlier), earlier)
        self.reset_ids()

    def use_ids(self, write_id: int, aliases: Mapping[int, int]) -> None:
        """Write ``write_id`` (another id of the current schema, a registry's) and read,
        besides every version's own id, each alias: another id of the version whose own id
        it maps to. Replaces the aliases installed before."""
        # Per id: the writer schema, and the reader to resolve it into (None: the same).
        readers = {
            own: (schema, None if own == self.schema_id else self.schema)
            for own, schema in self.versions.items()
        }
        for alias, own in aliases.items():
            if own not in self.versions or readers.get(alias, readers[own]) is not readers[own]:
                raise ValueError(f"{self.name}: id {alias} cannot name version {own}")
            readers[alias] = readers[own]
        if aliases.get(write_id, write_id) != self.schema_id:
            raise ValueError(f"{self.name}: id {write_id} is not the current schema's")
        self.write_id = write_id
        self._header = HEADER.pack(MAGIC, write_id)
        self._readers = readers

    def reset_ids(self) -> None:
        """Back to the default: write and read the schemas' own ids only."""
        self.use_ids(self.schema_id, {})

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(
                buffer, self.schema, record if type(record) is dict else dict(record)
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise AvroDecodeError(f"cannot encode {self.name}: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if not data or len(data) < HEADER.size:
            raise AvroDecodeError(f"not a {self.name} record: {len(data or b'')} bytes")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise AvroDecodeError(f"not Confluent wire format (magic byte {magic})")
        schemas = self._readers.get(schema_id)
        if schemas is None:
            raise AvroDecodeError(f"schema id {schema_id} is not {self.name} (id {self.write_id})")
        writer, reader = schemas
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[HEADER.size :]), writer, reader)
        except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            raise AvroDecodeError(f"corrupt {self.name} record: {exc}") from exc
        if not isinstance(record, dict):
            raise AvroDecodeError(f"corrupt {self.name} record")
        return cast(dict[str, Any], record)

    def _dumps(self, obj: Any) -> bytes:
        return self.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self.decode(s)


def _schema_id(schema: Any) -> int:
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4]) >> 1


@cache
def codec(name: str) -> AvroCodec:
    """The codec of one schema, parsed once per process."""
    return AvroCodec(name)


def register_faust_codecs() -> None:
    """Make ``value_serializer="omninode.Event"`` (and the others) work on Faust topics."""
    for name in SCHEMA_NAMES:
        codecs.register(name, codec(name))


def json_object(text: str, what: str, max_depth: int = DEFAULT_LIMITS.json_depth) -> dict[str, Any]:
    """Strict JSON object: no NaN/Infinity, no number beyond a float's range, no nesting
    deeper than ``max_depth``; anything else is an AvroDecodeError with the reason."""
    try:
        value = strict_json_loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AvroDecodeError(f"{what} is not JSON: {reason}") from exc
    if not isinstance(value, dict):
        raise AvroDecodeError(f"{what} must be a JSON object")
    problem = json_problem(value, max_depth)
    if problem is not None:
        raise AvroDecodeError(f"{what}: {problem}")
    return value
