"""Unit tests of the reducer, one feature at a time, on textbook statecharts."""

from __future__ import annotations

from app.core.guards import GuardRegistry
from app.core.snapshot import Snapshot
from tests.helpers import Driver, chart

HEADER = "rss: 1\nworkflow: w\nversion: 1\n"


def drive(body: str, guards: GuardRegistry | None = None, **start: object) -> Driver:
    driver = Driver(chart(HEADER + body, guards))
    driver.send("$start", dict(start))
    return driver


# -- hierarchy, entry/exit order ---------------------------------------------------------

TRACKED = """\
data: {log: []}
initial: a
states:
  a:
    initial: a1
    entry: {assign: {log: "data.log + ['enter a']"}}
    exit: {assign: {log: "data.log + ['exit a']"}}
    on:
      OUT: b
    states:
      a1:
        entry: {assign: {log: "data.log + ['enter a1']"}}
        exit: {assign: {log: "data.log + ['exit a1']"}}
        on:
          NEXT: {target: a2, assign: {log: "data.log + ['t a1->a2']"}}
      a2:
        entry: {assign: {log: "data.log + ['enter a2']"}}
  b:
    entry: {assign: {log: "data.log + ['enter b']"}}
"""


def test_start_enters_initial_configuration_outermost_first() -> None:
    d = drive(TRACKED)
    assert d.config == ("a.a1",)
    assert d.data["log"] == ["enter a", "enter a1"]
    assert d.snapshot is not None and d.snapshot.seq == 1


def test_exit_deepest_first_then_transition_actions_then_entry() -> None:
    d = drive(TRACKED)
    d.send("NEXT")
    assert d.data["log"][-3:] == ["exit a1", "t a1->a2", "enter a2"]
    d.send("OUT")
    assert d.config == ("b",)
    assert d.data["log"][-2:] == ["exit a", "enter b"]


def test_ancestor_transition_handles_event_of_child() -> None:
    d = drive(TRACKED)
    result = d.send("OUT")
    assert result.trace.transitions == (("a", ("b",)),)


# -- external vs internal self transitions ------------------------------------------------

SELF = """\
data: {entries: 0}
initial: p
states:
  p:
    initial: c1
    entry: {assign: {entries: "data.entries + 1"}}
    on:
      EXTERNAL: {target: p.c2}
      INTERNAL: {target: "#p.c2", internal: true}
      NOTHING: {assign: {touched: "true"}}
    states:
      c1: {}
      c2: {}
"""


def test_external_transition_to_descendant_reenters_source() -> None:
    d = drive(SELF.replace("target: p.c2", 'target: "#p.c2"'))
    d.send("EXTERNAL")
    assert d.config == ("p.c2",)
    assert d.data["entries"] == 2


def test_internal_transition_keeps_source_active() -> None:
    d = drive(SELF.replace("target: p.c2", 'target: "#p.c2"'))
    d.send("INTERNAL")
    assert d.config == ("p.c2",)
    assert d.data["entries"] == 1


def test_targetless_transition_runs_actions_only() -> None:
    d = drive(SELF.replace("target: p.c2", 'target: "#p.c2"'))
    d.send("NOTHING")
    assert d.config == ("p.c1",)
    assert d.data == {"entries": 1, "touched": True}


# -- guards: CEL `when` and named -------------------------------------------------------------

GUARDED = """\
data: {limit: 10}
initial: idle
states:
  idle:
    on:
      PAY:
        - when: "event.payload.amount >= data.limit"
          target: big
        - guard: is_small
          target: small
        - target: other
  big: {}
  small: {}
  other: {}
"""


def _small_guards() -> GuardRegistry:
    registry = GuardRegistry()
    registry.register("is_small", lambda data, event: event["payload"]["amount"] < 3)
    return registry


def test_first_enabled_transition_in_document_order_wins() -> None:
    for amount, expected in ((12, "big"), (2, "small"), (5, "other"), (10.5, "big")):
        d = drive(GUARDED, _small_guards())
        d.send("PAY", {"amount": amount})
        assert d.config == (expected,), amount


# -- parallel regions, completion, conflicts ----------------------------------------------

