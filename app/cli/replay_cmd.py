"""``omninode replay``: fold journals through the charts loaded now and say where they differ.

Like Temporal's replayer, a determinism check before (or after) a deploy: each instance's
journal is stepped again from seq 1 with :func:`app.core.replay.replay_journal` through the
charts on ``OMNINODE_RSS_PATH`` (loaded with their handler modules, as a worker loads
them), and the first record whose step differs from what the journal recorded is reported
(a timer firing must also come at the deadline the replayed steps armed).

The journal comes from the journal topic, or offline from a file of the JSON lines
``omninode history --json`` prints: ``app.infra.http_views.journal_row`` writes a row (the
API's history rows are the same) and :func:`parse_row` reads it back; a test checks that
each is the other's inverse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, get_args

from app.core.errors import ChartError
from app.core.replay import Divergence, replay_journal
from app.infra import topics
from app.infra.control import read_history
from app.infra.kafka_client import read_topic
from app.infra.kafka_journal import by_instance
from app.infra.runtime import load_registry
from app.infra.settings import Settings
from app.infra.wire import AvroDecodeError, decode_journal, encode_event
from app.spi.envelopes import ChildRun, Event, InstanceStatus, JournalRecord
from app.spi.limits import Limits, json_problem, strict_json_loads

EXIT_DIVERGED = 1  # also: no journal for the WORKFLOW [ID] asked for
EXIT_BAD_INPUT = 2

_STATUSES: tuple[str, ...] = get_args(InstanceStatus)
_ROW_REQUIRED = frozenset(
    {"seq", "event", "ignored", "status", "workflow_version", "configuration"}
)
_ROW_OPTIONAL = frozenset({"reason", "raised", "children", "outputs"})
_EVENT_TEXT = ("workflow_type", "instance_id", "type", "event_id", "occurred_at")
_EVENT_OPTIONAL_TEXT = ("dispatch_id", "timer_id", "causation_id", "correlation_id")
_EVENT_OPTIONAL = frozenset({*_EVENT_OPTIONAL_TEXT, "payload", "parent", "version"})
_PARENT_KEYS = ("workflow", "instance_id", "name", "dispatch_id")
_CHILD_KEYS = ("name", "workflow", "instance_id", "dispatch_id", "status")


class JournalInputError(ValueError):
    """A journal that cannot be read: ``file:line: reason`` for a malformed line."""


def add_command(commands: Any) -> None:
    """Register ``omninode replay`` on the CLI's subparsers."""
    replay = commands.add_parser(
        "replay", help="replay journals through the charts loaded now; report where they differ"
    )
    replay.add_argument("workflow", metavar="WORKFLOW", nargs="?", help="only this workflow type")
    replay.add_argument("instance_id", metavar="ID", nargs="?", help="only this instance")
    replay.add_argument("--json", action="store_true", help="one JSON object per instance")
    replay.add_argument(
        "--journal",
        metavar="FILE.jsonl",
        help="read the journal from this file (lines of `omninode history --json`), not Kafka",
    )
    replay.set_defaults(registry_ids=True, handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        registry = load_registry(settings)
        records = (
            read_journal_file(args.journal, settings.limits)
            if args.journal
            else asyncio.run(read_journals(settings, args.workflow, args.instance_id))
        )
    except ChartError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_BAD_INPUT
    except JournalInputError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    chosen = (r for r in records if _selected(r.event, args.workflow, args.instance_id))
    journals = by_instance(chosen)
    if not journals and args.workflow is not None:
        which = ":".join(part for part in (args.workflow, args.instance_id) if part is not None)
        print(f"omninode: no journal records for {which}", file=sys.stderr)
        return EXIT_DIVERGED
    reports = [
        (key, len(journal), replay_journal(registry, journal).divergence)
        for key, journal in journals.items()
    ]
    _print_reports(reports, args.json)
    return EXIT_DIVERGED if any(d is not None for _, _, d in reports) else 0


def _selected(event: Event, workflow: str | None, instance_id: str | None) -> bool:
    return (workflow is None or event.workflow_type == workflow) and (
        instance_id is None or event.instance_id == instance_id
    )


def _print_reports(reports: Sequence[tuple[str, int, Divergence | None]], as_json: bool) -> None:
    """A line per diverging instance (``--json``: an object per instance), then a summary
    (on stderr with ``--json``, so stdout stays JSON lines)."""
    for key, count, divergence in reports:
        if as_json:
            found = asdict(divergence) if divergence is not None else None
            row = {"instance": key, "records": count, "identical": found is None}
            print(json.dumps({**row, "divergence": found}, sort_keys=True))
        elif divergence is not None:
            print(f"{key}: {divergence}")
    diverging = sum(d is not None for _, _, d in reports)
    total = len(reports)
    print(
        f"{total} instance{'' if total == 1 else 's'} replayed: {total - diverging} identical, "
        f"{diverging} diverging",
        file=sys.stderr if as_json else sys.stdout,
    )


# -- replaying -------------------------------------------------------------------------------


async def read_journals(
    settings: Settings, workflow: str | None, instance_id: str | None
) -> list[JournalRecord]:
    """Journal records from the topic: one instance's from its partition, else every
    record (of ``workflow``'s instances when given; others are not decoded)."""
    if workflow is not None and instance_id is not None:
        return await read_history(settings, workflow, instance_id)
    topic = settings.topic(topics.JOURNAL)
    prefix = f"{workflow}:".encode() if workflow is not None else b""
    found = []
    for raw in await read_topic(settings, topic):
        if raw.key is not None and not raw.key.startswith(prefix):
            continue
        try:
            found.append(decode_journal(raw.value))
        except AvroDecodeError as exc:
            where = f"{topic} partition {raw.partition} offset {raw.offset}"
            raise JournalInputError(f"omninode: {where}: not a journal record: {exc}") from exc
    return found


# -- the journal's JSON lines ----------------------------------------------------------------


def row_bytes(limits: Limits) -> int:
    """The longest line of a journal file: an event within the inbound limit, and what its
    step recorded (states, children), which the snapshot's limit bounds."""
    return limits.event_bytes + limits.snapshot_bytes


def read_journal_file(path: str, limits: Limits) -> list[JournalRecord]:
    """Every row of a file of ``omninode history --json`` lines (blank lines skipped), in
    file order; the first malformed line raises :class:`JournalInputError`."""
    most = row_bytes(limits)
    records = []
    try:
        with open(path, "rb") as source:
            # Reads stop past the limit: a huge line (or a device) is refused, not held.
            lines = iter(lambda: source.readline(most + 2), b"")
            for number, raw in enumerate(lines, start=1):
                text = _line_text(raw, most, path, number)
                if text.strip():
                    records.append(parse_row(text, path, number, limits))
    except OSError as exc:
        raise JournalInputError(f"omninode: cannot read {path}: {exc.strerror or exc}") from exc
    return records


def _line_text(raw: bytes, most: int, file: str, number: int) -> str:
    line = raw.rstrip(b"\r\n")
    if len(line) > most:
        raise JournalInputError(
            f"{file}:{number}: the line is over {most} bytes, the limit of a journal row "
            "(OMNINODE_MAX_EVENT_BYTES + OMNINODE_MAX_SNAPSHOT_BYTES)"
        )
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JournalInputError(f"{file}:{number}: not UTF-8 text: {exc.reason}") from exc


def parse_row(text: str, file: str, number: int, limits: Limits) -> JournalRecord:
    """One line of ``omninode history --json`` back into its journal record, held to the
    limits inbound events are; a malformed one raises ``file:line: reason``."""
    try:
        return _record(_json(text, limits), limits)
    except ValueError as exc:
        raise JournalInputError(f"{file}:{number}: {exc}") from exc


def _json(text: str, limits: Limits) -> Any:
    try:
        return strict_json_loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (column {exc.colno})") from exc
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(
            f"nested too deeply to parse (the limit is {limits.json_depth} levels, "
            "OMNINODE_MAX_JSON_DEPTH)"
        ) from exc


def _record(obj: Any, limits: Limits) -> JournalRecord:
    if not isinstance(obj, dict):
        raise ValueError("a journal row is a JSON object (a line of `omninode history --json`)")
    _check_keys(obj, _ROW_REQUIRED, _ROW_OPTIONAL, "the row")
    status = obj["status"]
    if status not in _STATUSES:
        raise ValueError(f"'status' is {_shown(status)}, not one of {', '.join(_STATUSES)}")
    return JournalRecord(
        seq=_int(obj, "seq", 1),
        event=_event(obj["event"], limits),
        ignored=_bool(obj, "ignored"),
        status=status,
        workflow_version=_int(obj, "workflow_version", 0),
        configuration=_texts(obj, "configuration"),
        reason=_optional_text(obj, "reason"),
        raised=_texts(obj, "raised"),
        children=_children(obj.get("children")),
        outputs=_optional_text(obj, "outputs"),
    )


def _event(raw: Any, limits: Limits) -> Event:
    """The row's ``event`` (``Event.to_dict``), checked as an inbound record is."""
    if not isinstance(raw, dict):
        raise ValueError(f"'event' is {_shown(raw)}, not an object (Event.to_dict)")
    _check_keys(raw, frozenset(_EVENT_TEXT), _EVENT_OPTIONAL, "'event'")
    for key in _EVENT_TEXT:
        _text(raw, key, "event.")
    for key in _EVENT_OPTIONAL_TEXT:
        _optional_text(raw, key, "event.")
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise ValueError(f"'event.payload' is {_shown(payload)}, not a JSON object")
    problem = json_problem(payload, limits.json_depth)
    if problem is not None:
        raise ValueError(f"'event.payload': {problem}")
    _parent(raw.get("parent"))
    if raw.get("version") is not None:
        _int(raw, "version", 1, "event.")
    event = Event.from_dict(raw)
    _check_size(event, limits)
    return event


def _parent(raw: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ValueError(f"'event.parent' is {_shown(raw)}, not an object or null")
    _check_keys(raw, frozenset(_PARENT_KEYS), frozenset(), "'event.parent'")
    for key in _PARENT_KEYS:
        _text(raw, key, "event.parent.")


def _check_size(event: Event, limits: Limits) -> None:
    """The limits a worker holds an inbound record to."""
    key = len(event.key.encode())
    if key > limits.key_bytes:
        raise ValueError(
            f"the event's key is {key} bytes, over the limit of {limits.key_bytes} "
            "(OMNINODE_MAX_KEY_BYTES)"
        )
    size = len(encode_event(event))
    if size > limits.event_bytes:
        raise ValueError(
            f"the event is {size} bytes on the wire, over the limit of {limits.event_bytes} "
            "(OMNINODE_MAX_EVENT_BYTES)"
        )


def _children(raw: Any) -> tuple[ChildRun, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ValueError(f"'children' is {_shown(raw)}, not a list or null")
    runs = []
    for index, child in enumerate(raw):
        where = f"children[{index}]"
        if not isinstance(child, dict):
            raise ValueError(f"'{where}' is {_shown(child)}, not an object")
        _check_keys(child, frozenset(_CHILD_KEYS), frozenset(), f"'{where}'")
        runs.append(ChildRun(*(_text(child, key, f"{where}.") for key in _CHILD_KEYS)))
    return tuple(runs)


def _check_keys(
    obj: dict[str, Any], required: frozenset[str], optional: frozenset[str], what: str
) -> None:
    missing = sorted(required - obj.keys())
    if missing:
        raise ValueError(f"{what} has no {', '.join(map(repr, missing))}")
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        raise ValueError(f"{what} has unknown key(s) {', '.join(map(repr, unknown))}")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _text(obj: dict[str, Any], key: str, where: str = "") -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise ValueError(f"'{where}{key}' is {_shown(value)}, not a string")
    return value


def _optional_text(obj: dict[str, Any], key: str, where: str = "") -> str | None:
    return None if obj.get(key) is None else _text(obj, key, where)


def _texts(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"'{key}' is {_shown(value)}, not a list of strings")
    return tuple(value)


def _int(obj: dict[str, Any], key: str, least: int, where: str = "") -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"'{where}{key}' is {_shown(value)}, not an integer >= {least}")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj[key]
    if not isinstance(value, bool):
        raise ValueError(f"'{key}' is {_shown(value)}, not true or false")
    return value
