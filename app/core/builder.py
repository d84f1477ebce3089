"""Stages 2 and 3 of loading: build the chart model from a schema-valid document.

The builder resolves targets, compiles CEL, parses delays and runs the semantic checks,
collecting every problem (with its line) rather than stopping at the first. It also holds
the chart to the semantic limits of :class:`app.spi.limits.Limits`: state nesting, the
longest delay and plain-JSON ``data``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from app.core import composition_build, migration_build, paths
from app.core.durations import format_duration, parse_duration_ms
from app.core.errors import Diagnostic
from app.core.expressions import CelSyntaxError, Expr, compile_expr
from app.core.facts import chart_facts
from app.core.guards import GuardRegistry
from app.core.model import (
    ROOT,
    Actions,
    AfterTimer,
    Assignment,
    Chart,
    DispatchSpec,
    MigrationSpec,
    StateNode,
    StateType,
    Transition,
)
from app.core.payload_schemas import compile_payload_schema
from app.core.yamlsrc import Path, SourceDoc
from app.spi.envelopes import DEFAULT_QUEUE, RESULT_SUFFIXES, DispatchKind, RetryPolicy
from app.spi.limits import DEFAULT_LIMITS, Limits, json_problem

DEFAULT_TIMEOUT_MS = 30_000
_STATE_ONLY_KEYS = ("initial", "states", "on", "always", "after", "on_done")


class ChartBuilder:
    """Builds one :class:`Chart`; ``problems`` holds every diagnostic found."""

    def __init__(
        self, doc: SourceDoc, guards: GuardRegistry, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.doc = doc
        self.guards = guards
        self.limits = limits
        self.problems: list[Diagnostic] = []
        self.raw: dict[str, dict[str, Any]] = {}
        self.where: dict[str, Path] = {}
        self.types: dict[str, StateType] = {}
        self.children: dict[str, list[str]] = {}
        self._transition_count = 0
        self._event_keys: list[tuple[str, Path]] = []
        self._dispatch_names: set[str] = set()
        self.invoke_names: list[tuple[str, Path]] = []  # RSS v1.1 names, checked in pass 3
        self.raised_names: list[tuple[str, Path]] = []

    # -- helpers ---------------------------------------------------------------------------

    def error(self, where: Path, message: str) -> None:
        self.problems.append(Diagnostic(self.doc.file, self.doc.line_of(where), message))

    def line(self, where: Path) -> int:
        return self.doc.line_of(where)

    # -- pass 1: the state tree ------------------------------------------------------------

    def collect_states(self) -> None:
        data = self.doc.data
        self._collect(ROOT, {"initial": data["initial"], "states": data["states"]}, ())

    def _collect(self, path: str, raw: dict[str, Any], where: Path) -> None:
        self.raw[path] = raw
        self.where[path] = where
        self.children[path] = []
        self.types[path] = self._infer_type(path, raw, where)
        for name, child in (raw.get("states") or {}).items():
            child_path = paths.join(path, name)
            self.children[path].append(child_path)
            self._collect(child_path, child, (*where, "states", name))

    def _infer_type(self, path: str, raw: dict[str, Any], where: Path) -> StateType:
        declared = raw.get("type")
        has_children = bool(raw.get("states"))
        state_type: StateType = declared or ("compound" if has_children else "atomic")
        label = f"state '{path}'" if path else "the document"
        if state_type == "compound" and not has_children:
            self.error(where, f"{label} is compound but has no states")
        if state_type == "parallel" and not has_children:
            self.error(where, f"{label} is parallel but has no states (regions)")
        if state_type in ("atomic", "final", "history") and has_children:
            self.error((*where, "states"), f"{label} is {state_type} and cannot have states")
        if state_type == "compound" and "initial" not in raw:
            self.error(where, f"{label} is compound but has no 'initial'")
        if state_type in ("atomic", "parallel", "final", "history") and "initial" in raw:
            self.error((*where, "initial"), f"{label}: 'initial' only applies to compound states")
        if state_type in ("final", "history"):
            for key in _STATE_ONLY_KEYS:
                if key in raw and key not in ("initial", "states"):
                    self.error((*where, key), f"{label}: a {state_type} state cannot have '{key}'")
        if state_type == "history" and ("entry" in raw or "exit" in raw):
            self.error(where, f"{label}: a history state cannot have entry/exit actions")
        if state_type != "history" and ("history" in raw or "target" in raw):
            key = "history" if "history" in raw else "target"
            self.error((*where, key), f"{label}: '{key}' only applies to history states")
        if state_type == "history" and paths.parent_of(path) == ROOT:
            self.error(
                where, f"{label}: a history state must be inside a compound or parallel state"
            )
        if "status" in raw and (state_type != "final" or paths.parent_of(path) != ROOT):
            self.error(
                (*where, "status"), f"{label}: 'status' only applies to top-level final states"
            )
        if "on_done" in raw and state_type not in ("compound", "parallel"):
            self.error(
                (*where, "on_done"), f"{label}: 'on_done' needs a compound or parallel state"
            )
        return state_type

    # -- target resolution -----------------------------------------------------------------

    def resolve_target(self, ref: str, owner: str, where: Path) -> str | None:
        """A sibling name of ``owner``, or ``#dotted.path`` from the root."""
        path = ref[1:] if ref.startswith("#") else paths.join(paths.parent_of(owner), ref)
        if path in self.types and path != ROOT:
            return path
        candidates = [p.rpartition(".")[2] for p in self.children[paths.parent_of(owner)]]
        if ref.startswith("#"):
            candidates = ["#" + p for p in self.types if p]
        self.error(where, f"unknown target '{ref}'{_suggest(ref, candidates)}")
        return None

    def resolve_child(self, name: str, parent: str, where: Path) -> str | None:
        path = paths.join(parent, name)
        if path in self.types and paths.parent_of(path) == parent:
            if self.types[path] == "history":
                self.error(where, f"'initial' cannot be a history state ('{name}')")
            return path
        names = [p.rpartition(".")[2] for p in self.children[parent]]
        self.error(where, f"'initial' names unknown child '{name}'{_suggest(name, names)}")
        return None

    def resolve_targets(self, raw: object, owner: str, where: Path) -> tuple[str, ...] | None:
        refs = raw if isinstance(raw, list) else [raw]
        resolved = [self.resolve_target(str(ref), owner, where) for ref in refs]
        if any(path is None for path in resolved):
            return None
        targets = tuple(path for path in resolved if path is not None)
        self._check_target_set(targets, where)
        return targets

    def _check_target_set(self, targets: tuple[str, ...], where: Path) -> None:
        for i, first in enumerate(targets):
            for second in targets[i + 1 :]:
                if (
                    first == second
                    or paths.is_descendant(first, second)
                    or paths.is_descendant(second, first)
                ):
                    self.error(where, f"targets '{first}' and '{second}' overlap")
                    continue
                common = _common_ancestor(first, second)
                if self.types[common] != "parallel":
                    self.error(
                        where,
                        f"targets '{first}' and '{second}' cannot be active together: "
                        f"they are not in different regions of a parallel state",
                    )

    # -- expressions and actions -----------------------------------------------------------

    def expr(self, value: object, where: Path) -> Expr | None:
        source = value if isinstance(value, str) else json.dumps(value)
        try:
            compiled = compile_expr(source, self.line(where))
        except CelSyntaxError as exc:
            self.error(where, str(exc))
            return None
        composition_build.check_state_paths(self, compiled, where)
        return compiled

    def delay(self, value: object, where: Path) -> int | None:
        try:
            delay = parse_duration_ms(value)
        except ValueError as exc:
            self.error(where, str(exc))
            return None
        longest = self.limits.delay_ms
        if delay > longest:
            self.error(
                where,
                f"{where[-1]} {value} is longer than the maximum {format_duration(longest)} "
                f"(OMNINODE_MAX_DELAY_MS={longest})",
            )
            return None
        return delay

    def actions(self, spec: dict[str, Any], where: Path) -> Actions:
        assigns = []
        for key, value in (spec.get("assign") or {}).items():
            compiled = self.expr(value, (*where, "assign", key))
            if compiled is not None:
                assigns.append(Assignment(tuple(key.split(".")), compiled))
        raised = composition_build.raises(self, spec.get("raise") or [], (*where, "raise"))
        effects = self._dispatches(spec.get("effects") or [], "effect", (*where, "effects"))
        computes = self._dispatches(spec.get("computes") or [], "compute", (*where, "computes"))
        return Actions(tuple(assigns), effects, computes, raised)

    def _dispatches(
        self, items: list[Any], kind: DispatchKind, where: Path
    ) -> tuple[DispatchSpec, ...]:
        built = (self.dispatch(item, kind, (*where, i)) for i, item in enumerate(items))
        return tuple(d for d in built if d is not None)

    def dispatch(self, raw: object, kind: DispatchKind, where: Path) -> DispatchSpec | None:
        spec: dict[str, Any] = {"name": raw} if isinstance(raw, str) else dict(raw)  # type: ignore[call-overload]
        name: str = spec["name"]
        self._dispatch_names.add(name)
        mode = spec.get("mode", "await")
        inputs: list[tuple[str, Expr]] | None = None
        if "input" in spec:
            inputs = []
            for key, value in spec["input"].items():
                compiled = self.expr(value, (*where, "input", key))
                if compiled is not None:
                    inputs.append((key, compiled))
        retry = self._retry(spec.get("retry") or {}, (*where, "retry"))
        timeout = self.delay(spec["timeout"], (*where, "timeout")) if "timeout" in spec else None
        compensate = spec.get("compensate")
        if compensate is not None:
            self._dispatch_names.add(compensate)
            if kind == "compute":
                self.error((*where, "compensate"), f"compute '{name}': only effects compensate")
            elif mode != "await":
                self.error(
                    (*where, "compensate"),
                    f"effect '{name}': compensate needs mode: await "
                    "(a fire_and_forget effect never reports completion)",
                )
        return DispatchSpec(
            name=name,
            kind=kind,
            mode=mode,
            input=tuple(inputs) if inputs is not None else None,
            retry=retry,
            timeout_ms=timeout if timeout is not None else DEFAULT_TIMEOUT_MS,
            compensate=compensate,
            line=self.line(where),
            queue=spec.get("queue", DEFAULT_QUEUE),
        )

    def _retry(self, raw: dict[str, Any], where: Path) -> RetryPolicy:
        default = RetryPolicy()
        initial = self.delay(raw["initial"], (*where, "initial")) if "initial" in raw else None
        maximum = self.delay(raw["max"], (*where, "max")) if "max" in raw else None
        policy = RetryPolicy(
            max_attempts=raw.get("max_attempts", default.max_attempts),
            backoff=raw.get("backoff", default.backoff),
            initial_ms=initial if initial is not None else default.initial_ms,
            max_ms=maximum if maximum is not None else max(default.max_ms, initial or 0),
        )
        if policy.initial_ms > policy.max_ms:
            self.error(where, "retry: 'initial' is longer than 'max'")
        return policy

    # -- transitions -----------------------------------------------------------------------

    def transitions(
        self, raw: object, source: str, event: str | None, where: Path
    ) -> tuple[Transition, ...]:
        if isinstance(raw, list):
            items = [(item, (*where, i)) for i, item in enumerate(raw)]
        else:
            items = [(raw, where)]
        built = (self.transition(item, source, event, place) for item, place in items)
        return tuple(t for t in built if t is not None)

    def transition(
        self, raw: object, source: str, event: str | None, where: Path
    ) -> Transition | None:
        spec: dict[str, Any] = {"target": raw} if isinstance(raw, str) else dict(raw)  # type: ignore[call-overload]
        targets: tuple[str, ...] | None = ()
        if "target" in spec:
            target_where = where if isinstance(raw, str) else (*where, "target")
            targets = self.resolve_targets(spec["target"], source, target_where)
        if "guard" in spec and "when" in spec:
            self.error(where, "a transition takes 'guard' or 'when', not both")
        guard = spec.get("guard")
        if guard is not None and guard not in self.guards:
            known = ", ".join(self.guards) or "none"
            self.error(
                (*where, "guard"),
                f"unknown guard '{guard}': register it with @guard('{guard}') in a handlers "
                f"module (registered: {known})",
            )
        when = self.expr(spec["when"], (*where, "when")) if "when" in spec else None
        # As SCXML: `internal: true` where it cannot keep the source (a target outside or
        # equal to it, an atomic or parallel source) is accepted and behaves as external.
        internal = bool(spec.get("internal", False))
        actions = self.actions(spec, where)
        if targets is None:
            return None
        self._transition_count += 1
        return Transition(
            order=self._transition_count,
            source=source,
            event=event,
            targets=targets,
            guard=guard,
            when=when,
            actions=actions,
            internal=internal or not targets,
            line=self.line(where),
        )

    # -- pass 2: nodes ---------------------------------------------------------------------

    def build_node(self, path: str, order: int) -> StateNode:
        raw, where, state_type = self.raw[path], self.where[path], self.types[path]
        table: dict[str, tuple[Transition, ...]] = {}
        for event, spec in (raw.get("on") or {}).items():
            self._event_keys.append((event, (*where, "on", event)))
            table[event] = self.transitions(spec, path, event, (*where, "on", event))
        always = (
            self.transitions(raw["always"], path, None, (*where, "always"))
            if "always" in raw
            else ()
        )
        timers = tuple(
            self._after(path, i, spec, (*where, "after", i))
            for i, spec in enumerate(raw.get("after") or [])
        )
        for timer in timers:
            table[timer.event] = (timer.transition,)
        if "on_done" in raw:
            done_event = done_event_for(path)
            table[done_event] = self.transitions(
                raw["on_done"], path, done_event, (*where, "on_done")
            )
        initial = None
        if state_type == "compound" and "initial" in raw:
            initial = self.resolve_child(raw["initial"], path, (*where, "initial"))
        history_default: tuple[str, ...] = ()
        if state_type == "history" and "target" in raw:
            history_default = self.resolve_targets(raw["target"], path, (*where, "target")) or ()
        return StateNode(
            path=path,
            name=path.rpartition(".")[2],
            type=state_type,
            parent=None if path == ROOT else paths.parent_of(path),
            children=tuple(self.children[path]),
            initial=initial,
            transitions=table,
            always=always,
            after=timers,
            entry=self.actions(raw.get("entry") or {}, (*where, "entry")),
            exit=self.actions(raw.get("exit") or {}, (*where, "exit")),
            history_type=raw.get("history", "shallow") if state_type == "history" else None,
            history_default=history_default,
            status=raw.get("status", "done")
            if state_type == "final" and paths.parent_of(path) == ROOT and path
            else None,
            order=order,
            ancestors=paths.ancestors_of(path),
            line=self.line(where),
            invoke=composition_build.invocations(self, path, raw["invoke"], (*where, "invoke"))
            if "invoke" in raw
            else (),
            output=composition_build.output(self, path, raw, where),
        )

    def _after(self, path: str, index: int, raw: dict[str, Any], where: Path) -> AfterTimer:
        delay = self.delay(raw["delay"], (*where, "delay"))
        event = timer_event_for(path, index)
        spec = {key: value for key, value in raw.items() if key != "delay"}
        built = self.transition(spec, path, event, where)
        placeholder = Transition(0, path, event, (), None, None, Actions(), True, self.line(where))
        return AfterTimer(index, delay if delay is not None else -1, event, built or placeholder)

    # -- pass 3: whole-chart checks --------------------------------------------------------

    def check_events(self, declared: dict[str, Any] | None) -> None:
        # A raised event is internal: it needs no declaration (a client cannot send it).
        raised = {name for name, _ in self.raised_names}
        for event, where in self._event_keys:
            base, dot, suffix = event.rpartition(".")
            if dot and f".{suffix}" in RESULT_SUFFIXES:
                if base not in self._dispatch_names:
                    self.error(
                        where,
                        f"'{event}' is a result event, but no effect, compute or invoke is named "
                        f"'{base}'{_suggest(base, sorted(self._dispatch_names))}",
                    )
                continue
            if declared is not None and event not in declared and event not in raised:
                self.error(
                    where,
                    f"event '{event}' is not declared under 'events'"
                    f"{_suggest(event, sorted(declared))}",
                )

    def check_reachability(
        self, nodes: dict[str, StateNode], migrations: Mapping[int, MigrationSpec]
    ) -> None:
        """Every state is entered by something: a transition, an initial state, a region,
        or a migration (a state kept for migrated instances is reachable that way)."""
        seen: set[str] = set()
        work = [ROOT, *(t for m in migrations.values() for t in m.states.values())]
        while work:
            path = work.pop()
            if path in seen:
                continue
            seen.add(path)
            node = nodes[path]
            work.extend(_entered_with(node, nodes))
            for group in node.transitions.values():
                for transition in group:
                    work.extend(transition.targets)
            for transition in node.always:
                work.extend(transition.targets)
        for path, node in nodes.items():
            if path not in seen and not node.is_history:
                self.error(
                    self.where[path],
                    f"state '{path}' is unreachable: no transition, initial or region enters it",
                )

    def compile_schemas(self, data: dict[str, Any]) -> dict[str, Any]:
        validators: dict[str, Any] = {}
        schemas: dict[str, Any] = {"$data": data["data_schema"]} if "data_schema" in data else {}
        for event, schema in (data.get("events") or {}).items():
            schemas[event] = schema or {}
        for key, schema in schemas.items():
            where: Path = ("data_schema",) if key == "$data" else ("events", key)
            validator, problem = compile_payload_schema(schema)
            if validator is None:
                self.error(where, f"invalid JSON Schema: {problem}")
                continue
            validators[key] = validator
        return validators

    # -- the whole build -------------------------------------------------------------------

    def build(self) -> Chart | None:
        data = self.doc.data
        self.problems.extend(state_depth_problems(self.doc, self.limits))
        if self.problems:
            return None  # building recurses through the state tree: not past the limit
        self.collect_states()
        nodes = {path: self.build_node(path, order) for order, path in enumerate(self.raw)}
        composition_build.check_names(self, set(self._dispatch_names))
        self._dispatch_names.update(name for name, _ in self.invoke_names)
        self.check_events(data.get("events"))
        migrations = migration_build.migrations(self, data.get("migrate") or [], data["version"])
        if not self.problems:
            self.check_reachability(nodes, migrations)
        validators = self.compile_schemas(data)
        problem = json_problem(data.get("data"), self.limits.json_depth)
        if problem is not None:
            self.error(("data",), f"data must be plain JSON: {problem}")
        if self.problems:
            return None
        return Chart(
            workflow=data["workflow"],
            version=data["version"],
            description=data.get("description", ""),
            file=self.doc.file,
            initial_data=data.get("data") or {},
            data_schema=data.get("data_schema"),
            events={key: value or {} for key, value in (data.get("events") or {}).items()},
            states=nodes,
            dispatch_names=frozenset(self._dispatch_names),
            guards=self.guards,
            facts=chart_facts(nodes),
            validators=validators,
            limits=self.limits,
            migrations=migrations,
            internal_events=frozenset(
                name for name, _ in self.raised_names if name not in (data.get("events") or {})
            ),
        )


