"""`internal: true` as RSS v1.1 clarifies it (SCXML's getTransitionDomain): it keeps a
compound source active only when every target is a proper descendant; on a self-target,
an atomic or a parallel source it is accepted and behaves as external."""

from __future__ import annotations

from tests.helpers import Driver, chart

CHART = """
    rss: 1
    workflow: w
    version: 1
    data: {entered: 0, exited: 0, a_entered: 0, r1_entered: 0}
    initial: p
    states:
      p:
        initial: a
        entry: {assign: {entered: "data.entered + 1"}}
        exit: {assign: {exited: "data.exited + 1"}}
        on:
          DOWN: {target: "#p.b", internal: true}
          SELF: {target: "#p", internal: true}
          TO_Q: q
        states:
          a:
            entry: {assign: {a_entered: "data.a_entered + 1"}}
            on:
              AGAIN: {target: a, internal: true}
          b: {}
      q:
        type: parallel
        on:
          RESTART: {target: "#q", internal: true}
        states:
          r1:
            initial: x
            entry: {assign: {r1_entered: "data.r1_entered + 1"}}
            states: {x: {}}
          r2: {initial: y, states: {y: {}}}
"""


def test_internal_to_a_proper_descendant_keeps_the_compound_source() -> None:
    driver = Driver(chart(CHART))
    driver.send("$start")
    driver.send("DOWN")
    assert driver.config == ("p.b",)
    assert (driver.data["entered"], driver.data["exited"]) == (1, 0)


def test_internal_to_the_source_itself_is_accepted_and_exits_and_reenters_it() -> None:
    driver = Driver(chart(CHART))
    driver.send("$start")
    result = driver.send("SELF")
    assert result.trace.outcome == "applied"
    assert (driver.data["entered"], driver.data["exited"]) == (2, 1)


def test_internal_on_an_atomic_source_is_accepted_and_behaves_as_external() -> None:
    driver = Driver(chart(CHART))
    driver.send("$start")
    driver.send("AGAIN")
    assert driver.config == ("p.a",) and driver.data["a_entered"] == 2


def test_internal_on_a_parallel_source_is_accepted_and_reenters_its_regions() -> None:
    driver = Driver(chart(CHART))
    driver.send("$start")
    driver.send("TO_Q")
    result = driver.send("RESTART")
    assert result.trace.outcome == "applied"
    assert driver.config == ("q.r1.x", "q.r2.y")
    assert result.trace.transitions == (("q", ("q",)),)
    assert driver.data["r1_entered"] == 2
