"""Reducer throughput: OmniNode's `step` against sismic and python-statemachine.

All three run an equivalent hierarchical + parallel chart (an idle state, and an `active`
parallel state with two compound regions that toggle on TICK and TOCK; STOP/START leave and
re-enter it) over the same event cycle, in the same process and run. Prints each figure,
the ratios, and as its last line:

    reducer_steps_per_s=N vs_sismic=X vs_python_statemachine=Y
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from sismic.interpreter import Interpreter
from sismic.io import import_from_yaml
from statemachine import State, StateChart

from app.core.guards import GuardRegistry
from app.core.interpreter import step
from app.core.loader import load_chart
from app.spi.envelopes import Event

# Starting from idle: enter the parallel state, toggle both regions twice, leave it.
CYCLE = ["START", "TICK", "TOCK", "TICK", "TOCK", "STOP"]

RSS = """
rss: 1
workflow: bench
version: 1
initial: idle
states:
  idle:
    on: {START: active}
  active:
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
          b2: {on: {TOCK: b1}}
"""

SISMIC = """
statechart:
  name: bench
  root state:
    name: root
    initial: idle
    states:
      - name: idle
        transitions: [{target: active, event: START}]
      - name: active
        transitions: [{target: idle, event: STOP}]
        parallel states:
          - name: a
            initial: a1
            states:
              - name: a1
                transitions: [{target: a2, event: TICK}]
              - name: a2
                transitions: [{target: a1, event: TICK}]
          - name: b
            initial: b1
            states:
              - name: b1
                transitions: [{target: b2, event: TOCK}]
              - name: b2
                transitions: [{target: b1, event: TOCK}]
"""


def omninode_runner(steps: int) -> Callable[[], None]:
    chart = load_chart(RSS, "bench.yaml", GuardRegistry())
    start = Event("bench", "i", "$start", "start", "2026-01-01T00:00:00Z")
    first = step(chart, None, start).snapshot
    events = [
        Event("bench", "i", CYCLE[n % len(CYCLE)], f"e{n}", "2026-01-01T00:00:00Z")
        for n in range(steps)
    ]

    def run() -> None:
        snapshot = first
        for event in events:
            snapshot = step(chart, snapshot, event).snapshot
        assert snapshot is not None and snapshot.seq == steps + 1

    return run


def sismic_runner(steps: int) -> Callable[[], None]:
    statechart = import_from_yaml(SISMIC)

    def run() -> None:
        interpreter = Interpreter(statechart)
        interpreter.execute_once()
        for n in range(steps):
            interpreter.queue(CYCLE[n % len(CYCLE)])
            interpreter.execute_once()

    return run


def python_statemachine_runner(steps: int) -> Callable[[], None]:
    class Bench(StateChart):  # type: ignore[misc]
        idle = State(initial=True)

        class active(State.Parallel):  # type: ignore[misc]
            class a(State.Compound):  # type: ignore[misc]
                a1 = State(initial=True)
                a2 = State()
                TICK = a1.to(a2) | a2.to(a1)

            class b(State.Compound):  # type: ignore[misc]
                b1 = State(initial=True)
                b2 = State()
                TOCK = b1.to(b2) | b2.to(b1)

        START = idle.to(active)
        STOP = active.to(idle)

    def run() -> None:
        machine = Bench()
        for n in range(steps):
            machine.send(CYCLE[n % len(CYCLE)])

    return run


def measure(run: Callable[[], None], steps: int, repeats: int) -> float:
    """Best steps/s over ``repeats`` runs (best-of filters scheduler noise)."""
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return steps / best


def compare(steps: int, peer_steps: int, repeats: int) -> dict[str, float]:
    """steps/s of ours and of both peers on the same chart, in this process."""
    ours = measure(omninode_runner(steps), steps, repeats)
    sismic = measure(sismic_runner(peer_steps), peer_steps, repeats)
    psm = measure(python_statemachine_runner(peer_steps), peer_steps, repeats)
    return {
        "reducer_steps_per_s": ours,
        "sismic_steps_per_s": sismic,
        "python_statemachine_steps_per_s": psm,
        "reducer_vs_sismic": ours / sismic,
        "reducer_vs_python_statemachine": ours / psm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="events per run (ours)")
    parser.add_argument("--peer-steps", type=int, default=5_000, help="events per run (peers)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures = compare(args.steps, args.peer_steps, args.repeats)
    ours = figures["reducer_steps_per_s"]
    sismic = figures["sismic_steps_per_s"]
    psm = figures["python_statemachine_steps_per_s"]
    print(f"{'engine':<22}{'steps/s':>12}{'ours / it':>12}")
    for name, rate in (("omninode step", ours), ("sismic", sismic), ("python-statemachine", psm)):
        print(f"{name:<22}{rate:>12,.0f}{ours / rate:>12.2f}")
    print(
        f"reducer_steps_per_s={ours:.0f} vs_sismic={ours / sismic:.2f} "
        f"vs_python_statemachine={ours / psm:.2f}"
    )


if __name__ == "__main__":
    main()
