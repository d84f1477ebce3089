"""The omninode CLI: validate, simulate (golden journals of the examples) and diagram."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted(
    p
    for p in (ROOT / "tests" / "scenarios").glob("*/*.jsonl")
    if not p.name.endswith(".expected.jsonl")
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _invoked(state: object) -> set[str]:
    """Workflow types a state (raw YAML) or any of its descendants invokes."""
    if not isinstance(state, dict):
        return set()
    found = {str(spec["workflow"]) for spec in state.get("invoke") or ()}
    for child in (state.get("states") or {}).values():
        found |= _invoked(child)
    return found


def chart_args(workflow: str) -> list[str]:
    """``rss/<workflow>.yaml`` and a ``--chart`` for every chart it invokes, directly or
    through its children (each workflow type lives in ``rss/<type>.yaml``)."""
    first = ROOT / "rss" / f"{workflow}.yaml"
    args, seen, todo = [str(first)], {workflow}, [first]
    while todo:
        raw = yaml.safe_load(todo.pop().read_text(encoding="utf-8"))
        for other in sorted(_invoked({"states": raw["states"]}) - seen):
            seen.add(other)
            todo.append(ROOT / "rss" / f"{other}.yaml")
            args += ["--chart", str(todo[-1])]
    return args


def simulate(capsys: pytest.CaptureFixture[str], scenario: Path) -> tuple[int, str, str]:
    """Simulate a scenario of ``tests/scenarios/<workflow>/`` with the charts it needs."""
    return run(capsys, "simulate", *chart_args(scenario.parent.name), str(scenario))


def simulate_rows(capsys: pytest.CaptureFixture[str], scenario: Path) -> list[dict]:
    code, out, err = simulate(capsys, scenario)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_validate_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(ROOT / "rss"))
    assert code == 0, err
    assert out.count("ok  ") == 4


def test_validate_reports_file_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {on: {GO: b}}\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2
    assert err.strip() == f"{bad}:6: unknown target 'b'"


def test_validate_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml:1: cannot read" in err


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_simulate_matches_golden_journal(
    capsys: pytest.CaptureFixture[str], scenario: Path
) -> None:
    """Replaying each example's script must reproduce its golden output exactly."""
    code, out, err = simulate(capsys, scenario)
    assert code == 0, err
    assert out == scenario.with_suffix(".expected.jsonl").read_text()
    # A chart that invokes others simulates a world of instances: rows name theirs.
    world = {"workflow", "instance"} if len(chart_args(scenario.parent.name)) > 1 else set()
    for line in out.splitlines():
        row = json.loads(line)
        assert list(row) == sorted(row)
        assert set(row) == {
            "seq",
            "event",
            "ignored",
            "status",
            "configuration",
            "data",
            "effects",
            "computes",
            *world,
        }


def test_order_saga_compensates_in_reverse_order(capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate_rows(capsys, ROOT / "tests/scenarios/order_fulfillment/saga_cancel.jsonl")
    last = rows[-1]
    assert (last["status"], last["configuration"]) == ("failed", ["cancelled_after_payment"])
    assert last["effects"] == [
        {"name": "release_stock", "mode": "fire_and_forget"},
        {"name": "refund_card", "mode": "fire_and_forget"},
    ]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]


def test_approval_reminders_then_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate_rows(capsys, ROOT / "tests/scenarios/document_approval/expired.jsonl")
    reminders = [r for r in rows if r["event"] == "$after.review.pending.0"]
    assert [r["ignored"] for r in reminders] == [False, False, False, True]
    assert rows[-2]["event"] == "$after.review.0" and rows[-2]["status"] == "failed"
    assert rows[-1]["ignored"] is True


def test_loan_deep_history_resumes_manual_review(capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate_rows(capsys, ROOT / "tests/scenarios/loan_application/hold_resume.jsonl")
    by_event = {r["event"]: r for r in rows}
    assert by_event["HOLD"]["configuration"] == ["on_hold"]
    assert by_event["RESUME"]["configuration"] == ["assessment.manual_review"]
    assert rows[-1]["status"] == "done"


def test_simulate_rejects_invalid_chart_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {typo: 1}\n")
    events = tmp_path / "e.jsonl"
    events.write_text('{"type": "$start"}\n')
    code, out, err = run(capsys, "simulate", str(bad), str(events))
    assert (code, out) == (2, "")
    assert err.startswith(f"{bad}:6: states.a: unknown key 'typo'")


def test_simulate_reports_malformed_event_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"type": "$start"}\n{"type": "PAY", "payload": [1]}\n')
    code, _, err = run(capsys, "simulate", *chart_args("order_fulfillment"), str(events))
    assert code == 2
    assert err.strip() == f"{events}:2: 'payload' must be a JSON object"


def test_simulate_notes_rejected_events_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"type": "PAY", "payload": {"amount": 1}}\n{"type": "$start", "payload": {"order_id": "o", "total": 1}}\n'
    )
    code, out, err = run(capsys, "simulate", *chart_args("order_fulfillment"), str(events))
    assert code == 0
    assert len(out.splitlines()) == 1
    assert f"{events}:1: order_fulfillment:sim-1 PAY rejected: no such instance" in err


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_diagram_draws_nested_clusters_and_labels(
    capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, _ = run(capsys, "diagram", str(ROOT / "rss/order_fulfillment.yaml"), "--format", fmt)
    assert code == 0
    if fmt == "mermaid":
        assert out.startswith("%% order_fulfillment v2")
        assert 'state "fulfilment (parallel)" as fulfilment {' in out
        assert "\n        --\n" in out  # region separator
        assert "awaiting_payment --> charging : PAY [event.payload.amount >= data.total]" in out
        assert (
            "fulfilment__invoicing__pricing --> fulfilment__invoicing__invoiced : price_invoice.done / send_invoice (ff)"
            in out
        )
    else:
        assert out.startswith('digraph "order_fulfillment" {')
        assert 'subgraph "cluster_fulfilment" {' in out
        assert 'subgraph "cluster_fulfilment.packing" {' in out
        assert (
            '"charging" -> "fulfilment.__anchor" [label="charge_card.done", lhead="cluster_fulfilment"];'
            in out
        )


def test_validate_refuses_one_version_in_two_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = "rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {}\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    code, out, err = run(capsys, "validate", str(tmp_path))
    assert code == 2
    assert out.count("ok  ") == 1
    assert err.strip() == (
        f"{tmp_path / 'b.yaml'}:1: workflow 'w' version 1 is also defined in "
        f"{tmp_path / 'a.yaml'}; bump 'version' when a chart changes"
    )
