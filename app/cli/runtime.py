"""CLI commands that talk to Kafka: broker, topics, start, send, status, history, dlq, dev."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from app.cli import contract_cmd, migrate_cmd, replay_cmd
from app.core.errors import ChartError
from app.core.snapshot import Snapshot
from app.infra import http_client as api
from app.infra import topics
from app.infra.broker import BrokerError, EmbeddedBroker
from app.infra.control import (
    describe_record,
    new_event,
    read_dead_letters,
    read_history,
    read_snapshot,
    replay_dead_letters,
    send_events,
)
from app.infra.demo import demo_runs, drive
from app.infra.http_views import journal_row
from app.infra.kafka_client import KafkaUnavailable, apply_topics, plan_topics
from app.infra.kafka_client import log as read_log
from app.infra.rebuild import rebuild_projections
from app.infra.registry import RegistryError, install_registry_ids
from app.infra.runtime import deployment_manifest, load_registry
from app.infra.settings import Settings, SettingsError
from app.infra.wire import encode_event
from app.infra.worker_process import WorkerProcess, free_port
from app.spi.envelopes import Event, JournalRecord
from app.spi.limits import Limits, json_problem, strict_json_loads

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
T = TypeVar("T")


def add_commands(commands: Any) -> None:
    broker = commands.add_parser("broker", help="run the embedded Kafka-protocol broker (dev)")
    broker.add_argument("--port", type=int, default=9092, help="0 picks a free port")
    broker.set_defaults(handler=_broker)

    topics = commands.add_parser("topics", help="diff or create the topics in topics/")
    topics.add_argument("action", choices=("plan", "apply", "list"))
    topics.set_defaults(handler=_topics)

    start = commands.add_parser("start", help="start an instance ($start with --data)")
    _instance_args(start)
    start.add_argument("--data", default="{}", help="JSON object merged over the chart's data")
    start.add_argument("--event-id", help="idempotency key of this event (default: random)")
    start.add_argument(
        "--version",
        type=_version,
        help="the chart version to start on (default: the latest loaded)",
    )
    start.set_defaults(registry_ids=True, handler=_start, event="$start")

    send = commands.add_parser("send", help="send an event to an instance")
    _instance_args(send)
    send.add_argument("event", help="event type, e.g. PAY or $cancel")
    send.add_argument("--data", default="{}", help="the payload, a JSON object")
    send.add_argument("--event-id", help="idempotency key of this event (default: random)")
    send.set_defaults(registry_ids=True, handler=_start)

    status = commands.add_parser("status", help="show an instance's snapshot")
    _instance_args(status)
    status.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    _verbose_arg(status)
    status.set_defaults(registry_ids=True, handler=_status)

    history = commands.add_parser("history", help="show an instance's journal")
    _instance_args(history)
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    _verbose_arg(history)
    history.set_defaults(registry_ids=True, handler=_history)

    _add_dlq(commands)
    replay_cmd.add_command(commands)
    migrate_cmd.add_command(commands)
    contract_cmd.add_command(commands)

    projections = commands.add_parser(
        "projections", help="rebuild the read models from the journal, from offset 0"
    )
    projections.add_argument("action", choices=("check", "rebuild"))
    projections.set_defaults(registry_ids=True, handler=_projections)

    dev = commands.add_parser("dev", help="embedded broker + topics + a worker + the examples")
    dev.add_argument("--once", action="store_true", help="stop after the demo runs")
    dev.add_argument("--port", type=int, default=0, help="broker port (default: a free one)")
    dev.set_defaults(handler=_dev)


def _add_dlq(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="list, show and replay dead letters")
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    dlq_list = dlq_actions.add_parser("list", help="one line per dead letter: id, stage, reason")
    dlq_list.add_argument("--stage", help="only this stage (decode, route, step, handler, …)")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_list.set_defaults(registry_ids=True, handler=_dlq_list)
    dlq_show = dlq_actions.add_parser("show", help="one dead letter in full, its record decoded")
    dlq_show.add_argument("id", help="the id `dlq list` prints (partition:offset)")
    dlq_show.set_defaults(registry_ids=True, handler=_dlq_show)
    dlq_replay = dlq_actions.add_parser(
        "replay", help="send the original records back to their source topics"
    )
    dlq_replay.add_argument("ids", nargs="*", help="ids from `dlq list`")
    dlq_replay.add_argument("--all", action="store_true", help="every dead letter (or --stage)")
    dlq_replay.add_argument("--stage", help="with --all: only this stage")
    dlq_replay.set_defaults(registry_ids=True, handler=_dlq_replay)


def _instance_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", metavar="TYPE", help="workflow type")
    parser.add_argument("instance_id", metavar="ID", help="instance id")


def _verbose_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say on stderr how it read: through which worker's API, or the topic, "
        "partition, offsets, records and seconds",
    )


@contextlib.contextmanager
def _reads_reported(verbose: bool) -> Iterator[None]:
    """With ``verbose``, each partition read (kafka_client logs it) as one stderr line."""
    if not verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = read_log.level
    read_log.addHandler(handler)
    read_log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        read_log.removeHandler(handler)
        read_log.setLevel(level)


def _say(verbose: bool, line: str) -> None:
    """With ``--verbose``: how the command read, on stderr."""
    if verbose:
        print(line, file=sys.stderr)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def guarded(args: argparse.Namespace) -> int:
    """Run a Kafka command; unreachable clusters and bad settings are one-line errors."""
    try:
        if getattr(args, "registry_ids", False):  # it reads or writes records
            settings = Settings.from_env()
            install_registry_ids(settings.schema_registry_url, settings.manifest())
        return int(args.handler(args))
    except RegistryError as exc:
        print(f"omninode: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.unavailable else EXIT_BAD_INPUT
    except ChartError as exc:  # charts that do not load: their `file:line: reason` lines
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SettingsError, BrokerError, json.JSONDecodeError, ValueError) as exc:
        print(f"omninode: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KafkaUnavailable, TimeoutError) as exc:
        print(f"omninode: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _broker(args: argparse.Namespace) -> int:
    broker = EmbeddedBroker(port=args.port)
    bootstrap = broker.start()
    print(f"embedded broker (Tansu, in memory) listening on {bootstrap}", flush=True)
    print(f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap} OMNINODE_PROFILE=local", flush=True)
    stop = _wait_for_signal(broker.is_running)
    broker.stop()
    print(f"stopped ({stop})", flush=True)
    return 0


def _wait_for_signal(alive: Any) -> str:
    received: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not received and alive():
        time.sleep(0.2)
    return received[0] if received else "the broker exited"


def _topics(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    # The command topics follow from the task queues the charts name.
    manifest = deployment_manifest(settings, load_registry(settings))
    if args.action == "list":
        print("\n".join(_topic_list(settings, manifest)))
        return 0
    action = apply_topics if args.action == "apply" else plan_topics
    changes = _run(action(settings, manifest))
    verb = {
        "create": "created" if args.action == "apply" else "to create",
        "ok": "ok",
        "differs": "DIFFERS",
    }
    for change in changes:
        print(f"{verb[change.action]:<10} {change.topic:<36} {change.detail}")
    return 1 if any(c.action == "differs" for c in changes) else 0


def _topic_list(settings: Settings, manifest: dict[str, topics.TopicSpec]) -> list[str]:
    """The resolved name of every topic this deployment uses, and its consumer group (no
    Kafka needed: names follow from the settings and the charts)."""
    rows = [(spec.name, spec.purpose) for spec in manifest.values()]  # resolved
    rows += [
        (settings.changelog_topic(table), f"changelog of the {role} table '{table}': {what}")
        for table, role, what in topics.TABLES
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {purpose}" for name, purpose in rows]
    lines.append(
        f"consumer group: {settings.app_id} (the workers'; a consumer of your own, such as "
        "a projection reader, needs another group id)"
    )
    return lines


def _start(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    payload = _data(args.data, settings.limits)
    event = new_event(args.workflow, args.instance_id, args.event, payload, args.event_id)
    if getattr(args, "version", None) is not None:
        event = replace(event, version=args.version)
    _check_size(event, settings.limits)
    _run(send_events(settings, [event]))
    print(f"sent {event.type} to {event.key} (event id {event.event_id})")
    return 0


def _version(text: str) -> int:
    """``--version``: a positive integer (argparse reports anything else, exit 2)."""
    if not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise argparse.ArgumentTypeError(f"not a chart version (a positive integer): {text!r}")
    return int(text)


class BadData(ValueError):
    """``--data`` that is not a JSON object within the limits (exit 2)."""


def _data(text: str, limits: Limits) -> dict[str, Any]:
    """``--data``: a JSON object, no NaN or infinity, nested at most ``json_depth`` levels."""
    try:
        payload = strict_json_loads(text)
    except RecursionError as exc:
        raise BadData("--data is not a JSON object: nested too deeply to parse") from exc
    except ValueError as exc:  # JSONDecodeError, NaN, a number of too many digits
        raise BadData(f"--data is not plain JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadData("--data must be a JSON object")
    problem = json_problem(payload, limits.json_depth)
    if problem is not None:
        raise BadData(f"--data: {problem}")
    return payload


def _check_size(event: Event, limits: Limits) -> None:
    """The limits the workers hold an inbound record to: refuse here what they would refuse."""
    key = len(event.key.encode())
    if key > limits.key_bytes:
        raise BadData(
            f"the key {event.key[:40]!r}... is {key} bytes, over the limit of "
            f"{limits.key_bytes} bytes (OMNINODE_MAX_KEY_BYTES)"
        )
    size = len(encode_event(event))  # the record's value, as the reducer agent measures it
    if size > limits.event_bytes:
        raise BadData(
            f"--data: the event would be {size} bytes on the wire, over the limit of "
            f"{limits.event_bytes} bytes (OMNINODE_MAX_EVENT_BYTES)"
        )


def _status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        answer = api.snapshot(settings, args.workflow, args.instance_id)
        _say(args.verbose, answer.describe())
        snapshot = Snapshot.from_dict(answer.body) if answer.status == 200 else None
    except api.ApiUnavailable as exc:
        _say(args.verbose and not exc.usual, f"{exc}; reading the snapshot table's changelog")
        with _reads_reported(args.verbose):
            snapshot = _run(read_snapshot(settings, args.workflow, args.instance_id))
    if snapshot is None:
        print(f"omninode: no instance {args.workflow}:{args.instance_id}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snapshot.to_dict(), indent=2, sort_keys=True))
    else:
        print(_describe(snapshot))
    return 0


def _describe(snapshot: Snapshot) -> str:
    lines = [
        f"{snapshot.workflow}:{snapshot.instance_id}  v{snapshot.version}  {snapshot.status}"
        f"  seq {snapshot.seq}  updated {snapshot.updated_at}",
        f"  states:  {', '.join(snapshot.configuration) or '-'}",
        f"  data:    {json.dumps(snapshot.data, sort_keys=True)}",
    ]
    if snapshot.parent is not None:
        parent = snapshot.parent
        lines.append(f"  parent:  {parent.key} (invoke {parent.name}, {parent.dispatch_id})")
    lines += [f"  waiting: {p.kind} {p.name} ({p.dispatch_id})" for p in snapshot.pending]
    lines += [f"  timer:   {t.event} at {t.deadline}" for t in snapshot.timers]
    lines += [f"  child:   {c.name} {c.key} {c.status}" for c in snapshot.children]
    if snapshot.output is not None:
        lines.append(f"  output:  {json.dumps(snapshot.output, sort_keys=True)}")
    if snapshot.reason:
        lines.append(f"  reason:  {snapshot.reason}")
    return "\n".join(lines)


def _history(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        rows, answer = api.history(settings, args.workflow, args.instance_id)
        _say(args.verbose, f"{answer.describe()} (last page)")
        limits = settings.limits
        where = answer.url
        records = [
            replay_cmd.parse_row(json.dumps(row), where, n, limits) for n, row in enumerate(rows, 1)
        ]
    except api.ApiUnavailable as exc:
        _say(args.verbose and not exc.usual, f"{exc}; reading the journal topic instead")
        with _reads_reported(args.verbose):
            records = _run(read_history(settings, args.workflow, args.instance_id))
    if not records:
        print(f"omninode: no journal for {args.workflow}:{args.instance_id}", file=sys.stderr)
        return 1
    for record in records:
        print(
            json.dumps(_history_row(record), sort_keys=True) if args.json else _history_line(record)
        )
    return 0


def _history_row(record: JournalRecord) -> dict[str, Any]:
    """Every field of the record, so `omninode replay --journal` can read the lines back
    (app.cli.replay_cmd parses them)."""
    return journal_row(record)


def _history_line(record: JournalRecord) -> str:
    mark = " (ignored)" if record.ignored else ""
    raised = f"  raised {', '.join(record.raised)}" if record.raised else ""
    return (
        f"{record.seq:>4}  {record.event.occurred_at}  {record.event.type}{mark}  -> "
        f"{record.status} {', '.join(record.configuration) or '-'}{raised}"
    )


def _dlq_list(args: argparse.Namespace) -> int:
    for letter in _run(read_dead_letters(Settings.from_env())):
        if args.stage and letter["stage"] != args.stage:
            continue
        if args.json:
            print(json.dumps(_printable(letter), sort_keys=True))
        else:
            where = (
                f"{letter['source_topic']}@{letter['source_partition']}:{letter['source_offset']}"
            )
            print(
                f"{letter['id']:<8} {letter['stage']:<8} {where:<28} {_one_line(letter['reason'])}"
            )
    return 0


def _one_line(text: str, limit: int = 300) -> str:
    """A reason on one line of a listing (`dlq show` prints it whole)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + f"... ({len(flat)} characters)"


