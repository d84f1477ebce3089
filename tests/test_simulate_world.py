"""``omninode simulate CHART EVENTS --chart OTHER``: several charts in one simulated world
(RSS v1.1 ``invoke``), one clock, child starts/cancels/answers processed FIFO; and the
cross-chart load checks of ``simulate`` and ``validate``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.core.errors import SimulationInputError
from app.core.simulate import MAX_MESSAGES_PER_LINE, Simulator, parse_script
from tests.helpers import chart

CHILD = """\
    rss: 1
    workflow: child
    version: 1
    data: {n: 0}
    events:
      $start: {type: object, required: [n], properties: {n: {type: integer}}}
      FINISH: {}
      BREAK: {}
    initial: working
    states:
      working:
        on:
          FINISH: {target: finished, assign: {n: "data.n + 1"}}
          BREAK: broken
      finished:
        type: final
        output: {result: "data.n * 10"}
      broken:
        type: final
        status: failed
"""

PARENT = """\
    rss: 1
    workflow: parent
    version: 1
    data: {n: 1}
    initial: idle
    states:
      idle:
        on: {GO: waiting}
      waiting:
        invoke:
          - name: job
            workflow: child
            input: {n: "data.n"}
            timeout: 1h
        on:
          job.done: {target: done, assign: {result: "event.payload.result"}}
          job.failed: {target: failed, assign: {error: "event.payload.error"}}
          job.timeout: timed_out
          STOP: idle
      done: {type: final}
      failed: {type: final, status: failed}
      timed_out: {type: final, status: failed}
