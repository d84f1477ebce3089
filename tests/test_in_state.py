"""``in_state("dotted.path")`` (RSS v1.1, SCXML ``In()``): true when the state is active in
the configuration as it stands when the expression runs, in ``when`` and in ``assign`` (and
raised payloads, invoke inputs), inside parallel regions too."""

from __future__ import annotations

from tests.helpers import Driver, chart

PARALLEL = """\
rss: 1
workflow: w
version: 1
data: {}
initial: p
states:
  p:
    type: parallel
    on:
      CHECK:
        assign:
          x: 'in_state("p.r1.x")'
          y: 'in_state("p.r1.y")'
          u: 'in_state("p.r2.u")'
          v: 'in_state("p.r2.v")'
          p: 'in_state("p")'
          r2: 'in_state("p.r2")'
          out: 'in_state("out")'
      LEAVE: out
    states:
      r1:
        initial: x
        states:
          x:
            on:
              FLIP:
                target: y
                assign:
                  source_active: 'in_state("p.r1.x")'
                  target_active: 'in_state("p.r1.y")'
                  sibling_active: 'in_state("p.r2.u")'
              STAY: {assign: {source_active: 'in_state("p.r1.x")'}}
          y:
            entry:
              assign: {y_on_entry: 'in_state("p.r1.y")', x_on_entry: 'in_state("p.r1.x")'}
      r2:
        initial: u
        states:
          u:
            on:
              MOVE: {when: 'in_state("p.r1.y")', target: v}
              PICK:
                - {when: '!in_state("p.r1.x")', target: v, assign: {picked: "'v'"}}
                - {assign: {picked: "'none'"}}
          v: {}
  out:
    entry: {assign: {p_after_exit: 'in_state("p")', out_on_entry: 'in_state("out")'}}
"""

ALL_KEYS = ("x", "y", "u", "v", "p", "r2", "out")


def started() -> Driver:
    driver = Driver(chart(PARALLEL))
    driver.send("$start")
    return driver


def checked(driver: Driver) -> dict[str, bool]:
    result = driver.send("CHECK")
    assert result.trace.outcome == "applied", result.trace.reason
    return {key: driver.data[key] for key in ALL_KEYS}


def test_in_state_in_assign_follows_the_configuration() -> None:
    driver = started()
    assert checked(driver) == {
        "x": True,
        "y": False,
        "u": True,
        "v": False,
        "p": True,
        "r2": True,
        "out": False,
    }
    driver.send("FLIP")
    assert driver.config == ("p.r1.y", "p.r2.u")
    assert checked(driver) == {
        "x": False,
        "y": True,
        "u": True,
        "v": False,
        "p": True,
        "r2": True,
        "out": False,
    }


def test_in_transition_content_the_source_of_an_external_transition_is_exited() -> None:
    """The content runs after the exit set was exited and before the entry set is entered;
    a region that is not exited stays active."""
    driver = started()
    driver.send("FLIP")
    assert driver.data["source_active"] is False
    assert driver.data["target_active"] is False
    assert driver.data["sibling_active"] is True


def test_in_a_targetless_transition_the_source_stays_active() -> None:
    driver = started()
    driver.send("STAY")
    assert driver.data == {"source_active": True}


def test_in_entry_actions_the_entered_state_is_active_and_the_exited_one_is_not() -> None:
    driver = started()
    driver.send("FLIP")
    assert (driver.data["y_on_entry"], driver.data["x_on_entry"]) == (True, False)
    driver.send("LEAVE")
    assert driver.config == ("out",)
    assert (driver.data["p_after_exit"], driver.data["out_on_entry"]) == (False, True)


def test_in_state_in_when_guards_a_transition_of_another_region() -> None:
    driver = started()
    blocked = driver.send("MOVE")
    assert (blocked.trace.outcome, blocked.trace.reason) == ("ignored", "no transition selected")
    assert driver.config == ("p.r1.x", "p.r2.u")
    driver.send("FLIP")
    moved = driver.send("MOVE")
    assert moved.trace.outcome == "applied", moved.trace.reason
    assert driver.config == ("p.r1.y", "p.r2.v")


def test_in_state_in_when_picks_the_first_enabled_transition() -> None:
    driver = started()
    first = driver.send("PICK")
    assert first.trace.outcome == "applied", first.trace.reason
    assert (driver.config, driver.data["picked"]) == (("p.r1.x", "p.r2.u"), "none")
    driver.send("FLIP")
    driver.send("PICK")
    assert (driver.config, driver.data["picked"]) == (("p.r1.y", "p.r2.v"), "v")


def test_in_state_in_always_settles_on_the_new_configuration() -> None:
    driver = Driver(
        chart(
            """\
rss: 1
workflow: w
version: 1
data: {}
initial: p
states:
  p:
    type: parallel
    states:
      r1:
        initial: a
        states:
          a: {on: {GO: b}}
          b: {}
      r2:
        initial: idle
        states:
          idle:
            always: {when: 'in_state("p.r1.b")', target: seen}
          seen: {}
"""
        )
    )
    start = driver.send("$start")
    assert start.trace.outcome == "applied", start.trace.reason
    assert driver.config == ("p.r1.a", "p.r2.idle")
    result = driver.send("GO")
    assert result.trace.outcome == "applied", result.trace.reason
    assert driver.config == ("p.r1.b", "p.r2.seen")


def test_in_state_in_a_raised_payload_and_an_invoke_input() -> None:
    """A raised payload sees the configuration when it is raised; an invoke's input, the
    configuration once the macrostep settled (children start then)."""
    driver = Driver(
        chart(
            """\
rss: 1
workflow: w
version: 1
data: {}
initial: a
states:
  a:
    on:
      GO:
        target: b
        raise: [{event: NOTE, payload: {in_a: 'in_state("a")', in_b: 'in_state("b")'}}]
  b:
    invoke:
      - name: kid
        workflow: child
        input: {in_b: 'in_state("b")', in_a: 'in_state("a")'}
    on:
      NOTE: {assign: {note: "event.payload", now_b: 'in_state("b")'}}
"""
        )
    )
    driver.send("$start")
    result = driver.send("GO")
    assert driver.data == {"note": {"in_a": False, "in_b": False}, "now_b": True}
    (start,) = result.messages
    assert start.payload == {"in_b": True, "in_a": False}