def _printable(letter: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in letter.items()}


def _dlq_show(args: argparse.Namespace) -> int:
    letters = {d["id"]: d for d in _run(read_dead_letters(Settings.from_env()))}
    letter = letters.get(args.id)
    if letter is None:
        print(f"omninode: no dead letter {args.id}", file=sys.stderr)
        return 1
    shown = {**_printable(letter), "record": describe_record(letter["value"])}
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    letters = _run(read_dead_letters(settings))
    if args.all:
        chosen = [d for d in letters if not args.stage or d["stage"] == args.stage]
    else:
        by_id = {d["id"]: d for d in letters}
        if missing := [i for i in args.ids if i not in by_id]:
            print(f"omninode: no dead letter {', '.join(missing)}", file=sys.stderr)
            return 1
        chosen = [by_id[i] for i in args.ids]
    if not chosen:
        print("omninode: nothing to replay (name ids, or --all)", file=sys.stderr)
        return 1
    _run(replay_dead_letters(settings, chosen))
    for letter in chosen:
        print(f"replayed {letter['id']} to {letter['source_topic']}")
    return 0


def _projections(args: argparse.Namespace) -> int:
    report = _run(rebuild_projections(Settings.from_env(), publish=args.action == "rebuild"))
    print(f"journal records read: {report.journal_records}")
    print(f"instance views:       {report.views} ({report.views_differing} differ from published)")
    print(
        f"state counts:         {report.counts} ({report.counts_differing} differ from published)"
    )
    if args.action == "rebuild":
        print("published every view and count to the projection topics")
        return 0
    return 1 if report.views_differing or report.counts_differing else 0