PARALLEL = """\
initial: work
states:
  work:
    type: parallel
    on_done: finished
    on:
      ABORT: aborted
    states:
      left:
        initial: l1
        states:
          l1: {on: {GO: l2, BOTH: l2}}
          l2: {type: final}
      right:
        initial: r1
        states:
          r1: {on: {GO: r2, BOTH: "#aborted"}}
          r2: {type: final}
  finished: {type: final}
  aborted: {type: final, status: failed}
"""


def test_one_event_moves_both_regions() -> None:
    d = drive(PARALLEL)
    assert d.config == ("work.left.l1", "work.right.r1")
    result = d.send("GO")
    assert result.trace.transitions[0] == ("work.left.l1", ("work.left.l2",))
    # both regions final -> on_done -> top-level final -> instance done
    assert d.config == ("finished",)
    assert d.snapshot is not None and d.snapshot.status == "done"


def test_parallel_completion_waits_for_every_region() -> None:
    body = PARALLEL.replace("l1: {on: {GO: l2, BOTH: l2}}", "l1: {on: {GO: l2, LEFT: l2}}")
    d = drive(body.replace('r1: {on: {GO: r2, BOTH: "#aborted"}}', "r1: {on: {RIGHT: r2}}"))
    d.send("LEFT")
    assert d.config == ("work.left.l2", "work.right.r1")
    d.send("RIGHT")
    assert d.config == ("finished",)


def test_conflicting_transitions_in_parallel_regions_earlier_wins() -> None:
    """left selects l1->l2 first; right's r1->#aborted exits the whole parallel state, so its
    exit set intersects left's and it is dropped (document order)."""
    d = drive(PARALLEL)
    result = d.send("BOTH")
    assert result.trace.transitions == (("work.left.l1", ("work.left.l2",)),)
    assert d.config == ("work.left.l2", "work.right.r1")


def test_descendant_transition_preempts_ancestor_transition() -> None:
    """SCXML: p's E (found first, via region a) exits p and so conflicts with b1's E; b1 lies
    inside p, so b1's transition preempts it even though it was selected later."""
    body = """\
initial: p
states:
  p:
    type: parallel
    on: {E: out}
    states:
      a:
        initial: a1
        states:
          a1: {}
      b:
        initial: b1
        states:
          b1: {on: {E: b2}}
          b2: {}
  out: {}
"""
    d = drive(body)
    result = d.send("E")
    assert result.trace.transitions == (("p.b.b1", ("p.b.b2",)),)
    assert d.config == ("p.a.a1", "p.b.b2")


# -- history -------------------------------------------------------------------------------

HISTORY = """\
initial: player
states:
  player:
    initial: stopped
    on:
      POWER_OFF: off
    states:
      stopped: {on: {PLAY: playing}}
      playing:
        initial: normal
        on: {STOP: stopped}
        states:
          normal: {on: {FAST: fast}}
          fast: {}
      shallow_h: {type: history}
      deep_h: {type: history, history: deep}
  off:
    on:
      RESUME_SHALLOW: "#player.shallow_h"
      RESUME_DEEP: "#player.deep_h"
      RESUME_DEFAULT: "#player.shallow_h"
"""


def test_shallow_history_restores_child_with_its_default_descendant() -> None:
    d = drive(HISTORY)
    d.send("PLAY")
    d.send("FAST")
    d.send("POWER_OFF")
    assert d.config == ("off",)
    d.send("RESUME_SHALLOW")
    assert d.config == ("player.playing.normal",)


def test_deep_history_restores_atomic_descendants() -> None:
    d = drive(HISTORY)
    d.send("PLAY")
    d.send("FAST")
    d.send("POWER_OFF")
    d.send("RESUME_DEEP")
    assert d.config == ("player.playing.fast",)


def test_history_without_record_uses_parent_initial() -> None:
    body = HISTORY.replace("initial: player\n", "initial: off\n")
    d = drive(body)
    d.send("RESUME_DEFAULT")
    assert d.config == ("player.stopped",)


# -- always, bounded loops ----------------------------------------------------------------


def test_always_transitions_run_until_stable() -> None:
    d = drive(
        """\
data: {n: 0}
initial: counting
states:
  counting:
    always:
      - when: "data.n < 5"
        target: counting
        assign: {n: "data.n + 1"}
      - when: "data.n >= 5"
        target: done
  done: {type: final}
"""
    )
    assert d.data["n"] == 5
    assert d.config == ("done",)
    assert d.snapshot is not None and d.snapshot.status == "done"


