"""The simulator: run the pure reducer over a JSON-lines script with a simulated clock.

Each line is an event ``{"type", "payload"?, "at"?, "id"?, "dispatch_id"?, "workflow"?,
"instance"?}`` or a clock move ``{"advance": "15m"}``. Moving the clock, by ``advance`` or by
an event's later ``at``, first fires every timer that falls due on the way (deadline order,
then document order), each at its own deadline. The clock starts at the first line's ``at``,
else at the Unix epoch.

Several charts make one world (RSS v1.1 ``invoke``): script events go to the first chart's
instance unless a line names another (``workflow``/``instance``, say a child whose effect it
answers); the child starts, cancels and answers a step sends are processed in FIFO order
after it, through the same router as the runtime's, and every instance's timers fire on the
one clock.

Lines are held to the same limits as inbound records (``Limits``): a line over
``event_bytes``, a payload nested deeper than ``json_depth``, NaN or a number beyond a
float's range, or a clock beyond year 9999 is a ``file:line: reason`` error, never a crash;
so is an invoke loop (more than ``MAX_MESSAGES_PER_LINE`` messages for one line).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.durations import format_instant, parse_duration_ms, parse_instant_ms
from app.core.errors import SimulationInputError
from app.core.interpreter import StepResult
from app.core.model import Chart
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot, Timer, timer_firing
from app.spi.envelopes import START, Event, instance_key
from app.spi.limits import DEFAULT_LIMITS, Limits, json_problem, strict_json_loads

MAX_TIMER_FIRINGS_PER_MOVE = 10_000
# Messages between instances processed for one script line: an invoke loop stops here.
MAX_MESSAGES_PER_LINE = 10_000
_EVENT_KEYS = {"type", "payload", "at", "id", "dispatch_id", "workflow", "instance", "version"}
_TEXT_KEYS = ("id", "dispatch_id", "workflow", "instance")
# The clock's range: instants are ISO-8601 text, whose years end at 9999.
LATEST_MS = parse_instant_ms("9999-12-31T23:59:59.999Z")
EARLIEST_MS = parse_instant_ms("0001-01-01T00:00:00Z")


@dataclass(frozen=True, slots=True)
class ScriptLine:
    line: int
    advance_ms: int | None = None
    type: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    at_ms: int | None = None
    event_id: str | None = None
    dispatch_id: str | None = None
    # Another instance of the world to send to (a child, to answer its effects); default:
    # the first chart's workflow and the ``--instance`` id.
    workflow: str | None = None
    instance: str | None = None
    version: int | None = None  # a $start pinned to a loaded version of its chart


def parse_script(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> list[ScriptLine]:
    """Parse an events file; malformed lines raise :class:`SimulationInputError`."""
    parsed = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() and not raw.lstrip().startswith("//"):
            parsed.append(_parse_line(raw, file, number, limits))
    return parsed


def _json_line(raw: str, file: str, number: int, limits: Limits) -> Any:
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > limits.event_bytes:
        raise SimulationInputError(
            file,
            number,
            f"line is {size} bytes, over the limit of {limits.event_bytes} "
            "(OMNINODE_MAX_EVENT_BYTES)",
        )
    try:
        return strict_json_loads(raw)
    except json.JSONDecodeError as exc:
        raise SimulationInputError(file, number, f"not JSON: {exc.msg}") from exc
    except ValueError as exc:
        raise SimulationInputError(file, number, f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise SimulationInputError(
            file,
            number,
            f"nested too deeply to parse (the limit is {limits.json_depth} levels, "
            "OMNINODE_MAX_JSON_DEPTH)",
        ) from exc


def _parse_line(raw: str, file: str, number: int, limits: Limits) -> ScriptLine:
    obj = _json_line(raw, file, number, limits)
    if not isinstance(obj, dict):
        raise SimulationInputError(file, number, "each line must be a JSON object")
    try:
        if "advance" in obj:
            if set(obj) != {"advance"}:
                raise ValueError("an advance line has only the key 'advance'")
            return ScriptLine(number, advance_ms=parse_duration_ms(obj["advance"]))
        unknown = set(obj) - _EVENT_KEYS
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_EVENT_KEYS)}")
        if not isinstance(obj.get("type"), str) or not obj["type"]:
            raise ValueError("an event line needs a string 'type'")
        payload = obj.get("payload", {})
        if not isinstance(payload, dict):
            raise ValueError("'payload' must be a JSON object")
        problem = json_problem(payload, limits.json_depth)
        if problem is not None:
            raise ValueError(f"'payload': {problem}")
        for name in _TEXT_KEYS:
            if name in obj and not isinstance(obj[name], str):
                raise ValueError(f"'{name}' must be a string")
        at = _instant_ms(obj["at"]) if "at" in obj else None
        version = _version(obj)
    except ValueError as exc:
        raise SimulationInputError(file, number, str(exc)) from exc
    event_id, dispatch_id, workflow, instance = (obj.get(name) for name in _TEXT_KEYS)
    return ScriptLine(
        number, None, obj["type"], payload, at, event_id, dispatch_id, workflow, instance, version
    )


def _version(obj: dict[str, Any]) -> int | None:
    """A ``$start`` line's ``version``: the chart version the instance starts on."""
    if "version" not in obj:
        return None
    version = obj["version"]
    if obj["type"] != START:
        raise ValueError("'version' applies only to a $start line")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"'version' must be a positive integer, not {json.dumps(version)[:40]}")
    return version