def _dev(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="omninode-dev-"))
    with EmbeddedBroker(port=args.port, log_path=workdir / "broker.log") as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap_servers, profile="local", partitions=4
        )
        print(
            f"[1/4] embedded broker on {broker.bootstrap_servers} (logs in {workdir})", flush=True
        )
        _run(apply_topics(settings, deployment_manifest(settings, load_registry(settings))))
        print("[2/4] topics created from topics/omninode.yaml and the charts' queues", flush=True)
        worker = WorkerProcess(
            settings, workdir / "worker-data", workdir / "worker.log", web_port=_dev_web_port()
        ).start()
        try:
            worker.wait_ready()
            print(
                f"[3/4] worker ready (faust -A app.main worker), API and web console on "
                f"{worker.api_url}/",
                flush=True,
            )
            print("[4/4] running the example workflows:", flush=True)
            for run in demo_runs():
                _run(drive(settings, run, "demo-1", lambda line: print("   ", line, flush=True)))
            if args.once:
                return 0
            print(
                f"\nexport KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
                f"OMNINODE_PROFILE=local OMNINODE_PARTITIONS=4 OMNINODE_API_URL={worker.api_url}\n"
                "then try: omninode status order_fulfillment demo-1\n"
                f"web console: {worker.api_url}/#/instances/order_fulfillment/demo-1\n"
                "Ctrl-C stops the worker and the broker.",
                flush=True,
            )
            _wait_for_signal(broker.is_running)
        finally:
            worker.stop()
    return 0


def _dev_web_port() -> int:
    """The API's usual port (the CLI's default) when it is free, else any free one."""
    port = Settings().web_port
    with contextlib.suppress(OSError), socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
        return port
    return free_port()