def test_always_loop_is_bounded_and_fails_the_instance_with_a_reason() -> None:
    d = Driver(
        chart(
            HEADER + "initial: a\nstates:\n  a: {on: {GO: b}}\n  b: {always: c}\n  c: {always: b}\n"
        )
    )
    d.send("$start")
    result = d.send("GO")
    assert result.trace.outcome == "failed"
    assert d.snapshot is not None
    assert d.snapshot.status == "failed"
    assert "always" in (d.snapshot.reason or "")
    assert d.config == ("a",)  # the failing step's configuration change is discarded
    assert d.snapshot.seq == 2


# -- timers ----------------------------------------------------------------------------------

TIMED = """\
initial: waiting
states:
  waiting:
    after:
      - delay: 15m
        target: reminded
      - delay: 1h
        target: expired
    on:
      ANSWER: answered
  reminded:
    on: {ANSWER: answered}
  answered: {}
  expired: {}
"""


def test_timers_are_armed_on_entry_with_deadline_from_event_time() -> None:
    d = drive(TIMED)
    assert d.snapshot is not None
    assert [(t.event, t.deadline) for t in d.snapshot.timers] == [
        ("$after.waiting.0", "2026-01-01T00:15:00Z"),
        ("$after.waiting.1", "2026-01-01T01:00:00Z"),
    ]


def test_timer_firing_transitions_and_exit_cancels_remaining_timers() -> None:
    d = drive(TIMED)
    d.fire("waiting", 0)
    assert d.config == ("reminded",)
    assert d.snapshot is not None and d.snapshot.timers == ()


def test_cancelled_timer_never_fires() -> None:
    d = drive(TIMED)
    assert d.snapshot is not None
    stale = d.snapshot.timers[1]
    d.send("ANSWER")
    result = d.send(stale.event, timer_id=stale.id, at=stale.deadline)
    assert result.trace.ignored
    assert result.trace.reason == "timer is no longer armed"
    assert d.config == ("answered",)


def test_reentering_a_state_rearms_its_timer_with_a_new_id() -> None:
    body = TIMED.replace(
        "      ANSWER: answered\n  reminded",
        "      ANSWER: answered\n      POKE: waiting\n  reminded",
    )
    d = drive(body)
    assert d.snapshot is not None
    first = d.snapshot.timers[0]
    d.advance(60_000)
    d.send("POKE")
    assert d.snapshot is not None
    again = d.snapshot.timers[0]
    assert again.id != first.id
    assert again.deadline == "2026-01-01T00:16:00Z"
    assert d.send(first.event, timer_id=first.id, at=first.deadline).trace.ignored


# -- effects, computes, results -----------------------------------------------------------

EFFECTS = """\
data: {total: 30}
initial: idle
states:
  idle:
    on:
      GO:
        target: charging
        effects:
          - name: audit
            mode: fire_and_forget
  charging:
    entry:
      effects:
        - name: charge_card
          input: {amount: data.total}
          retry: {max_attempts: 5, backoff: exponential, initial: 2s, max: 1m}
          timeout: 10s
          compensate: refund_card
      computes:
        - name: risk_score
    on:
      charge_card.done: charged
      RETRY: charging
  charged:
    on:
      FAIL: broken
  broken: {type: final, status: failed}
"""


def test_effects_and_computes_become_commands_with_their_annotations() -> None:
    d = drive(EFFECTS)
    result = d.send("GO")
    commands = {c.name: c for c in result.commands}
    assert [c.name for c in result.commands] == ["audit", "charge_card", "risk_score"]
    charge = commands["charge_card"]
    assert (charge.kind, charge.mode, dict(charge.input)) == ("effect", "await", {"amount": 30})
    assert (charge.retry.max_attempts, charge.retry.initial_ms, charge.timeout_ms) == (
        5,
        2000,
        10_000,
    )
    assert charge.compensate == "refund_card"
    assert commands["risk_score"].kind == "compute"
    assert dict(commands["risk_score"].input) == {"total": 30}  # default input: all data
    assert commands["audit"].mode == "fire_and_forget"
    assert d.snapshot is not None
    assert sorted(p.name for p in d.snapshot.pending) == ["charge_card", "risk_score"]
    assert charge.command_id == "w:i-1:2:2"


