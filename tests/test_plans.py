"""The chart's static facts and its bounded plan caches (app/core/facts.py, app/core/plans.py)."""

from __future__ import annotations

import gc
from types import MappingProxyType

import pytest

from app.core import plans
from app.core.interpreter import step
from app.core.model import Chart
from app.core.plans import PLAN_LIMIT, Capped, ChartPlans, cold_copy, plans_of
from app.spi.envelopes import Event
from tests.helpers import T0, Driver, chart

HEADER = "rss: 1\nworkflow: w\nversion: 1\n"


def load(body: str) -> Chart:
    return chart(HEADER + body)


def drive(body: str) -> Driver:
    driver = Driver(load(body))
    driver.send("$start")
    return driver


PARALLEL = """\
initial: idle
states:
  idle:
    on: {GO: busy}
  busy:
    type: parallel
    on: {STOP: idle}
    states:
      a:
        initial: a1
        states:
          a1: {on: {TICK: a2}}
          a2: {on: {TICK: a1}}
      b:
        initial: b1
        states:
          b1: {on: {TOCK: b2}}
          b2: {on: {TOCK: b1, BACK: {target: a_h}}}
          a_h: {type: history}
"""

GUARDED = """\
data: {n: 0}
initial: a
states:
  a:
    initial: a1
    on:
      GO: [{when: "data.n > 0", target: b}, {target: b}]
      NEXT: b
    states:
      a1: {on: {NEXT: a2}}
      a2: {}
  b:
    always: {when: "data.n > 5", target: done}
  done: {type: final}
"""


def test_facts_are_derived_once_into_read_only_mappings() -> None:
    facts = load(PARALLEL).facts
    assert facts.handling["TICK"] == {"busy.a.a1", "busy.a.a2"}
    assert facts.handling["STOP"] == {"busy"}
    assert facts.handling[None] == frozenset()  # no `always` anywhere
    assert "UNKNOWN" not in facts.handling
    assert facts.descendants["busy.a"] == {"busy.a.a1", "busy.a.a2"}
    assert facts.descendants["busy.a.a1"] == frozenset()
    assert facts.history_parents == {"busy.b"}
    back = next(iter(load(PARALLEL).states["busy.b.b2"].transitions["BACK"]))
    assert facts.history_targeted == {back.order}
    assert back.order not in facts.domains  # its domain depends on the recorded history
    stop = load(PARALLEL).states["busy"].transitions["STOP"][0]
    assert facts.domains[stop.order] == ""
    for mapping in (facts.handling, facts.descendants, facts.domains, facts.selection_varies):
        assert isinstance(mapping, MappingProxyType)
    with pytest.raises(TypeError):
        facts.handling["UNKNOWN"] = frozenset()  # type: ignore[index]


def test_selection_varies_where_the_first_transition_found_is_guarded_or_targets_history() -> None:
    guarded = load(GUARDED).facts.selection_varies
    # GO: a's first transition has a `when`, for both of a's atomic states.
    assert guarded["GO"] == {"a.a1", "a.a2"}
    # NEXT: a1 finds its own unguarded transition first; a2 finds a's, unguarded too.
    assert "NEXT" not in guarded
    assert guarded[None] == {"b"}
    assert load(PARALLEL).facts.selection_varies["BACK"] == {"busy.b.b2"}


def test_200000_distinct_unknown_event_types_leave_the_chart_caches_bounded() -> None:
    d = drive(PARALLEL)
    for event_type in ("GO", "TICK", "TOCK", "STOP", "GO"):
        d.send(event_type)  # warm: every cache holds something
    cache = plans_of(d.chart)
    before = cache.sizes()
    assert all(before.values())
    facts = d.chart.facts
    handled = dict(facts.handling)
    snapshot = d.snapshot
    for n in range(200_000):
        event = Event(d.chart.workflow, d.instance_id, f"U{n:06d}", f"u{n}", T0)
        result = step(d.chart, snapshot, event)
        assert result.trace.outcome == "ignored"
        snapshot = result.snapshot
    assert snapshot is not None and snapshot.is_active and snapshot.seq == 200_006
    assert plans_of(d.chart) is cache and cache.sizes() == before
    assert d.chart.facts is facts and dict(facts.handling) == handled


def test_every_plan_cache_stops_growing_at_the_limit() -> None:
    capped: Capped[int, str] = Capped(2)
    for n in range(5):
        capped.remember(n, str(n))
    assert capped == {0: "0", 1: "1"}
    cache = ChartPlans()
    for name in cache.sizes():
        store = getattr(cache, name)
        assert isinstance(store, Capped) and store.limit == PLAN_LIMIT


def test_a_copy_of_a_chart_starts_with_empty_caches() -> None:
    warm = drive(PARALLEL)
    warm.send("GO")
    copy = cold_copy(warm.chart)
    assert copy == warm.chart and copy is not warm.chart and copy.facts is warm.chart.facts
    assert all(plans_of(warm.chart).sizes().values())
    assert not any(plans_of(copy).sizes().values())


def test_plan_caches_leave_with_their_chart() -> None:
    d = drive(PARALLEL)
    d.send("GO")
    key = id(d.chart)
    assert key in plans._PLANS
    del d
    gc.collect()
    assert key not in plans._PLANS