"""

T0 = '{"type": "$start", "at": "2026-01-01T00:00:00Z"}'
GO = '{"type": "GO"}'
CHILD_ID = "sim-1.job.2"  # "<parent id>.<invoke name>.<the parent's seq that entered>"


def to_child(kind: str) -> str:
    return json.dumps({"type": kind, "workflow": "child", "instance": CHILD_ID})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def simulate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, charts: list[Path], *lines: str
) -> tuple[int, list[dict[str, Any]], str]:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    argv = ["simulate", str(charts[0]), str(events)]
    for other in charts[1:]:
        argv += ["--chart", str(other)]
    code = main(argv)
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def steps(rows: list[dict[str, Any]]) -> list[tuple[str, str, int, str, bool, str]]:
    """(workflow, instance, seq, event, ignored, status) of each row."""
    return [
        (r["workflow"], r["instance"], r["seq"], r["event"], r["ignored"], r["status"])
        for r in rows
    ]


@pytest.fixture
def family(tmp_path: Path) -> list[Path]:
    return [write(tmp_path, "parent.yaml", PARENT), write(tmp_path, "child.yaml", CHILD)]


def test_child_runs_and_its_output_answers_the_parent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, family: list[Path]
) -> None:
    code, rows, err = simulate(capsys, tmp_path, family, T0, GO, to_child("FINISH"))
    assert (code, err) == (0, "")
    assert steps(rows) == [
        ("parent", "sim-1", 1, "$start", False, "active"),
        ("parent", "sim-1", 2, "GO", False, "active"),
        ("child", CHILD_ID, 1, "$start", False, "active"),
        ("child", CHILD_ID, 2, "FINISH", False, "done"),
        ("parent", "sim-1", 3, "job.done", False, "done"),
    ]
    assert rows[2]["data"] == {"n": 1}  # the invoke's input over the child's data
    assert rows[3]["data"] == {"n": 2}
    # The answer carries the final state's output, not the child's data.
    assert rows[4]["data"] == {"n": 1, "result": 20}
    assert rows[4]["configuration"] == ["done"]
    assert all(list(row) == sorted(row) for row in rows)


def test_a_failing_child_answers_failed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, family: list[Path]
) -> None:
    code, rows, _ = simulate(capsys, tmp_path, family, T0, GO, to_child("BREAK"))
    assert code == 0
    assert steps(rows)[3:] == [
        ("child", CHILD_ID, 2, "BREAK", False, "failed"),
        ("parent", "sim-1", 3, "job.failed", False, "failed"),
    ]
    assert rows[-1]["data"] == {"n": 1, "error": "reached final state 'broken' (status failed)"}


def test_leaving_the_invoking_state_cancels_the_child_and_ignores_its_late_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, family: list[Path]
) -> None:
    script = (T0, GO, '{"type": "STOP"}', to_child("FINISH"))
    code, rows, _ = simulate(capsys, tmp_path, family, *script)
    assert code == 0
    assert steps(rows)[3:] == [
        ("parent", "sim-1", 3, "STOP", False, "active"),
        ("child", CHILD_ID, 2, "$cancel", False, "cancelled"),
        # The cancelled child's answer reaches a parent no longer waiting: stale.
        ("parent", "sim-1", 4, "job.failed", True, "active"),
        ("child", CHILD_ID, 3, "FINISH", True, "cancelled"),
    ]
    assert rows[4]["configuration"] == []
    assert rows[5]["configuration"] == ["idle"] and rows[5]["data"] == {"n": 1}


def test_parent_cancel_cascades_to_the_child(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, family: list[Path]
) -> None:
    code, rows, _ = simulate(capsys, tmp_path, family, T0, GO, '{"type": "$cancel"}')
    assert code == 0
    assert steps(rows)[3:] == [
        ("parent", "sim-1", 3, "$cancel", False, "cancelled"),
        ("child", CHILD_ID, 2, "$cancel", False, "cancelled"),
        ("parent", "sim-1", 4, "job.failed", True, "cancelled"),
    ]


def test_invoke_timeout_fires_on_advance_and_cancels_the_child(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, family: list[Path]
) -> None:
    code, rows, _ = simulate(capsys, tmp_path, family, T0, GO, '{"advance": "2h"}')
    assert code == 0
    assert steps(rows)[3:] == [
        ("parent", "sim-1", 3, "job.timeout", False, "failed"),
        ("child", CHILD_ID, 2, "$cancel", False, "cancelled"),
        ("parent", "sim-1", 4, "job.failed", True, "failed"),
    ]
    assert rows[3]["configuration"] == ["timed_out"]


SLOW_CHILD = CHILD.replace(
    "      working:\n",
    "      working:\n        after: [{delay: 30m, target: finished}]\n",
)


def test_child_timers_fire_on_the_same_clock_before_a_later_parent_timer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    charts = [write(tmp_path, "parent.yaml", PARENT), write(tmp_path, "child.yaml", SLOW_CHILD)]
    code, rows, _ = simulate(capsys, tmp_path, charts, T0, GO, '{"advance": "2h"}')
    assert code == 0
    # The child's 30m timer is due before the parent's 1h invoke timeout, which the answer
    # then disarms: no job.timeout row.
    assert steps(rows)[3:] == [
        ("child", CHILD_ID, 2, "$after.working.0", False, "done"),
        ("parent", "sim-1", 3, "job.done", False, "done"),
    ]
    assert rows[-1]["data"] == {"n": 1, "result": 10}


TOP = """\
    rss: 1
    workflow: top
    version: 1
    initial: running
    states:
      running:
        invoke: [{name: mid, workflow: middle}]
"""
MIDDLE = """\
    rss: 1
    workflow: middle
    version: 1
    initial: running
    states:
      running:
        invoke: [{name: leaf, workflow: leaf}]
"""
LEAF = """\
    rss: 1
    workflow: leaf
    version: 1
    initial: waiting
    states:
      waiting: {}
"""


def test_three_level_cancel_cascade_in_fifo_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    charts = [
        write(tmp_path, "top.yaml", TOP),
        write(tmp_path, "middle.yaml", MIDDLE),
        write(tmp_path, "leaf.yaml", LEAF),
    ]
    code, rows, _ = simulate(capsys, tmp_path, charts, T0, '{"type": "$cancel"}')
    assert code == 0
    mid, leaf = "sim-1.mid.1", "sim-1.mid.1.leaf.1"
    assert steps(rows) == [
        ("top", "sim-1", 1, "$start", False, "active"),
        ("middle", mid, 1, "$start", False, "active"),
        ("leaf", leaf, 1, "$start", False, "active"),
        ("top", "sim-1", 2, "$cancel", False, "cancelled"),
        ("middle", mid, 2, "$cancel", False, "cancelled"),
        # FIFO: the middle's step sent the leaf's $cancel, then its answer to the top.
        ("leaf", leaf, 2, "$cancel", False, "cancelled"),
        ("top", "sim-1", 3, "mid.failed", True, "cancelled"),
        ("middle", mid, 3, "leaf.failed", True, "cancelled"),
    ]


FANOUT = """\
    rss: 1
    workflow: fanout
    version: 1
    data: {got: []}
    initial: both
    states:
      both:
        invoke:
          - {name: a, workflow: quick}
          - {name: b, workflow: quick}
        on:
          a.done: {assign: {got: "data.got + ['a']"}}
          b.done: {assign: {got: "data.got + ['b']"}}
