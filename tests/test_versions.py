"""Versions side by side (RSS v1.1): several versions of one workflow loaded together; new
instances start on the latest or on the version their ``$start`` pins (``Event.version``);
an instance stays on its version; ``omninode validate`` and ``omninode simulate`` over a
folder or a world holding two versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from app.core.router import ChartRegistry
from app.core.snapshot import Snapshot
from app.infra.chart_files import chart_files, load_charts
from app.spi.envelopes import Event
from tests.helpers import T0, chart

V1 = """\
rss: 1
workflow: w
version: 1
initial: a
states:
  a: {on: {GO: one}}
  one: {on: {BACK: a}}
"""
V2 = """\
rss: 1
workflow: w
version: 2
initial: a
states:
  a: {on: {GO: two}}
  two: {on: {BACK: a}}
migrate:
  - from: 1
    states: {one: two}
"""
V3 = (
    V2.replace("version: 2", "version: 3").replace("from: 1", "from: 2").replace("{one: two}", "{}")
)


def event(type_: str, event_id: str, version: int | None = None, instance: str = "i-1") -> Event:
    return Event("w", instance, type_, event_id, T0, version=version)


def registry(*texts: str) -> ChartRegistry:
    return ChartRegistry([chart(text, file=f"v{n}.yaml") for n, text in enumerate(texts, 1)])


def fold(charts: ChartRegistry, events: list[Event]) -> Snapshot:
    snapshot = None
    for item in events:
        result = charts.route(snapshot, item)
        assert result.trace.outcome == "applied", result.trace
        snapshot = result.snapshot
    assert snapshot is not None
    return snapshot


def test_a_new_instance_starts_on_the_latest_loaded_version() -> None:
    snapshot = fold(registry(V1, V2), [event("$start", "e1"), event("GO", "e2")])
    assert (snapshot.version, snapshot.configuration) == (2, ("two",))


def test_a_start_pinning_an_older_version_runs_that_version() -> None:
    snapshot = fold(registry(V1, V2), [event("$start", "e1", version=1), event("GO", "e2")])
    assert (snapshot.version, snapshot.configuration) == (1, ("one",))


def test_a_start_pinning_a_version_not_loaded_is_rejected_with_the_reason() -> None:
    result = registry(V1, V2).route(None, event("$start", "e1", version=7))
    assert (result.snapshot, result.trace.outcome, result.trace.seq) == (None, "rejected", None)
    assert result.trace.reason == "workflow 'w' has no version 7 loaded"


def test_an_instance_keeps_its_version_for_later_events_while_new_ones_start_later() -> None:
    charts = registry(V1, V2)
    snapshot = fold(charts, [event("$start", "e1", version=1)])
    # A newer version loaded meanwhile changes nothing for the running instance...
    charts.register(chart(V3, file="v3.yaml"))
    for n, kind in enumerate(["GO", "BACK", "GO"], start=2):
        result = charts.route(snapshot, event(kind, f"e{n}"))
        assert result.snapshot is not None and result.trace.outcome == "applied"
        snapshot = result.snapshot
    assert (snapshot.version, snapshot.configuration, snapshot.seq) == (1, ("one",), 4)
    # ...while a new instance starts on the newest.
    fresh = fold(charts, [event("$start", "f1", instance="i-2")])
    assert fresh.version == 3


def test_a_pinned_start_ignores_the_version_on_later_events() -> None:
    """``version`` only matters on a ``$start``: an event of a running instance that carries
    one still steps on the instance's own version."""
    charts = registry(V1, V2)
    started = fold(charts, [event("$start", "e1", version=1)])
    moved = charts.route(started, event("GO", "e2", version=2))
    assert moved.snapshot is not None
    assert (moved.snapshot.version, moved.snapshot.configuration) == (1, ("one",))


def test_versions_loaded_from_a_folder_route_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "w-1.yaml").write_text(V1, encoding="utf-8")
    (tmp_path / "w-2.yaml").write_text(V2, encoding="utf-8")
    loaded = load_charts(chart_files([tmp_path]))
    assert loaded.problems == []
    assert [(c.workflow, c.version) for c in loaded.registry] == [("w", 1), ("w", 2)]
    pinned = fold(loaded.registry, [event("$start", "e1", version=1), event("GO", "e2")])
    latest = fold(
        loaded.registry, [event("$start", "f1", instance="i-2"), event("GO", "f2", instance="i-2")]
    )
    assert (pinned.version, pinned.configuration) == (1, ("one",))
    assert (latest.version, latest.configuration) == (2, ("two",))


# -- the CLI ----------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def two_versions(folder: Path, v2: str = V2) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    one, two = folder / "w-1.yaml", folder / "w-2.yaml"
    one.write_text(V1, encoding="utf-8")
    two.write_text(v2, encoding="utf-8")
    return one, two


def test_validate_a_folder_with_two_versions_prints_ok_for_both(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one, two = two_versions(tmp_path / "charts")
    code, out, err = run(capsys, "validate", str(tmp_path / "charts"))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "handlers: none",
        f"ok  {one}  (w v1, 2 states)",
        f"ok  {two}  (w v2, 2 states)",
    ]


def test_validate_reports_a_migrate_old_path_missing_from_the_older_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = V2.replace("{one: two}", "{gone: two}")
    one, two = two_versions(tmp_path / "charts", bad)
    code, out, err = run(capsys, "validate", str(tmp_path / "charts"))
    assert code == 2
    assert err.splitlines() == [f"{two}:10: migrate from 1: 'gone' is no state of version 1"]
    assert out.splitlines() == ["handlers: none", f"ok  {one}  (w v1, 2 states)"]


def simulate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, lines: list[dict], *charts: Path
) -> list[dict]:
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    first, *others = charts
    argv = ["simulate", str(first), str(script)]
    for other in others:
        argv += ["--chart", str(other)]
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def test_the_simulator_starts_on_the_version_a_start_line_pins(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one, two = two_versions(tmp_path / "charts")
    script = [{"type": "$start", "version": 1, "at": T0}, {"type": "GO"}, {"type": "BACK"}]
    rows = simulate(capsys, tmp_path, script, two, one)
    assert [(r["event"], r["configuration"], r["workflow"]) for r in rows] == [
        ("$start", ["a"], "w"),
        ("GO", ["one"], "w"),  # version 1's behaviour: version 2 would go to 'two'
        ("BACK", ["a"], "w"),
    ]
    # Unpinned, the script's $start runs the simulated chart's version (here 2).
    rows = simulate(capsys, tmp_path, [{"type": "$start", "at": T0}, {"type": "GO"}], two, one)
    assert [r["configuration"] for r in rows] == [["a"], ["two"]]


def test_the_simulator_migrates_an_instance_onto_the_other_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one, two = two_versions(tmp_path / "charts")
    script = [
        {"type": "$start", "version": 1, "at": T0},
        {"type": "GO"},
        {"type": "$migrate", "payload": {"to": 2}},
        {"type": "BACK"},
        {"type": "GO"},
    ]
    rows = simulate(capsys, tmp_path, script, one, two)
    assert [(r["seq"], r["event"], r["ignored"], r["configuration"]) for r in rows] == [
        (1, "$start", False, ["a"]),
        (2, "GO", False, ["one"]),
        (3, "$migrate", False, ["two"]),  # mapped by version 2's `states: {one: two}`
        (4, "BACK", False, ["a"]),
        (5, "GO", False, ["two"]),
    ]
