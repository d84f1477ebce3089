"""Stage 3 of loading: the immutable chart model (frozen dataclasses).

States are addressed by dotted path from the root; the root itself has the path ``""`` and
is an implicit compound state whose children are the document's top-level states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core.expressions import Expr
from app.core.guards import GuardRegistry
from app.spi.envelopes import DEFAULT_QUEUE, DispatchKind, DispatchMode, RetryPolicy
from app.spi.limits import DEFAULT_LIMITS, Limits

StateType = Literal["atomic", "compound", "parallel", "final", "history"]
ROOT = ""


@dataclass(frozen=True, slots=True)
class Assignment:
    """``assign: {path: expr}``: set ``data.<path>`` to the expression's value."""

    path: tuple[str, ...]
    expr: Expr


@dataclass(frozen=True, slots=True)
class DispatchSpec:
    """An effect or compute declared on a transition or in entry/exit actions."""

    name: str
    kind: DispatchKind
    mode: DispatchMode
    input: tuple[tuple[str, Expr], ...] | None
    retry: RetryPolicy
    timeout_ms: int | None
    compensate: str | None
    line: int
    # The task queue its commands travel on (``<app>.commands.<queue>``); an OmniNode
    # extension to RSS. A compensation travels on the queue of the effect it undoes.
    queue: str = DEFAULT_QUEUE


@dataclass(frozen=True, slots=True)
class RaiseSpec:
    """``raise``: an internal event for this macrostep's queue, with a CEL payload."""

    event: str
    payload: tuple[tuple[str, Expr], ...]
    line: int


@dataclass(frozen=True, slots=True)
class InvokeSpec:
    """An entry of a state's ``invoke`` list: a child workflow started on entry."""

    name: str
    workflow: str
    version: int | None
    input: tuple[tuple[str, Expr], ...] | None
    id: Expr | None
    timeout_ms: int | None
    line: int


@dataclass(frozen=True, slots=True)
class Actions:
    """Executable content, run in this order: assignments, raised events, effects, computes."""

    assign: tuple[Assignment, ...] = ()
    effects: tuple[DispatchSpec, ...] = ()
    computes: tuple[DispatchSpec, ...] = ()
    raises: tuple[RaiseSpec, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.assign or self.effects or self.computes or self.raises)


NO_ACTIONS = Actions()


@dataclass(frozen=True, slots=True)
class Transition:
    """One transition. ``order`` is its position in document order across the chart."""

    order: int
    source: str
    event: str | None
    targets: tuple[str, ...]
    guard: str | None
    when: Expr | None
    actions: Actions
    internal: bool
    line: int

    @property
    def is_targetless(self) -> bool:
        return not self.targets


@dataclass(frozen=True, slots=True)
class AfterTimer:
    """One entry of a state's ``after`` list: a durable timer armed on entry."""

    index: int
    delay_ms: int
    event: str
    transition: Transition


@dataclass(frozen=True, slots=True)
class StateNode:
    path: str
    name: str
    type: StateType
    parent: str | None
    children: tuple[str, ...]
    initial: str | None
    transitions: Mapping[str, tuple[Transition, ...]]
    always: tuple[Transition, ...]
    after: tuple[AfterTimer, ...]
    entry: Actions
    exit: Actions
    history_type: Literal["shallow", "deep"] | None
    history_default: tuple[str, ...]
    status: Literal["done", "failed"] | None
    order: int
    ancestors: tuple[str, ...]
    line: int
    # RSS v1.1: child workflows started on entry, and a top-level final state's ``output``.
    invoke: tuple[InvokeSpec, ...] = ()
    output: tuple[tuple[str, Expr], ...] | None = None

    @property
    def is_atomic(self) -> bool:
        return self.type in ("atomic", "final")

    @property
    def is_compound(self) -> bool:
        return self.type == "compound"

    @property
    def is_parallel(self) -> bool:
        return self.type == "parallel"

    @property
    def is_final(self) -> bool:
        return self.type == "final"

    @property
    def is_history(self) -> bool:
        return self.type == "history"