"""
QUICK = """\
    rss: 1
    workflow: quick
    version: 1
    initial: go
    states:
      go:
        always: [{target: end}]
      end: {type: final}
"""


def test_messages_are_processed_first_in_first_out_across_instances(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    charts = [write(tmp_path, "fanout.yaml", FANOUT), write(tmp_path, "quick.yaml", QUICK)]
    code, rows, _ = simulate(capsys, tmp_path, charts, T0)
    assert code == 0
    # Both starts were queued by the parent's step, before either child's answer.
    assert steps(rows) == [
        ("fanout", "sim-1", 1, "$start", False, "active"),
        ("quick", "sim-1.a.1", 1, "$start", False, "done"),
        ("quick", "sim-1.b.1", 1, "$start", False, "done"),
        ("fanout", "sim-1", 2, "a.done", False, "active"),
        ("fanout", "sim-1", 3, "b.done", False, "active"),
    ]
    assert rows[-1]["data"] == {"got": ["a", "b"]}


TWICE = """\
    rss: 1
    workflow: twice
    version: 1
    initial: both
    states:
      both:
        invoke:
          - {name: one, workflow: child, id: "'fixed'", input: {n: 1}}
          - {name: two, workflow: child, id: "'fixed'", input: {n: 2}}
        on:
          two.failed: {assign: {error: "event.payload.error", status: "event.payload.status"}}
"""


def test_a_second_start_of_an_existing_child_answers_failed_rejected(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    charts = [write(tmp_path, "twice.yaml", TWICE), write(tmp_path, "child.yaml", CHILD)]
    code, rows, _ = simulate(capsys, tmp_path, charts, T0)
    assert code == 0
    assert steps(rows) == [
        ("twice", "sim-1", 1, "$start", False, "active"),
        ("child", "fixed", 1, "$start", False, "active"),
        ("child", "fixed", 2, "$start", True, "active"),
        ("twice", "sim-1", 2, "two.failed", False, "active"),
    ]
    assert rows[2]["data"] == {"n": 1}  # the first start's input stands
    assert rows[-1]["data"] == {
        "error": "an instance with that id already exists",
        "status": "rejected",
    }


BAD_INPUT = """\
    rss: 1
    workflow: bad
    version: 1
    initial: asking
    states:
      asking:
        invoke: [{name: job, workflow: child, input: {n: "'text'"}}]
        on:
          job.failed: {target: refused, assign: {status: "event.payload.status"}}
      refused: {type: final, status: failed}
"""


def test_a_child_start_failing_its_schema_is_a_note_and_answers_failed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    charts = [write(tmp_path, "bad.yaml", BAD_INPUT), write(tmp_path, "child.yaml", CHILD)]
    code, rows, err = simulate(capsys, tmp_path, charts, T0)
    assert code == 0
    assert steps(rows) == [
        ("bad", "sim-1", 1, "$start", False, "active"),
        ("bad", "sim-1", 2, "job.failed", False, "failed"),
    ]
    assert rows[-1]["data"] == {"status": "rejected"}
    events = tmp_path / "events.jsonl"
    assert err.startswith(f"{events}:1: child:sim-1.job.1 $start rejected: ")
    assert "n" in err and len(err.splitlines()) == 1


def test_rows_carry_workflow_and_instance_only_in_a_world_of_several(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lone = write(tmp_path, "leaf.yaml", LEAF)
    code, rows, _ = simulate(capsys, tmp_path, [lone], T0, '{"type": "POKE"}')
    assert code == 0
    assert [sorted(r) for r in rows] == [
        ["computes", "configuration", "data", "effects", "event", "ignored", "seq", "status"]
    ] * 2
    other = write(tmp_path, "child.yaml", CHILD)
    code, rows, _ = simulate(capsys, tmp_path, [lone, other], T0)
    assert code == 0
    assert [(r["workflow"], r["instance"]) for r in rows] == [("leaf", "sim-1")]


LOOP = """\
    rss: 1
    workflow: loop
    version: 1
    data: {n: 0}
    initial: run
    states:
      run:
        invoke:
          - {name: again, workflow: loop, id: "'c' + string(data.n)", input: {n: "data.n + 1"}}
