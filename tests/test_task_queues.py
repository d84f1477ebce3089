"""Task queues and dispatch deadlines in the core: an effect or compute names its queue,
commands carry it, a compensation travels on its effect's queue, and every awaited
dispatch has a deadline timer so that a command nobody serves still answers ``.timeout``."""

from __future__ import annotations

import pytest

from app.core.errors import ChartError
from app.core.queues import CommandRoute, command_queues, command_routes
from app.spi.envelopes import DEADLINE_GRACE_MS, RetryPolicy, dispatch_deadline_ms
from tests.helpers import Driver, chart

QUEUED = """\
rss: 1
workflow: w
version: 1
initial: a
states:
  a:
    entry:
      effects:
        - {name: charge, queue: payments, compensate: refund,
           retry: {max_attempts: 2, backoff: fixed, initial: 1s}, timeout: 10s}
      computes: [{name: price}]
    on:
      charge.done: b
      charge.timeout: timed_out
  b:
    on:
      CANCEL_ALL: failed
  timed_out: {type: final, status: failed}
  failed: {type: final, status: failed}
"""


def started() -> Driver:
    driver = Driver(chart(QUEUED))
    driver.send("$start")
    return driver


def test_commands_carry_their_queue_and_default_to_default() -> None:
    result = started().results[-1]
    assert [(c.name, c.queue) for c in result.commands] == [
        ("charge", "payments"),
        ("price", "default"),
    ]


def test_a_compensation_travels_on_the_queue_of_the_effect_it_undoes() -> None:
    driver = started()
    charge = driver.results[-1].commands[0]
    driver.send("charge.done", {"id": "c-1"}, dispatch_id=charge.command_id)
    result = driver.send("CANCEL_ALL")
    assert [(c.name, c.queue, c.mode) for c in result.commands] == [
        ("refund", "payments", "fire_and_forget")
    ]


def test_routes_name_every_queue_kind_and_handler_with_compensations() -> None:
    routes = command_routes([chart(QUEUED)])
    assert sorted(routes) == [
        CommandRoute("default", "compute", "price"),
        CommandRoute("payments", "effect", "charge"),
        CommandRoute("payments", "effect", "refund"),
    ]
    assert command_queues([chart(QUEUED)]) == ("default", "payments")
    assert command_queues([]) == ("default",)


@pytest.mark.parametrize("queue", ["Payments", "pay.ments", "-x", "a" * 49, ""])
def test_a_queue_name_that_cannot_be_part_of_a_topic_name_is_a_load_error(queue: str) -> None:
    text = QUEUED.replace("queue: payments", f"queue: '{queue}'")
    with pytest.raises(ChartError) as error:
        chart(text, file="q.yaml")
    assert str(error.value).startswith("q.yaml:9:"), str(error.value)


def test_the_deadline_is_twice_the_retry_budget_and_at_least_a_minute_after_it() -> None:
    policy = RetryPolicy(max_attempts=2, backoff="fixed", initial_ms=1_000)
    assert policy.budget_ms(10_000) == 10_000 + 11_000
    assert dispatch_deadline_ms(policy, 10_000) == 21_000 + DEADLINE_GRACE_MS
    long = RetryPolicy(max_attempts=3, backoff="exponential", initial_ms=5_000, max_ms=60_000)
    assert long.budget_ms(3_600_000) == 3 * 3_600_000 + 5_000 + 10_000
    assert dispatch_deadline_ms(long, 3_600_000) == 2 * long.budget_ms(3_600_000)


def test_every_awaited_dispatch_arms_a_deadline_timer_for_its_timeout() -> None:
    driver = started()
    charge, price = driver.results[-1].commands
    assert driver.snapshot is not None
    timers = {t.dispatch_id: t for t in driver.snapshot.timers}
    assert set(timers) == {charge.command_id, price.command_id}
    assert timers[charge.command_id].event == "charge.timeout"
    assert timers[charge.command_id].deadline == "2026-01-01T00:01:21Z"  # 21 s + 60 s
    assert timers[charge.command_id].id == f"{charge.command_id}:deadline"
    assert timers[price.command_id].deadline == "2026-01-01T00:03:06Z"  # 3x30s+1s+2s, twice


def test_a_command_nobody_answers_times_out_at_its_deadline() -> None:
    driver = started()
    result = driver.fire("a", -1)  # the first deadline: charge's
    assert result.trace.ignored is False
    assert driver.config == ("timed_out",)
    assert driver.snapshot is not None and driver.snapshot.status == "failed"


def test_an_answer_disarms_the_deadline_and_a_late_worker_answer_is_stale() -> None:
    driver = started()
    charge, price = driver.results[-1].commands
    driver.send("charge.done", {}, dispatch_id=charge.command_id)
    assert driver.snapshot is not None
    assert all(t.dispatch_id != charge.command_id for t in driver.snapshot.timers)
    # price's deadline is gone with state a (exited); its late answer changes nothing
    assert driver.snapshot.timers == ()
    late = driver.send("price.done", {}, dispatch_id=price.command_id)
    assert late.trace.ignored is True


def test_an_answer_after_the_deadline_fired_is_ignored_as_stale() -> None:
    driver = started()
    charge = driver.results[-1].commands[0]
    driver.fire("a", -1)
    late = driver.send("charge.done", {}, dispatch_id=charge.command_id)
    assert late.trace.ignored is True
    assert driver.config == ("timed_out",)


def test_fire_and_forget_dispatches_arm_no_deadline() -> None:
    text = QUEUED.replace(
        "computes: [{name: price}]", "computes: [{name: price, mode: fire_and_forget}]"
    )
    driver = Driver(chart(text))
    driver.send("$start")
    assert driver.snapshot is not None
    assert [t.event for t in driver.snapshot.timers] == ["charge.timeout"]
