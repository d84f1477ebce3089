"""Bounded caches, per chart, of what the SCXML algorithm derives from a configuration alone.

Selecting transitions and computing exit and entry sets (:mod:`app.core.scxml`) depend only
on the active configuration and the event type, unless a ``guard``/``when`` (the data) or a
history target (the recorded history) is involved, and which of these can be involved is a
static fact of the chart (:class:`app.core.model.ChartFacts`): ``selection_varies`` for a
selection, ``history_targeted`` for a microstep. Results that depend on the configuration
alone are computed once and reused: a step on a known configuration then skips selection and
set arithmetic and runs only the transitions' content. Nothing else is ever stored.

Design: the chart model stays immutable; its caches live here, in a :class:`ChartPlans`
found by the chart object's identity (:func:`plans_of`) and dropped when the chart is
garbage-collected. Each cache is keyed only by what decides its result (a configuration
and an event type, or a configuration and transition orders) and is a :class:`Capped` dict:
it stops growing at :data:`PLAN_LIMIT` entries, after which steps compute instead of storing.
An event type the chart has no transition for never reaches a cache, so the keys are at most
the chart's configurations times its event types, and never more than the cap.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import TypeVar

from app.core import scxml
from app.core.model import Chart, Transition
from app.core.run import MacrostepRun

# Bound on stored results per chart and kind: a chart with many parallel regions has many
# configurations; past this, steps compute them instead of growing the cache.
PLAN_LIMIT = 20_000

K = TypeVar("K")
V = TypeVar("V")
SelectionKey = tuple[frozenset[str], str | None]
MicrostepKey = tuple[frozenset[str], tuple[int, ...]]


class Capped(dict[K, V]):
    """A dict that stops growing at ``limit`` entries; what is stored never changes."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: K, value: V) -> None:
        """Store ``value`` unless full (then callers keep computing it)."""
        if len(self) < self.limit:
            self[key] = value


@dataclass(frozen=True, slots=True)
class MicrostepPlan:
    """One microstep's sets, in the order the algorithm uses them."""

    exits: tuple[str, ...]  # states to exit, deepest first (reverse document order)
    owners: tuple[str, ...]  # per transition, the state its dispatches belong to
    entries: tuple[str, ...]  # states to enter, in document order


class ChartPlans:
    """The caches of one chart, each a wrapper around the SCXML function it is named after."""

    __slots__ = ("atomic_configurations", "full_configurations", "microsteps", "selections")

    def __init__(self, limit: int = PLAN_LIMIT) -> None:
        self.selections: Capped[SelectionKey, tuple[Transition, ...]] = Capped(limit)
        self.microsteps: Capped[MicrostepKey, MicrostepPlan] = Capped(limit)
        # atomic states (as stored in a snapshot) <-> every active state, root included
        self.full_configurations: Capped[tuple[str, ...], frozenset[str]] = Capped(limit)
        self.atomic_configurations: Capped[frozenset[str], tuple[str, ...]] = Capped(limit)

    def sizes(self) -> dict[str, int]:
        """Entries per cache (for tests and diagnostics)."""
        return {name: len(getattr(self, name)) for name in self.__slots__}

    def select_transitions(self, run: MacrostepRun, event_type: str | None) -> list[Transition]:
        """:func:`scxml.select_transitions`, stored when no active state's selection varies
        with the data or the history."""
        facts = run.chart.facts
        handling = facts.handling.get(event_type)
        if handling is None or run.config.isdisjoint(handling):
            return []  # no active state has a transition for this event (or an `always`)
        key = (frozenset(run.config), event_type)
        known = self.selections.get(key)
        if known is not None:
            return list(known)
        selected = scxml.select_transitions(run, event_type)
        varies = facts.selection_varies.get(event_type)
        if varies is None or run.config.isdisjoint(varies):
            self.selections.remember(key, tuple(selected))
        return selected

    def microstep(self, run: MacrostepRun, enabled: list[Transition]) -> None:
        """:func:`scxml.microstep`, with the exit set, owners and entry set stored when no
        transition targets a history state (then they follow from the configuration)."""
        key = (frozenset(run.config), tuple(t.order for t in enabled))
        plan = self.microsteps.get(key)
        if plan is None:
            if not run.chart.facts.history_targeted.isdisjoint(t.order for t in enabled):
                scxml.microstep(run, enabled)
                return
            plan = MicrostepPlan(
                scxml.exit_order(run, enabled),
                scxml.transition_owners(run, enabled),
                scxml.entry_order(run, enabled),
            )
            self.microsteps.remember(key, plan)
        scxml.exit_states(run, plan.exits)
        scxml.execute_transition_content(run, enabled, plan.owners)
        scxml.enter_states(run, plan.entries)

    def full_configuration(self, chart: Chart, atomic: tuple[str, ...]) -> set[str]:
        """:func:`scxml.full_configuration`, as a new set the step may change."""
        known = self.full_configurations.get(atomic)
        if known is None:
            known = scxml.full_configuration(chart, atomic)
            self.full_configurations.remember(atomic, known)
        return set(known)

    def atomic_configuration(self, chart: Chart, config: set[str]) -> tuple[str, ...]:
        """:func:`scxml.atomic_configuration`."""
        frozen = frozenset(config)
        known = self.atomic_configurations.get(frozen)
        if known is None:
            known = scxml.atomic_configuration(chart, frozen)
            self.atomic_configurations.remember(frozen, known)
        return known


# The caches of every live chart, by the chart object's identity. An entry leaves when its
# chart is collected (weakref.finalize runs before the object's id can be reused).
_PLANS: dict[int, ChartPlans] = {}


def plans_of(chart: Chart) -> ChartPlans:
    """The caches of ``chart`` (this very object): created on first use, bounded, dropped
    with the chart."""
    plans = _PLANS.get(id(chart))
    if plans is None:
        plans = _PLANS[id(chart)] = ChartPlans()
        weakref.finalize(chart, _PLANS.pop, id(chart), None)
    return plans


def cold_copy(chart: Chart) -> Chart:
    """An equal chart with nothing cached: caches belong to a chart object, so a copy starts
    empty. Steps on it compute every selection and plan afresh."""
    return replace(chart)