"""


def test_a_self_invoking_chart_alone_labels_rows_and_an_invoke_loop_stops_at_the_limit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    loop = write(tmp_path, "loop.yaml", LOOP)
    code, rows, err = simulate(capsys, tmp_path, [loop], T0)
    assert code == 2
    assert (rows[0]["workflow"], rows[0]["instance"], rows[0]["data"]) == (
        "loop",
        "sim-1",
        {"n": 0},
    )
    assert (rows[1]["instance"], rows[1]["data"]) == ("c0", {"n": 1})
    assert len(rows) == MAX_MESSAGES_PER_LINE + 1
    assert err.strip() == (
        f"{tmp_path / 'events.jsonl'}:1: more than {MAX_MESSAGES_PER_LINE} messages between "
        "instances (child starts, cancels, answers) for one line: an invoke loop?"
    )


def test_the_message_limit_is_a_simulation_input_error_through_the_api() -> None:
    simulator = Simulator(chart(LOOP), file="s.jsonl")
    with pytest.raises(SimulationInputError) as caught:
        list(simulator.run(parse_script(T0, "s.jsonl")))
    assert caught.value.diagnostic.line == 1
    assert len(simulator.snapshots) == MAX_MESSAGES_PER_LINE + 1


def test_a_pinned_child_version_and_the_scripts_start_stay_on_their_versions() -> None:
    child_v2 = chart(CHILD.replace("version: 1", "version: 2"), file="child2.yaml")
    pinned = chart(PARENT.replace("workflow: child", "workflow: child\n            version: 1"))
    simulator = Simulator(pinned, others=[chart(CHILD, file="child1.yaml"), child_v2])
    list(simulator.run(parse_script(f"{T0}\n{GO}\n", "s.jsonl")))
    assert simulator.snapshots[f"child:{CHILD_ID}"].version == 1
    # CHART is what the script simulates, though a later version of it is loaded beside.
    older = Simulator(chart(CHILD, file="child1.yaml"), others=[child_v2])
    list(older.run(parse_script('{"type": "$start", "payload": {"n": 3}}', "s.jsonl")))
    assert older.snapshot is not None and older.snapshot.version == 1


def test_simulate_without_the_invoked_chart_exits_2_with_file_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    parent = write(tmp_path, "parent.yaml", PARENT)
    code, rows, err = simulate(capsys, tmp_path, [parent], T0)
    assert (code, rows) == (2, [])
    assert err.strip() == (
        f"{parent}:11: state 'waiting' invokes workflow 'child', which is not among the "
        "charts loaded together (loaded: parent)"
    )


def test_validate_reports_an_unknown_invoked_workflow_and_a_missing_pinned_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    write(tmp_path / "a", "parent.yaml", PARENT)
    code = main(["validate", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        f"{tmp_path / 'a' / 'parent.yaml'}:11: state 'waiting' invokes workflow 'child', "
        "which is not among the charts loaded together (loaded: parent)"
    )
    (tmp_path / "b").mkdir()
    write(tmp_path / "b", "child.yaml", CHILD)
    pinned = PARENT.replace("workflow: child", "workflow: child\n            version: 3")
    write(tmp_path / "b", "parent.yaml", pinned)
    code = main(["validate", str(tmp_path / "b")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "ok  " in out and "child.yaml" in out and "parent.yaml" not in out
    assert err.strip() == (
        f"{tmp_path / 'b' / 'parent.yaml'}:11: state 'waiting' invokes 'child' version 3, "
        "which is not loaded (loaded versions: 1)"
    )
