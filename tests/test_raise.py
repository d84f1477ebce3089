"""``raise`` (RSS v1.1, SCXML's internal event queue): raised events run in the same
macrostep after ``always`` settles, share one queue with ``$done`` events in raise order,
get no seq of their own, carry a CEL payload, and a raise loop fails the instance."""

from __future__ import annotations

from app.core.interpreter import step
from app.core.run import MAX_RAISED
from app.spi.envelopes import Event
from tests.helpers import T0, Driver, chart

HEADER = "rss: 1\nworkflow: w\nversion: 1\n"


def drive(body: str) -> Driver:
    driver = Driver(chart(HEADER + body))
    driver.send("$start")
    return driver


ALWAYS_FIRST = """\
data: {log: []}
initial: a
states:
  a:
    entry:
      assign: {log: "data.log + ['entry a']"}
      raise: [R1, {event: R2, payload: {v: "40 + 2"}}]
    always:
      - when: "size(data.log) < 3"
        assign: {log: "data.log + ['always']"}
    on:
      R1: {assign: {log: "data.log + ['R1 ' + event.type]"}}
      R2: {target: b, assign: {log: "data.log + ['R2 ' + string(event.payload.v)]"}}
  b: {}
"""


def test_always_transitions_settle_before_the_first_raised_event() -> None:
    driver = drive(ALWAYS_FIRST)
    assert driver.data["log"] == ["entry a", "always", "always", "R1 R1", "R2 42"]
    assert driver.config == ("b",)
    trace = driver.results[-1].trace
    assert trace.raised == ("R1", "R2")
    assert trace.transitions == (("a", ()), ("a", ()), ("a", ()), ("a", ("b",)))


SHARED_QUEUE = """\
data: {log: []}
initial: s
states:
  s:
    on:
      GO: {target: p, raise: [R1]}
  p:
    initial: f
    entry: {raise: [RP]}
    on:
      R1: {assign: {log: "data.log + ['R1']"}, raise: [R3]}
      RP: {assign: {log: "data.log + ['RP']"}}
      R3: {assign: {log: "data.log + ['R3']"}}
    on_done: {assign: {log: "data.log + ['done ' + event.type]"}}
    states:
      f: {type: final}
"""


def test_raised_and_done_events_share_one_queue_in_the_order_they_were_raised() -> None:
    """R1 (transition content), RP (p's entry), $done.p (entering p.f) are queued in that
    order by one microstep; R3, raised while R1 is processed, comes after $done.p."""
    driver = drive(SHARED_QUEUE)
    result = driver.send("GO")
    assert driver.data["log"] == ["R1", "RP", "done $done.p", "R3"]
    assert result.trace.raised == ("R1", "RP", "R3")  # done events are not `raise`d
    assert driver.config == ("p.f",)


def test_raised_events_get_no_seq_and_the_next_external_event_gets_the_next_one() -> None:
    driver = drive(SHARED_QUEUE)
    assert driver.snapshot is not None and driver.snapshot.seq == 1
    result = driver.send("GO")
    assert (result.trace.seq, driver.snapshot.seq) == (2, 2)
    assert driver.snapshot.recent_event_ids == ("e1", "e2")
    again = driver.send("R3")  # a raised name is internal: refused from outside, no seq
    assert (again.trace.outcome, again.trace.seq, again.trace.raised) == ("rejected", None, ())
    assert driver.snapshot.seq == 2
    assert driver.data["log"] == ["R1", "RP", "done $done.p", "R3"]


PAYLOADS = """\
data: {n: 5, seen: []}
initial: a
states:
  a:
    on:
      GO:
        assign: {n: "data.n + 1"}
        raise:
          - {event: NOTE, payload: {n: "data.n", from: "event.type", x: "event.payload.x"}}
          - NOTE
      NOTE:
        assign:
          seen: "data.seen + [[event.type, event.payload]]"
"""


def test_a_raised_payload_is_cel_over_the_assigned_data_and_the_raising_event() -> None:
    """``assign`` runs before ``raise``; the raised event's transitions see it as ``event``
    with its own payload (empty when none is declared)."""
    driver = drive(PAYLOADS)
    result = driver.send("GO", {"x": [1, 2]})
    assert driver.data["seen"] == [
        ["NOTE", {"n": 6, "from": "GO", "x": [1, 2]}],
        ["NOTE", {}],
    ]
    assert result.trace.raised == ("NOTE", "NOTE")


def test_a_raised_payload_error_fails_the_step_and_keeps_the_last_valid_state() -> None:
    driver = drive(
        """\
data: {n: 5}
initial: a
states:
  a:
    on:
      GO: {target: b, assign: {n: "7"}, raise: [{event: X, payload: {bad: "data.n / 0"}}]}
  b: {}
"""
    )
    result = driver.send("GO")
    assert result.trace.outcome == "failed"
    assert result.trace.reason is not None
    assert result.trace.reason.startswith("CEL expression 'data.n / 0'")
    assert (driver.config, driver.data, driver.snapshot and driver.snapshot.status) == (
        ("a",),
        {"n": 5},
        "failed",
    )


