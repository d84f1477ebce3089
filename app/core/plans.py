"""What the SCXML algorithm derives from a configuration alone, memoized per chart.

Selecting transitions and computing exit and entry sets depend only on the active
configuration and the event type, unless a guard or ``when`` (the data) or a history state
(the recorded history) is involved. Those configuration-only results are computed once
per chart and reused: a step on a known configuration then skips selection and set
arithmetic and runs only the transitions' content. Results that depend on data or history
are never stored. Pure: a memo only caches what the functions would compute again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from app.core.model import Chart, Transition

# Bound on memoized results per chart and kind: a chart with many parallel regions has
# many configurations; past this, steps compute them instead of growing the memo.
PLAN_LIMIT = 20_000

K = TypeVar("K")
V = TypeVar("V")
SelectionKey = tuple[frozenset[str], str | None]
MicrostepKey = tuple[frozenset[str], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class MicrostepPlan:
    """One microstep's sets, in the order the algorithm uses them."""

    exits: tuple[str, ...]  # states to exit, deepest first (reverse document order)
    owners: tuple[str, ...]  # per transition, the state its dispatches belong to
    entries: tuple[str, ...]  # states to enter, in document order


@dataclass
class ChartPlans:
    selections: dict[SelectionKey, tuple[Transition, ...]] = field(default_factory=dict)
    microsteps: dict[MicrostepKey, MicrostepPlan] = field(default_factory=dict)
    # atomic states (as stored in a snapshot) <-> every active state, root included
    full_configurations: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict)
    atomic_configurations: dict[frozenset[str], tuple[str, ...]] = field(default_factory=dict)


def remember(memo: dict[K, V], key: K, value: V) -> None:
    """Store ``value`` unless the memo is full (then callers keep computing it)."""
    if len(memo) < PLAN_LIMIT:
        memo[key] = value


def plans_of(chart: Chart) -> ChartPlans:
    plans: ChartPlans | None = chart.memo.get("plans")
    if plans is None:
        plans = chart.memo["plans"] = ChartPlans()
    return plans
