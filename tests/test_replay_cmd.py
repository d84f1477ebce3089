"""``omninode replay --journal``, offline, end to end: the lines ``omninode history --json``
prints replay through the charts on ``OMNINODE_RSS_PATH``; a changed chart is exit 1 with
the divergence; a malformed line is ``file:line: reason`` and exit 2; ``--json``'s shape."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest

from app.cli import runtime
from app.cli.main import main
from app.cli.replay_cmd import parse_row, read_journal_file
from app.infra.http_views import journal_row
from app.spi.envelopes import JournalRecord
from app.spi.limits import DEFAULT_LIMITS
from tests.golden.generate import GOLDEN, RSS

HAPPY = GOLDEN / "order_fulfillment" / "happy.jsonl"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def replay(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``omninode replay ARGS`` with the example charts (or ``rss=``) and their handlers."""

    def run(*argv: str, rss: Path = RSS) -> tuple[int, str, str]:
        monkeypatch.setenv("OMNINODE_RSS_PATH", str(rss))
        monkeypatch.setenv("OMNINODE_HANDLERS", str(RSS / "handlers.py"))
        code = main(["replay", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def records(path: Path = HAPPY) -> list[JournalRecord]:
    return read_journal_file(str(path), DEFAULT_LIMITS)


def write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def test_a_golden_journal_replays_identically(replay: Run) -> None:
    code, out, err = replay("--journal", str(HAPPY))
    assert code == 0, err
    assert out == "2 instances replayed: 2 identical, 0 diverging\n"
    assert "omninode: handlers: " in err  # which code replays is said, as a worker says it


def test_history_json_lines_replay(
    replay: Run,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`omninode history W I --json > j.jsonl; omninode replay --journal j.jsonl`, with
    the journal topic's read stood in for (no broker here)."""
    journal = records()

    async def read_history(
        settings: object, workflow: str, instance_id: str
    ) -> list[JournalRecord]:
        return [r for r in journal if r.key == f"{workflow}:{instance_id}"]

    monkeypatch.setattr(runtime, "read_history", read_history)
    assert main(["history", "order_fulfillment", "sim-1", "--json"]) == 0
    exported = tmp_path / "j.jsonl"
    exported.write_text(capsys.readouterr().out, encoding="utf-8")
    code, out, err = replay("--journal", str(exported))
    assert code == 0, err
    assert out == "1 instance replayed: 1 identical, 0 diverging\n"


def test_several_workflows_in_one_file(replay: Run, tmp_path: Path) -> None:
    """One file, as a whole journal topic holds them: each instance replays on its own."""
    names = ("document_approval/approved", "loan_application/hold_resume", "shipment/standalone")
    lines = [line for name in names for line in (GOLDEN / f"{name}.jsonl").read_text().splitlines()]
    lines += HAPPY.read_text(encoding="utf-8").splitlines()
    code, out, err = replay("--journal", write(tmp_path / "all.jsonl", lines))
    assert code == 0, err
    assert out == "5 instances replayed: 5 identical, 0 diverging\n"


def test_redelivered_records_count_once_and_file_order_does_not_matter(
    replay: Run, tmp_path: Path
) -> None:
    lines = HAPPY.read_text(encoding="utf-8").splitlines()
    shuffled = list(reversed(lines)) + lines[:3]  # every seq again, some twice
    code, out, err = replay("--journal", write(tmp_path / "j.jsonl", shuffled), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["instance"], r["records"]) for r in rows] == [
        ("order_fulfillment:sim-1", 9),
        ("shipment:sim-1.ship.7", 3),
    ]


def test_a_changed_chart_is_exit_1_with_the_divergence(replay: Run, tmp_path: Path) -> None:
    charts = tmp_path / "rss"
    charts.mkdir()
    shutil.copy(RSS / "shipment.yaml", charts)
    text = (RSS / "order_fulfillment.yaml").read_text(encoding="utf-8")
    edited = text.replace(">= data.total", "> data.total")
    (charts / "order_fulfillment.yaml").write_text(edited, encoding="utf-8")
    code, out, err = replay("--journal", str(HAPPY), rss=charts)
    assert code == 1, err
    assert out.splitlines() == [
        "order_fulfillment:sim-1: seq 3 (PAY): configuration differs: journal has ['charging'], "
        "replay gives ['awaiting_payment']",
        "2 instances replayed: 1 identical, 1 diverging",
    ]


def test_json_has_one_object_per_instance(replay: Run, tmp_path: Path) -> None:
    charts = tmp_path / "rss"
    charts.mkdir()
    shutil.copy(RSS / "shipment.yaml", charts)
    text = (RSS / "order_fulfillment.yaml").read_text(encoding="utf-8")
    (charts / "order_fulfillment.yaml").write_text(text.replace("timeout: 2h", "timeout: 3h"))
    journal = GOLDEN / "order_fulfillment" / "shipment_times_out.jsonl"
    code, out, err = replay("--journal", str(journal), "--json", rss=charts)
    assert code == 1, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [set(row) for row in rows] == [{"instance", "records", "identical", "divergence"}] * 2
    parent, child = rows
    assert (child["identical"], child["divergence"]) == (True, None)
    assert parent["identical"] is False
    assert parent["divergence"] == {
        "seq": 7,
        "event_type": "ship.timeout",
        "what": "timer",
        "recorded": "a firing at 2026-01-01T11:10:00Z",
        "replayed": "the timer armed for 2026-01-01T12:10:00Z",
    }
    assert err.splitlines()[-1] == "2 instances replayed: 1 identical, 1 diverging"


def test_workflow_and_id_choose_the_instances(replay: Run) -> None:
    code, out, _ = replay("shipment", "--journal", str(HAPPY), "--json")
    assert code == 0
    assert [json.loads(line)["instance"] for line in out.splitlines()] == ["shipment:sim-1.ship.7"]
    code, out, _ = replay("order_fulfillment", "sim-1", "--journal", str(HAPPY))
    assert (code, out) == (0, "1 instance replayed: 1 identical, 0 diverging\n")
    code, out, err = replay("order_fulfillment", "nope", "--journal", str(HAPPY))
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == "omninode: no journal records for order_fulfillment:nope"


def test_a_gap_in_a_journal_diverges_on_seq(replay: Run, tmp_path: Path) -> None:
    lines = [line for line in HAPPY.read_text().splitlines() if '"seq": 2,' not in line]
    code, out, _ = replay("order_fulfillment", "--journal", write(tmp_path / "gap.jsonl", lines))
    assert code == 1
    assert out.splitlines()[0].startswith(
        "order_fulfillment:sim-1: seq 3 (PAY): seq differs: journal has 3, replay gives 2"
    )


def test_an_empty_journal_replays_nothing(replay: Run, tmp_path: Path) -> None:
    code, out, _ = replay("--journal", write(tmp_path / "empty.jsonl", ["", "  "]))
    assert (code, out) == (0, "0 instances replayed: 0 identical, 0 diverging\n")


# -- bad input: exit 2 -----------------------------------------------------------------------

GOOD = HAPPY.read_text(encoding="utf-8").splitlines()[0]


def edited(**changes: object) -> str:
    row = json.loads(GOOD)
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = row
        for part in path:
            target = target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return json.dumps(row)


MALFORMED = [
    ("not JSON", "{'seq': 1}", "not JSON: Expecting property name enclosed in double quotes"),
    ("NaN", GOOD.replace('"total": 40', '"total": NaN'), "not JSON: NaN is not a JSON number"),
    ("not an object", "[1, 2]", "a journal row is a JSON object"),
    ("a missing key", edited(workflow_version=KeyError), "the row has no 'workflow_version'"),
    ("an unknown key", edited(effects=[]), "the row has unknown key(s) 'effects'"),
    ("seq not a number", edited(seq="1"), "'seq' is \"1\", not an integer >= 1"),
    ("seq zero", edited(seq=0), "'seq' is 0, not an integer >= 1"),
    ("seq a bool", edited(seq=True), "'seq' is true, not an integer >= 1"),
    ("a status", edited(status="paused"), "'status' is \"paused\", not one of active, done"),
    ("ignored", edited(ignored="no"), "'ignored' is \"no\", not true or false"),
    ("configuration", edited(configuration="a"), "'configuration' is \"a\", not a list of"),
    ("a simulate row", edited(event="PAY"), "'event' is \"PAY\", not an object (Event.to_dict)"),
    ("an event key", edited(event__type=KeyError), "'event' has no 'type'"),
    ("an event text", edited(event__instance_id=7), "'event.instance_id' is 7, not a string"),
    ("a payload", edited(event__payload=[1]), "'event.payload' is [1], not a JSON object"),
    ("a version", edited(event__version=0), "'event.version' is 0, not an integer >= 1"),
    ("a parent", edited(event__parent={"workflow": "w"}), "'event.parent' has no 'dispatch_id'"),
    ("children", edited(children=[{"name": "ship"}]), "'children[0]' has no 'dispatch_id'"),
    ("outputs", edited(outputs=3), "'outputs' is 3, not a string"),
    (
        "a deep payload",
        edited(event__payload={"a": json.loads("[" * 40 + "]" * 40)}),
        "'event.payload': nested deeper than 32 levels",
    ),
]


@pytest.mark.parametrize(
    ("line", "reason"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_a_malformed_line_is_file_line_and_exit_2(
    replay: Run, tmp_path: Path, line: str, reason: str
) -> None:
    path = write(tmp_path / "j.jsonl", [GOOD, "", line, GOOD])
    code, out, err = replay("--journal", path)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(f"{path}:3: {reason}"), err


def test_lines_are_held_to_the_limits(
    replay: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNINODE_MAX_EVENT_BYTES", "2000")
    monkeypatch.setenv("OMNINODE_MAX_SNAPSHOT_BYTES", "2000")
    big_event = edited(event__payload={"note": "x" * 2500})
    path = write(tmp_path / "big.jsonl", [GOOD, big_event])
    code, _, err = replay("--journal", path)
    assert code == 2
    assert err.splitlines()[-1].startswith(f"{path}:2: the event is ")
    assert "over the limit of 2000 (OMNINODE_MAX_EVENT_BYTES)" in err
    path = write(tmp_path / "long.jsonl", [GOOD, edited(reason="y" * 5000)])
    code, _, err = replay("--journal", path)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"{path}:2: the line is over 4000 bytes, the limit of a journal row "
        "(OMNINODE_MAX_EVENT_BYTES + OMNINODE_MAX_SNAPSHOT_BYTES)"
    )


def test_not_utf8_and_unreadable_files(replay: Run, tmp_path: Path) -> None:
    binary = tmp_path / "j.jsonl"
    binary.write_bytes(GOOD.encode() + b"\n\xff\xfe\n")
    code, _, err = replay("--journal", str(binary))
    assert code == 2
    assert err.splitlines()[-1].startswith(f"{binary}:2: not UTF-8 text")
    code, _, err = replay("--journal", str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert err.splitlines()[-1].startswith(f"omninode: cannot read {tmp_path / 'missing.jsonl'}")


def test_charts_that_fail_to_load_are_file_line_and_exit_2(replay: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {on: {GO: b}}\n")
    code, out, err = replay("--journal", str(HAPPY), rss=tmp_path)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == f"{bad}:6: unknown target 'b'"


# -- the row and its parser ------------------------------------------------------------------


def test_a_history_row_has_every_field_and_parses_back() -> None:
    every = {f.name for f in fields(JournalRecord)}
    for path in sorted(GOLDEN.glob("*/*.jsonl")):
        for record in records(path):
            row = runtime._history_row(record)
            assert set(row) == every and row == journal_row(record)
            text = json.dumps(row, sort_keys=True)
            assert parse_row(text, "j.jsonl", 1, DEFAULT_LIMITS) == record


def test_rows_of_older_histories_parse_with_nothing_to_compare_on_outputs() -> None:
    row = json.loads(GOOD)
    for key in ("children", "outputs", "raised", "reason"):
        del row[key]
    record = parse_row(json.dumps(row), "j.jsonl", 1, DEFAULT_LIMITS)
    assert (record.outputs, record.children, record.raised, record.reason) == (None, None, (), None)