def _instant_ms(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError(
            f"'at' must be an ISO-8601 instant as a string (e.g. \"2026-01-01T09:00:00Z\"), "
            f"not {type(value).__name__} {json.dumps(value)[:40]}"
        )
    try:
        return parse_instant_ms(value)
    except ValueError as exc:
        raise ValueError(f"'at': not an ISO-8601 instant: {value[:64]!r} ({exc})") from exc


@dataclass
class Simulator:
    """Drives a world of instances through a script with one clock, yielding one row per
    processed event. Script events go to ``instance_id`` of ``chart``; ``others`` are further
    charts loaded into the same world (the workflows ``chart`` invokes, and theirs). The
    messages a step sends to other instances (child ``$start``/``$cancel``, a parent's
    answer) are processed in FIFO order, one queue for the world, before the next line."""

    chart: Chart
    file: str = "<events>"
    instance_id: str = "sim-1"
    clock_ms: int | None = None
    notes: list[str] = field(default_factory=list)
    limits: Limits = DEFAULT_LIMITS
    others: Sequence[Chart] = ()
    # Every instance of the world by its key (``workflow:instance``), in creation order.
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    registry: ChartRegistry = field(init=False)
    # Rows name their instance when the world can hold more than one, and their chart
    # version when it holds several versions of one workflow.
    labelled: bool = field(init=False)
    versioned: bool = field(init=False)
    _messages: int = field(default=0, init=False)  # processed for the current script line

    def __post_init__(self) -> None:
        self.registry = ChartRegistry([self.chart, *self.others])
        charts = list(self.registry)
        self.labelled = len(charts) > 1 or any(c.invocations() for c in charts)
        self.versioned = len({c.workflow for c in charts}) < len(charts)

    @property
    def snapshot(self) -> Snapshot | None:
        """The instance the script drives."""
        return self.snapshots.get(instance_key(self.chart.workflow, self.instance_id))

    def run(self, script: list[ScriptLine]) -> Iterator[dict[str, Any]]:
        for line in script:
            yield from self.feed(line)

    def feed(self, line: ScriptLine) -> Iterator[dict[str, Any]]:
        self._messages = 0
        now = self.clock_ms if self.clock_ms is not None else (line.at_ms or 0)
        if line.advance_ms is not None:
            yield from self._move_clock(self._within_range(now + line.advance_ms, line), line.line)
            return
        target = self._within_range(line.at_ms if line.at_ms is not None else now, line)
        if target < now:
            raise SimulationInputError(self.file, line.line, "'at' is earlier than the clock")
        yield from self._move_clock(target, line.line)
        yield from self._process(self._script_event(line, target), line.line)

    def _script_event(self, line: ScriptLine, at_ms: int) -> Event:
        workflow = line.workflow or self.chart.workflow
        kind = line.type or ""
        return Event(
            workflow_type=workflow,
            instance_id=line.instance or self.instance_id,
            type=kind,
            event_id=line.event_id or f"line-{line.line}",
            occurred_at=format_instant(at_ms),
            payload=line.payload,
            dispatch_id=line.dispatch_id,
            # The script simulates CHART: its $start stays on CHART's version even when a
            # later version of the same workflow is loaded beside it, unless the line pins one.
            version=line.version
            or (self.chart.version if kind == START and workflow == self.chart.workflow else None),
        )

    def _within_range(self, target_ms: int, line: ScriptLine) -> int:
        if EARLIEST_MS <= target_ms <= LATEST_MS:
            return target_ms
        what = "the advance moves" if line.advance_ms is not None else "'at' puts"
        raise SimulationInputError(
            self.file,
            line.line,
            f"{what} the clock to {_describe_ms(target_ms)}, outside years 1 to 9999",
        )

    def _move_clock(self, target_ms: int, number: int) -> Iterator[dict[str, Any]]:
        for _ in range(MAX_TIMER_FIRINGS_PER_MOVE):
            due = self._next_due(target_ms)
            if due is None:
                self.clock_ms = target_ms
                return
            snapshot, timer = due
            self.clock_ms = parse_instant_ms(timer.deadline)
            firing = timer_firing(snapshot.workflow, snapshot.instance_id, timer)
            yield from self._process(firing, number)
        raise SimulationInputError(
            self.file, number, f"more than {MAX_TIMER_FIRINGS_PER_MOVE} timer firings in one move"
        )

    def _next_due(self, target_ms: int) -> tuple[Snapshot, Timer] | None:
        """The first due timer of the world: deadline order, then the owning chart's
        document order, then the order the instances were created in."""
        best: tuple[tuple[int, int, int, int], Snapshot, Timer] | None = None
        for rank, snapshot in enumerate(self.snapshots.values()):
            if not snapshot.is_active or not snapshot.timers:
                continue
            states = self.registry.get(snapshot.workflow, snapshot.version).states
            for timer in snapshot.timers:
                deadline = parse_instant_ms(timer.deadline)
                if deadline > target_ms:
                    continue
                order = (deadline, states[timer.state].order, timer.index, rank)
                if best is None or order < best[0]:
                    best = (order, snapshot, timer)
        return None if best is None else (best[1], best[2])

    def _process(self, first: Event, number: int) -> Iterator[dict[str, Any]]:
        """Step ``first``, then every message it causes, FIFO, until the world is quiet."""
        queue = deque([first])
        while queue:
            event = queue.popleft()
            if event is not first:
                self._count_message(number)
            result = self._route(event, number)
            queue.extend(result.messages)
            trace = result.trace
            if trace.outcome in ("rejected", "duplicate"):
                self.notes.append(self._note(event, number, trace.outcome, trace.reason))
                continue
            assert result.snapshot is not None
            self.snapshots[event.key] = result.snapshot
            found = row(event, result)
            if self.labelled:
                found.update(workflow=result.snapshot.workflow, instance=event.instance_id)
            if self.versioned:
                found.update(version=result.snapshot.version)
            yield found

    def _count_message(self, number: int) -> None:
        self._messages += 1
        if self._messages > MAX_MESSAGES_PER_LINE:
            raise SimulationInputError(
                self.file,
                number,
                f"more than {MAX_MESSAGES_PER_LINE} messages between instances (child starts, "
                "cancels, answers) for one line: an invoke loop?",
            )

    def _route(self, event: Event, number: int) -> StepResult:
        try:
            return self.registry.route(self.snapshots.get(event.key), event)
        except OverflowError as exc:  # a timer armed near year 9999 lands beyond it
            raise SimulationInputError(
                self.file,
                number,
                f"{event.type} at {event.occurred_at}: the step went beyond years 1 to 9999 "
                f"(a timer's deadline?): {exc}",
            ) from exc

    def _note(self, event: Event, number: int, outcome: str, reason: str | None) -> str:
        who = f"{event.key} " if self.labelled else ""
        return f"{self.file}:{number}: {who}{event.type} {outcome}: {reason}"


def _describe_ms(ms: int) -> str:
    years = ms / (365.2425 * 86_400_000)
    return f"about {years:,.0f} years after 1970" if ms >= 0 else f"{-years:,.0f} years before 1970"


def row(event: Event, result: StepResult) -> dict[str, Any]:
    """The simulation contract's output row for one processed event; a step that failed the
    instance (a guard or expression error, a limit) carries the instance's ``reason``."""
    snapshot = result.snapshot
    assert snapshot is not None
    extra = {"reason": snapshot.reason} if result.trace.outcome == "failed" else {}
    return {
        **extra,
        "seq": result.trace.seq,
        "event": event.type,
        "ignored": result.trace.ignored,
        "status": snapshot.status,
        "configuration": list(snapshot.configuration),
        "data": snapshot.data,
        "effects": [
            {"name": c.name, "mode": c.mode} for c in result.commands if c.kind == "effect"
        ],
        "computes": [
            {"name": c.name, "mode": c.mode} for c in result.commands if c.kind == "compute"
        ],
    }