def test_a_raised_event_no_transition_handles_is_dropped_and_the_step_still_applies() -> None:
    driver = drive(
        """\
data: {n: 0}
initial: a
states:
  a:
    on:
      GO: {assign: {n: "data.n + 1"}, raise: [NOBODY, ALSO_NOBODY]}
"""
    )
    result = driver.send("GO")
    assert (result.trace.outcome, result.trace.raised) == ("applied", ("NOBODY", "ALSO_NOBODY"))
    assert driver.data == {"n": 1}


def test_raised_events_run_in_parallel_regions_in_document_order() -> None:
    driver = drive(
        """\
data: {log: []}
initial: p
states:
  p:
    type: parallel
    states:
      r1:
        initial: x
        states:
          x:
            on:
              GO: {raise: [PING]}
              PING: {target: y, assign: {log: "data.log + ['r1 ping']"}}
          y: {}
      r2:
        initial: u
        states:
          u:
            on:
              PING: {target: v, assign: {log: "data.log + ['r2 ping']"}}
          v: {}
"""
    )
    result = driver.send("GO")
    assert driver.data["log"] == ["r1 ping", "r2 ping"]
    assert driver.config == ("p.r1.y", "p.r2.v")
    assert result.trace.transitions == (
        ("p.r1.x", ()),
        ("p.r1.x", ("p.r1.y",)),
        ("p.r2.u", ("p.r2.v",)),
    )


LOOP = """\
data: {n: 0}
initial: a
states:
  a:
    on:
      GO: {target: b, assign: {n: "1"}}
  b:
    on:
      START_LOOP: {assign: {n: "2"}, raise: [R]}
      R: {raise: [R, R]}
"""


def test_a_raise_loop_fails_the_instance_with_a_reason_and_never_raises() -> None:
    driver = drive(LOOP)
    driver.send("GO")
    result = driver.send("START_LOOP")
    assert result.trace.outcome == "failed"
    assert result.trace.seq == 3
    reason = f"more than {MAX_RAISED} raised events in one step: a raise loop"
    assert result.trace.reason == reason
    snapshot = driver.snapshot
    assert snapshot is not None
    assert (snapshot.status, snapshot.reason, snapshot.seq) == ("failed", reason, 3)
    assert (snapshot.configuration, snapshot.data) == (("b",), {"n": 1})  # the last valid state
    assert result.trace.raised == ()  # a failed step keeps nothing of what it did
    later = driver.send("GO")
    assert (later.trace.outcome, later.trace.reason) == ("ignored", "instance is failed")


def test_a_raise_loop_on_start_fails_the_new_instance() -> None:
    loop = chart(
        HEADER
        + """\
initial: a
states:
  a:
    entry: {raise: [R]}
    on:
      R: {raise: [R, R]}
"""
    )
    result = step(loop, None, Event("w", "i", "$start", "s1", T0, {}))
    assert result.snapshot is not None
    assert (result.trace.outcome, result.snapshot.status, result.snapshot.seq) == (
        "failed",
        "failed",
        1,
    )
    assert (
        result.snapshot.reason == f"more than {MAX_RAISED} raised events in one step: a raise loop"
    )


def test_exit_actions_raise_into_the_queue_of_the_transition_that_exits() -> None:
    driver = drive(
        """\
data: {log: []}
initial: a
states:
  a:
    exit: {raise: [LEFT_A]}
    on: {GO: b}
  b:
    on:
      LEFT_A: {target: c, assign: {log: "data.log + ['left a, in b']"}}
  c: {}
"""
    )
    result = driver.send("GO")
    assert driver.config == ("c",)
    assert driver.data["log"] == ["left a, in b"]
    assert result.trace.raised == ("LEFT_A",)


INTERNAL = """\
events: {GO: {}, SHARED: {}}
initial: a
states:
  a:
    on:
      GO: {raise: [inner, SHARED]}
      inner: b
      SHARED: c
  b: {}
  c: {}
"""


def test_a_raised_name_sent_from_outside_is_rejected_unless_declared() -> None:
    driver = drive(INTERNAL)
    refused = driver.send("inner")
    assert refused.trace.outcome == "rejected"
    assert refused.trace.reason == "'inner' is an internal event of w (raised by the chart)"
    assert driver.config == ("a",) and driver.snapshot is not None and driver.snapshot.seq == 1
    assert driver.send("SHARED").trace.outcome == "applied"  # declared: clients may send it
    assert driver.config == ("c",)


def test_the_chart_itself_still_handles_its_internal_event() -> None:
    driver = drive(INTERNAL)
    result = driver.send("GO")
    assert result.trace.raised == ("inner", "SHARED") and driver.config == ("b",)