def state_depth_problems(doc: SourceDoc, limits: Limits) -> list[Diagnostic]:
    """States nested deeper than ``limits.state_depth``, one diagnostic per too-deep branch.

    Iterative and tolerant of any shape (it runs before the schema check), so a document
    nested far past the limit costs no recursion.
    """
    problems: list[Diagnostic] = []
    top = doc.data.get("states") if isinstance(doc.data, dict) else None
    work: list[tuple[Any, Path, str, int]] = [(top, ("states",), "", 1)]
    while work:
        states, where, prefix, depth = work.pop()
        if not isinstance(states, dict):
            continue
        for name, raw in states.items():
            path = paths.join(prefix, str(name))
            if depth > limits.state_depth:
                problems.append(
                    Diagnostic(
                        doc.file,
                        doc.line_of((*where, name)),
                        f"state '{path}' is nested {depth} deep, deeper than the limit of "
                        f"{limits.state_depth} (OMNINODE_MAX_STATE_DEPTH)",
                    )
                )
                break  # one diagnostic per too-deep branch is enough
            if isinstance(raw, dict):
                work.append((raw.get("states"), (*where, name, "states"), path, depth + 1))
    return problems


def timer_event_for(path: str, index: int) -> str:
    return f"$after.{path}.{index}"


def done_event_for(path: str) -> str:
    return f"$done.{path}"


def _entered_with(node: StateNode, nodes: dict[str, StateNode]) -> Iterable[str]:
    """States entered by default when ``node`` is entered (plus its parent)."""
    if node.parent is not None:
        yield node.parent
    if node.is_compound and node.initial:
        yield node.initial
    if node.is_parallel:
        yield from (child for child in node.children if not nodes[child].is_history)
    if node.is_history:
        yield from node.history_default or (
            (nodes[node.parent].initial or "",) if node.parent is not None else ()
        )


def _common_ancestor(first: str, second: str) -> str:
    for candidate in paths.ancestors_of(first):
        if candidate == ROOT or paths.is_descendant(second, candidate):
            return candidate
    return ROOT


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