def test_result_for_exited_state_is_stale_and_ignored() -> None:
    d = drive(EFFECTS)
    first = next(c for c in d.send("GO").commands if c.name == "charge_card")
    d.send("RETRY")  # re-enters charging: the first dispatch is now stale
    stale = d.send("charge_card.done", {"id": 1}, dispatch_id=first.command_id)
    assert stale.trace.ignored
    assert stale.trace.reason == "result for a dispatch that is no longer pending"
    assert d.config == ("charging",)


def test_result_settles_pending_dispatch_once() -> None:
    d = drive(EFFECTS)
    charge = next(c for c in d.send("GO").commands if c.name == "charge_card")
    d.send("charge_card.done", {"id": "ch_1"}, dispatch_id=charge.command_id)
    assert d.config == ("charged",)
    again = d.send("charge_card.done", {"id": "ch_1"}, dispatch_id=charge.command_id)
    assert again.trace.ignored


def test_failed_final_state_dispatches_compensations_in_reverse_order() -> None:
    body = EFFECTS.replace(
        "      RETRY: charging\n", "      RETRY: charging\n      AGAIN: charging2\n"
    )
    body = body.replace(
        "  charged:\n",
        "  charging2:\n    entry:\n      effects: [{name: hold_stock, compensate: release_stock}]\n    on: {hold_stock.done: charged}\n  charged:\n",
    )
    d = drive(body)
    d.send("GO")
    d.send("charge_card.done", {"charge": "ch_1"})
    assert d.config == ("charged",)
    d2 = drive(body)
    d2.send("GO")
    d2.send("AGAIN")
    d2.send("hold_stock.done", {"hold": "h1"})
    # AGAIN left charging before charge_card answered, so only hold_stock completed.
    assert d2.snapshot is not None
    assert [c.name for c in d2.snapshot.completed_effects] == ["hold_stock"]
    result = d2.send("FAIL")
    assert [(c.name, c.mode) for c in result.commands] == [("release_stock", "fire_and_forget")]
    # Full saga: two completed effects compensate in reverse order of completion.
    d3 = drive(body)
    d3.send("GO")
    d3.send("charge_card.done", {"charge": "ch_1"})
    d3.send("FAIL")
    assert d3.snapshot is not None and d3.snapshot.status == "failed"
    assert [c.name for c in d3.results[-1].commands] == ["refund_card"]
    refund = d3.results[-1].commands[0]
    assert dict(refund.input)["result"] == {"charge": "ch_1"}
    assert dict(refund.input)["input"] == {"amount": 30}


def test_two_completed_effects_compensate_newest_first() -> None:
    body = """\
initial: a
states:
  a:
    entry: {effects: [{name: first, compensate: undo_first}]}
    on: {first.done: b}
  b:
    entry: {effects: [{name: second, compensate: undo_second}]}
    on: {second.done: c}
  c:
    on: {BOOM: failed}
  failed: {type: final, status: failed}
"""
    d = drive(body)
    d.send("first.done")
    d.send("second.done")
    result = d.send("BOOM")
    assert [c.name for c in result.commands] == ["undo_second", "undo_first"]
    assert all(c.compensation_of for c in result.commands)


# -- built-in events, seq, duplicates, status -----------------------------------------------


def test_cancel_exits_everything_runs_exit_actions_then_compensations() -> None:
    body = """\
initial: a
states:
  a:
    entry: {effects: [{name: book, compensate: unbook}]}
    exit: {effects: [{name: goodbye, mode: fire_and_forget}]}
    on: {book.done: {assign: {booked: "true"}}}
"""
    d = drive(body)
    d.send("book.done")
    result = d.send("$cancel")
    assert [c.name for c in result.commands] == ["goodbye", "unbook"]
    assert d.snapshot is not None
    assert (d.snapshot.status, d.snapshot.configuration) == ("cancelled", ())


def test_events_after_the_end_are_ignored_but_get_a_seq() -> None:
    d = drive("initial: a\nstates:\n  a: {on: {END: z}}\n  z: {type: final}\n")
    d.send("END")
    late = d.send("END")
    assert late.trace.ignored and late.trace.seq == 3
    assert late.trace.reason == "instance is done"


def test_seq_is_gapless_including_ignored_events_and_duplicates_are_dropped() -> None:
    d = drive("initial: a\nstates:\n  a: {on: {GO: b}}\n  b: {}\n")
    assert d.send("NOPE").trace.seq == 2
    first = d.event("GO", event_id="same")
    assert d.apply(first).trace.seq == 3
    duplicate = d.apply(first)
    assert duplicate.trace.outcome == "duplicate" and duplicate.trace.seq is None
    assert d.snapshot is not None and d.snapshot.seq == 3
    assert d.send("NOPE").trace.seq == 4


