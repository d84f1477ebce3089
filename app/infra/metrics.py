"""Prometheus metrics of a worker, in ``prometheus_client``'s default registry (``/metrics``).

Counters and histograms are recorded where the work happens (the reducer agent, the
command runner, the dead-letter sender); gauges that describe state are collected when
scraped, from what the worker holds (the state-counts table, the armed timers, the
consumer's positions). Each worker reports what it owns; sum across workers in queries.

| metric | type | labels |
|---|---|---|
| ``omninode_events_total`` | counter | ``workflow``, ``outcome`` (applied, ignored, |
| | | duplicate, rejected, failed: the step failed the instance) |
| ``omninode_step_seconds`` | histogram | |
| ``omninode_dead_letters_total`` | counter | ``stage`` |
| ``omninode_commands_total`` | counter | ``kind``, ``name`` (commands the reducer sent) |
| ``omninode_handler_seconds`` | histogram | ``name``, ``outcome`` (done, failed, timeout) |
| ``omninode_instances`` | gauge | ``workflow``, ``status`` (from the state-counts table) |
| ``omninode_timers_armed`` | gauge | |
| ``omninode_consumer_lag`` | gauge | ``topic``, ``partition`` |

Label values come from charts (workflow and dispatch names) and a fixed set of outcomes
and stages; a workflow type that no chart loaded is counted as ``(unknown)`` so a stream
of made-up types cannot grow the label set without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from projectors.state_counts import STATUS_PREFIX, split_key

UNKNOWN = "(unknown)"
# Step times are well under a millisecond; handler times are the handlers' own.
STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


@dataclass
class Metrics:
    """The recorded metrics of one process."""

    registry: CollectorRegistry
    events: Counter = field(init=False)
    step_seconds: Histogram = field(init=False)
    dead_letters: Counter = field(init=False)
    commands: Counter = field(init=False)
    handler_seconds: Histogram = field(init=False)
    known_workflows: set[str] = field(default_factory=set)
    # The events counter's children of known workflows, by workflow and outcome.
    _event_children: dict[tuple[str, str], Counter] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "omninode_events", "Inbound events by outcome.", ["workflow", "outcome"], registry=r
        )
        self.step_seconds = Histogram(
            "omninode_step_seconds", "Time of one reducer step.", buckets=STEP_BUCKETS, registry=r
        )
        self.dead_letters = Counter(
            "omninode_dead_letters", "Records sent to dead letters.", ["stage"], registry=r
        )
        self.commands = Counter(
            "omninode_commands", "Commands the reducer sent.", ["kind", "name"], registry=r
        )
        self.handler_seconds = Histogram(
            "omninode_handler_seconds",
            "Time of one command's run (every attempt), by outcome.",
            ["name", "outcome"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )

    def workflow_label(self, workflow: str) -> str:
        return workflow if workflow in self.known_workflows else UNKNOWN

    def event(self, workflow: str, outcome: str) -> None:
        # The labelled child looked up once per known workflow and outcome, not per event.
        child = self._event_children.get((workflow, outcome))
        if child is None:
            child = self.events.labels(self.workflow_label(workflow), outcome)
            if workflow in self.known_workflows:
                self._event_children[(workflow, outcome)] = child
        child.inc()


@cache
def metrics() -> Metrics:
    """The process's metrics, created (and registered) on first use."""
    return Metrics(REGISTRY)


class StateCollector(Collector):
    """Gauges read when scraped: instances by status, armed timers, consumer lag."""

    def __init__(
        self,
        counts: Callable[[], Iterable[tuple[bytes, bytes]]] | None = None,
        timers: Callable[[], int] | None = None,
        lag: Callable[[], Mapping[tuple[str, int], int]] | None = None,
    ) -> None:
        self._counts = counts
        self._timers = timers
        self._lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._counts is not None:
            yield instances_gauge(self._counts())
        if self._timers is not None:
            armed = GaugeMetricFamily("omninode_timers_armed", "Armed timers this worker holds.")
            armed.add_metric([], self._timers())
            yield armed
        if self._lag is not None:
            lag = GaugeMetricFamily(
                "omninode_consumer_lag",
                "Records not yet consumed, per assigned topic partition.",
                labels=["topic", "partition"],
            )
            for (topic, partition), behind in sorted(self._lag().items()):
                lag.add_metric([topic, str(partition)], behind)
            yield lag


def instances_gauge(rows: Iterable[tuple[bytes, bytes]]) -> GaugeMetricFamily:
    """``omninode_instances{workflow,status}`` from state-counts rows (key, count text)."""
    gauge = GaugeMetricFamily(
        "omninode_instances",
        "Instances by status (this worker's share).",
        labels=["workflow", "status"],
    )
    for key, value in rows:
        workflow, state = split_key(key.decode(errors="replace"))
        if state.startswith(STATUS_PREFIX):
            gauge.add_metric([workflow, state[len(STATUS_PREFIX) : -1]], int(value))
    return gauge


_installed: dict[int, Collector] = {}  # by registry


def use_collector(collector: Collector, registry: CollectorRegistry = REGISTRY) -> None:
    """Register the worker's scrape-time collector, replacing the one registered before in
    that registry (an app built twice in one process, as in tests)."""
    previous = _installed.pop(id(registry), None)
    if previous is not None:
        registry.unregister(previous)
    registry.register(collector)
    _installed[id(registry)] = collector


def consumer_lag(
    end: Mapping[tuple[str, int], int],
    read: Mapping[tuple[str, int], int],
    committed: Mapping[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """Records behind per topic partition: the end offset less the next offset to read (the
    last read + 1, else the committed offset, else the partition's start)."""
    lag = {}
    for tp, end_offset in end.items():
        position = read[tp] + 1 if tp in read else committed.get(tp, 0)
        lag[tp] = max(0, end_offset - position)
    return lag
