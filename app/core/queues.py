"""Task queues: which queue each command of a set of charts travels on.

An effect or compute names a ``queue`` (default ``default``); a compensation travels on
the queue of the effect it undoes. Workers serve the queues of the handlers they have, so
the runtime derives the command topics to create, and the queues a worker reads, from
these routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.core.model import Chart
from app.spi.envelopes import DEFAULT_QUEUE, DispatchKind


@dataclass(frozen=True, slots=True, order=True)
class CommandRoute:
    """Commands of this kind and name may travel on this queue."""

    queue: str
    kind: DispatchKind
    name: str


def command_routes(charts: Iterable[Chart]) -> frozenset[CommandRoute]:
    """Every (queue, kind, name) the charts dispatch, compensations included."""
    routes: set[CommandRoute] = set()
    for chart in charts:
        for spec in chart.dispatch_specs():
            routes.add(CommandRoute(spec.queue, spec.kind, spec.name))
            if spec.compensate is not None:
                routes.add(CommandRoute(spec.queue, "effect", spec.compensate))
    return frozenset(routes)


def command_queues(charts: Iterable[Chart]) -> tuple[str, ...]:
    """The queues the charts use, sorted; ``default`` always among them (a deployment
    without effects still has its default command topic)."""
    return tuple(sorted({DEFAULT_QUEUE, *(route.queue for route in command_routes(charts))}))