def test_event_for_unknown_instance_is_rejected() -> None:
    d = Driver(chart(HEADER + "initial: a\nstates:\n  a: {}\n"))
    result = d.send("GO")
    assert result.trace.outcome == "rejected"
    assert result.snapshot is None
    assert "no such instance" in (result.trace.reason or "")


def test_start_payload_is_merged_over_data() -> None:
    d = drive("data: {a: 1, b: 2}\ninitial: s\nstates:\n  s: {}\n", b=3, c=4)
    assert d.data == {"a": 1, "b": 3, "c": 4}


def test_payload_failing_declared_schema_is_rejected_without_seq() -> None:
    d = drive(
        "events:\n  PAY: {type: object, required: [amount]}\ninitial: a\n"
        "states:\n  a: {on: {PAY: b}}\n  b: {}\n"
    )
    result = d.send("PAY", {"amont": 3})
    assert result.trace.outcome == "rejected"
    assert "amount" in (result.trace.reason or "")
    assert d.snapshot is not None and d.snapshot.seq == 1


def test_cel_runtime_error_fails_instance_and_discards_the_step() -> None:
    d = drive(
        "data: {n: 1}\ninitial: a\nstates:\n  a:\n    on:\n      GO: {target: b, assign: {n: 'data.missing + 1'}}\n  b: {}\n"
    )
    result = d.send("GO")
    assert result.trace.outcome == "failed"
    assert d.snapshot is not None
    assert (d.snapshot.status, d.snapshot.configuration, d.snapshot.data) == (
        "failed",
        ("a",),
        {"n": 1},
    )
    assert "data.missing + 1" in (d.snapshot.reason or "")
    assert d.send("GO").trace.reason == "instance is failed"


def test_data_schema_violation_fails_the_step() -> None:
    d = drive(
        "data: {n: 0}\ndata_schema: {type: object, properties: {n: {type: integer, maximum: 1}}}\n"
        "initial: a\nstates:\n  a: {on: {INC: {assign: {n: 'data.n + 1'}}}}\n"
    )
    d.send("INC")
    assert d.snapshot is not None and d.snapshot.status == "active"
    d.send("INC")
    assert d.snapshot.status == "failed"
    assert d.snapshot.data == {"n": 1}
    assert "data_schema" in (d.snapshot.reason or "")


def test_guard_that_raises_fails_the_instance() -> None:
    registry = GuardRegistry()
    registry.register("boom", lambda data, event: 1 / 0 > 0)
    d = drive("initial: a\nstates:\n  a: {on: {GO: {guard: boom, target: b}}}\n  b: {}\n", registry)
    d.send("GO")
    assert d.snapshot is not None and d.snapshot.status == "failed"
    assert "ZeroDivisionError" in (d.snapshot.reason or "")


def test_step_does_not_mutate_its_input_snapshot() -> None:
    d = drive(TRACKED)
    before: Snapshot | None = d.snapshot
    assert before is not None
    frozen = before.to_dict()
    d.send("NEXT")
    assert before.to_dict() == frozen


# -- memoized plans: only what the configuration alone decides is reused ------------------


def test_a_memoized_chart_still_evaluates_when_conditions_in_the_same_configuration() -> None:
    d = drive("""\
data: {n: 0}
initial: a
states:
  a:
    on:
      GO: [{when: "data.n > 0", target: b}, {assign: {n: "data.n + 1"}}]
  b: {type: final}
""")
    d.send("GO")  # n is 0: the second, targetless transition; the configuration stays {a}
    assert d.config == ("a",)
    d.send("GO")  # same configuration and event, other data: now the first one
    assert d.config == ("b",) and d.snapshot.status == "done"


def test_a_memoized_chart_still_reads_the_history_recorded_last() -> None:
    d = drive(HISTORY)
    d.send("POWER_OFF")
    d.send("RESUME_SHALLOW")  # from {off}: history of player is 'stopped'
    assert d.config == ("player.stopped",)
    d.send("PLAY")
    d.send("POWER_OFF")
    d.send("RESUME_SHALLOW")  # same configuration and transition, other history
    assert d.config == ("player.playing.normal",)