@dataclass(frozen=True, slots=True)
class ChartFacts:
    """What the state tree decides once and for all, derived by :mod:`app.core.facts` when the
    chart is built. Every mapping is read-only and keyed by the chart's own names (states,
    event types, transition orders), so nothing here grows at run time."""

    # event type (``None``: an ``always``) -> the states with a transition for it
    handling: Mapping[str | None, frozenset[str]]
    # event type (``None``: an ``always``) -> the atomic states whose transition selection
    # depends on the data or the recorded history: walking up from the state, the first
    # transition found is guarded (``guard``/``when``) or targets a history state
    selection_varies: Mapping[str | None, frozenset[str]]
    # state -> every state strictly inside it
    descendants: Mapping[str, frozenset[str]]
    # states with a history child: exiting them records history
    history_parents: frozenset[str]
    # transition order -> its domain, for every transition with targets and no history target
    domains: Mapping[int, str]
    # orders of the transitions with a history target (their domain and entry set read history)
    history_targeted: frozenset[int]


@dataclass(frozen=True, slots=True)
class MigrationSpec:
    """A ``migrate`` entry: how instances of version ``from_version`` move onto this chart.

    ``states`` maps an old atomic state's path to its target in this chart (resolved to a
    path); an old state not named there keeps its path, when this chart has it. ``data``
    are assignments evaluated over the old data (and the ``$migrate`` event)."""

    from_version: int
    states: Mapping[str, str]
    data: tuple[Assignment, ...]
    line: int
    state_lines: Mapping[str, int]  # old path -> the line naming it (cross-chart checks)


@dataclass(frozen=True)
class Chart:
    """A loaded, validated workflow type. Build it with :func:`app.core.loader.load_chart`.

    Immutable: what steps learn about it (selections, exit/entry plans) is cached apart, by
    :mod:`app.core.plans`, per chart object.
    """

    workflow: str
    version: int
    description: str
    file: str
    initial_data: Mapping[str, Any]
    data_schema: Mapping[str, Any] | None
    events: Mapping[str, Mapping[str, Any]]
    states: Mapping[str, StateNode]
    dispatch_names: frozenset[str]
    guards: GuardRegistry = field(compare=False, repr=False)
    # Derived from ``states`` by the builder; never part of equality.
    facts: ChartFacts = field(compare=False, repr=False)
    validators: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)
    # The limits the chart was loaded with; the reducer holds its steps to them too.
    limits: Limits = field(compare=False, repr=False, default=DEFAULT_LIMITS)
    # Raised event names not declared under `events:`: internal, refused from outside.
    internal_events: frozenset[str] = frozenset()
    # RSS v1.1 ``migrate``: by the older version it migrates from.
    migrations: Mapping[int, MigrationSpec] = field(default_factory=dict)

    @property
    def root(self) -> StateNode:
        return self.states[ROOT]

    def state(self, path: str) -> StateNode:
        return self.states[path]

    def invocations(self) -> list[tuple[StateNode, InvokeSpec]]:
        """Every ``invoke`` entry of the chart with its state, in document order."""
        return [(node, spec) for node in self.states.values() for spec in node.invoke]

    def transitions(self) -> list[Transition]:
        """Every transition of the chart, in document order."""
        found: list[Transition] = []
        for node in self.states.values():
            for group in node.transitions.values():
                found.extend(group)
            found.extend(node.always)
        return sorted(found, key=lambda t: t.order)

    def dispatch_specs(self) -> list[DispatchSpec]:
        """Every effect and compute the chart declares: entry and exit actions state by
        state, then transitions in document order."""
        actions = [a for node in self.states.values() for a in (node.entry, node.exit)]
        actions += [transition.actions for transition in self.transitions()]
        return [spec for a in actions for spec in (*a.effects, *a.computes)]
