"""The static facts of a chart, derived once from its state tree when the chart is built.

They answer, without a step's data or history, what the SCXML algorithm
(:mod:`app.core.scxml`) would otherwise recompute on every step: which states handle an
event type, which states lie inside another, which states record history, each
transition's domain when no history target makes it vary, and for which configurations a
selection varies with the data or the history (so :mod:`app.core.plans` knows, before
computing one, whether it may cache it). Every mapping is keyed by the chart's own names:
an event type the chart does not know finds nothing and adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TypeVar

from app.core.model import ROOT, ChartFacts, StateNode, Transition
from app.core.scxml import domain_of

K = TypeVar("K")


def chart_facts(states: Mapping[str, StateNode]) -> ChartFacts:
    """The facts of the chart whose states (by path, root ``""`` included) are ``states``."""
    transitions = list(_transitions(states))
    history_targeted = frozenset(
        t.order for t in transitions if any(states[x].is_history for x in t.targets)
    )
    domains = {
        t.order: domain_of(states, t, t.targets)
        for t in transitions
        if t.targets and t.order not in history_targeted
    }
    return ChartFacts(
        handling=_frozen(_handling(states)),
        selection_varies=_frozen(_selection_varies(states, history_targeted)),
        descendants=_frozen(_descendants(states)),
        history_parents=frozenset(
            node.parent or ROOT for node in states.values() if node.is_history
        ),
        domains=MappingProxyType(domains),
        history_targeted=history_targeted,
    )


def _transitions(states: Mapping[str, StateNode]) -> Iterator[Transition]:
    for node in states.values():
        for group in node.transitions.values():
            yield from group
        yield from node.always


def _groups(node: StateNode) -> Iterator[tuple[str | None, tuple[Transition, ...]]]:
    """A state's transitions per event type, ``None`` for its ``always`` transitions."""
    yield from node.transitions.items()
    yield None, node.always


def _handling(states: Mapping[str, StateNode]) -> dict[str | None, set[str]]:
    """Event type (``None``: an ``always``) -> the states with a transition for it."""
    found: dict[str | None, set[str]] = {None: set()}
    for path, node in states.items():
        for event, group in _groups(node):
            if group:
                found.setdefault(event, set()).add(path)
    return found


def _selection_varies(
    states: Mapping[str, StateNode], history_targeted: frozenset[int]
) -> dict[str | None, set[str]]:
    """Event type -> the atomic states whose selection reads the data or the history.

    Selection walks up from each active atomic state and stops at the first state with a
    transition for the event whose condition holds. When that state's first transition has
    no ``guard``/``when`` it is taken without evaluating anything; when it also targets no
    history state, its exit set is static too. Otherwise the result varies.
    """
    found: dict[str | None, set[str]] = {}
    for path, node in states.items():
        if not node.is_atomic:
            continue
        seen: set[str | None] = set()
        for owner in (path, *node.ancestors):
            for event, group in _groups(states[owner]):
                if not group or event in seen:
                    continue
                seen.add(event)
                first = group[0]
                if (
                    first.guard is not None
                    or first.when is not None
                    or first.order in history_targeted
                ):
                    found.setdefault(event, set()).add(path)
    return found


def _descendants(states: Mapping[str, StateNode]) -> dict[str, set[str]]:
    """State -> every state strictly inside it."""
    found: dict[str, set[str]] = {path: set() for path in states}
    for path, node in states.items():
        for ancestor in node.ancestors:
            found[ancestor].add(path)
    return found


def _frozen(found: dict[K, set[str]]) -> Mapping[K, frozenset[str]]:
    return MappingProxyType({key: frozenset(value) for key, value in found.items()})
