"""``omninode diff OLD NEW``: the change report between two versions of one workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from app.core.chart_diff import ChartDiff, diff_charts, incomparable
from app.core.guards import guard
from app.core.loader import load_chart

ROOT = Path(__file__).resolve().parents[1]

# Version 1 of a small review workflow; each test edits a copy into version 2.
OLD = """\
rss: 1
workflow: review
version: 1
data: {n: 0}
data_schema: {type: object}
events:
  SUBMIT: {type: object}
  APPROVE: {}
  REJECT: {}
initial: draft
states:
  draft:
    on:
      SUBMIT: {target: checking, when: "data.n >= 0"}
    after:
      - delay: 1h
        target: expired
  checking:
    entry:
      effects:
        - name: notify
          input: {n: data.n}
          retry: {max_attempts: 3}
          timeout: 30s
      computes:
        - name: score
    invoke:
      - name: audit
        workflow: auditor
        timeout: 1h
    on:
      score.done: deciding
      score.failed: expired
  deciding:
    initial: waiting
    on_done: done
    states:
      waiting:
        on:
          APPROVE: approved
          REJECT:
            - when: "data.n > 10"
              target: "#expired"
            - target: "#expired"
        after:
          - delay: 7d
            target: "#expired"
      approved:
        type: final
  done:
    type: final
  expired:
    type: final
    status: failed
"""


@guard("diff_test_is_small")
def _is_small(data: object, event: object) -> bool:
    return True


def version_2(*edits: tuple[str, str]) -> str:
    """OLD as version 2, with each ``(old, new)`` text replacement applied once."""
    text = OLD.replace("version: 1", "version: 2", 1)
    for before, after in edits:
        assert before in text, before
        text = text.replace(before, after, 1)
    return text


def diff(new: str, old: str = OLD) -> ChartDiff:
    return diff_charts(load_chart(old, "old.yaml"), load_chart(new, "new.yaml"))


def section(report: ChartDiff, key: str) -> list[str]:
    return [change.line() for change in report.sections[key]]


MIGRATE = "version: 2\nmigrate:\n  - from: 1\n    states: {%s}\n"


def test_an_unchanged_chart_reports_no_changes_and_no_migration() -> None:
    assert diff(version_2()).lines() == [
        "review: version 1 -> 2",
        "instances on version 1 cannot be migrated: new.yaml declares no migrate from 1",
        "no changes",
    ]


def test_a_state_the_migration_maps_to_a_new_path_is_renamed() -> None:
    report = diff(
        version_2(
            ("version: 2\n", MIGRATE % "checking: verifying"),
            ("  checking:\n", "  verifying:\n"),
            ("target: checking", "target: verifying"),
        )
    )
    assert report.migrates
    assert report.migration == "migrate from 1: 1 state mapping, 0 data assignments"
    assert section(report, "states") == ["checking: renamed to verifying"]
    # Transitions into the renamed state, and its own effects and invoke, are not changes.
    assert all(not report.sections[key] for key in report.sections if key != "states")


def test_a_removed_state_is_moved_or_stranded_and_a_kept_one_may_send_instances_away() -> None:
    without_checking = [
        ("SUBMIT: {target: checking,", "SUBMIT: {target: deciding,"),
        (OLD[OLD.index("  checking:\n") : OLD.index("  deciding:\n")], ""),
        ("  done:\n    type: final\n", ""),
        ("on_done: done", "on_done: expired"),
    ]
    moved = diff(
        version_2(("version: 2\n", MIGRATE % "checking: deciding.waiting"), *without_checking)
    )
    assert section(moved, "states") == [
        "checking: moved to deciding.waiting",
        "done: removed (final)",
    ]
    stranded = diff(version_2(("version: 2\n", MIGRATE % "draft: draft"), *without_checking))
    assert section(stranded, "states") == [
        "checking: removed (atomic); running instances there cannot migrate",
        "done: removed (final)",
    ]
    kept = diff(version_2(("version: 2\n", MIGRATE % "checking: deciding.waiting")))
    assert section(kept, "states") == ["checking: instances migrate to deciding.waiting"]


def test_added_states_and_type_changes() -> None:
    report = diff(
        version_2(
            (
                "      approved:\n        type: final\n",
                "      approved:\n        on: {APPROVE: '#done'}\n",
            ),
            ("    status: failed\n", "  archived:\n    type: final\n"),
            ("APPROVE: approved", "APPROVE: approved\n          REJECT_ALL: '#archived'"),
            ("  REJECT: {}", "  REJECT: {}\n  REJECT_ALL: {}"),
        )
    )
    assert section(report, "states") == [
        "deciding.approved: type final -> atomic",
        "expired: type final (failed) -> final",
        "archived: added (final)",
    ]


def test_events_no_longer_and_newly_handled_with_the_state_transitions_behind_them() -> None:
    report = diff(
        version_2(
            ("          REJECT:\n", "          CANCEL:\n"),
            ("  REJECT: {}", "  CANCEL: {}"),
            ("score.failed: expired", "score.failed: expired\n      REJECT: expired"),
            ("  CANCEL: {}", "  CANCEL: {}\n  REJECT: {}"),
        )
    )
    assert section(report, "events") == ["CANCEL: newly handled"]
    assert section(report, "transitions") == [
        "checking on REJECT: added (target expired)",
        "deciding.waiting on REJECT: removed (2 transitions)",
        "deciding.waiting on CANCEL: added (2 transitions)",
    ]
    gone = diff(
        version_2(("          REJECT:\n", "          CANCEL:\n"), ("  REJECT: {}", "  CANCEL: {}"))
    )
    assert section(gone, "events") == ["REJECT: no longer handled", "CANCEL: newly handled"]


def test_transition_target_guard_and_when_changes_for_the_same_state_and_event() -> None:
    report = diff(
        version_2(
            ('when: "data.n >= 0"', 'when: "data.n >= 1"'),
            ("APPROVE: approved", "APPROVE: {target: approved, guard: diff_test_is_small}"),
            ('            - target: "#expired"\n', ""),
            ('target: "#expired"', 'target: "#done"'),
            ("on_done: done", "on_done: expired"),
            ('delay: 7d\n            target: "#expired"', 'delay: 7d\n            target: "#done"'),
        )
    )
    assert section(report, "transitions") == [
        'draft on SUBMIT: when "data.n >= 0" -> "data.n >= 1"',
        "deciding on_done: target done -> expired",
        "deciding.waiting on APPROVE: guard (none) -> diff_test_is_small",
        "deciding.waiting on REJECT: transitions 2 -> 1",
        "deciding.waiting on REJECT[0]: target expired -> done",
        "deciding.waiting after[0]: target expired -> done",
    ]
    assert section(report, "events") == []


def test_effects_and_computes_by_name() -> None:
    report = diff(
        version_2(
            ("input: {n: data.n}", "input: {n: data.n + 1, m: data.n}"),
            ("retry: {max_attempts: 3}", "retry: {max_attempts: 5, backoff: fixed}"),
            ("timeout: 30s", "timeout: 1m\n          compensate: unnotify\n          mode: await"),
            ("- name: score", "- name: rank\n          mode: fire_and_forget"),
            ("score.done: deciding\n      score.failed: expired", "APPROVE: deciding"),
        )
    )
    assert section(report, "dispatches") == [
        'effect notify: input.n "data.n" -> "data.n + 1"',
        'effect notify: input.m (none) -> "data.n"',
        "effect notify: retry 3 attempts, exponential 1s..1m -> 5 attempts, fixed 1s..1m",
        "effect notify: timeout 30s -> 1m",
        "effect notify: compensate (none) -> unnotify",
        "compute score: removed",
        "compute rank: added",
    ]
    mode = diff(version_2(("timeout: 30s", "timeout: 30s\n          mode: fire_and_forget")))
    assert section(mode, "dispatches") == ["effect notify: mode await -> fire_and_forget"]
    everything = diff(version_2(("          input: {n: data.n}\n", "")))
    assert section(everything, "dispatches") == ["effect notify: input {n} -> all data"]


def test_timers_by_state_and_index() -> None:
    report = diff(
        version_2(
            (
                "delay: 1h\n        target: expired",
                "delay: 2h\n        target: expired\n      - delay: 1d\n        target: done",
            ),
            ('        after:\n          - delay: 7d\n            target: "#expired"\n', ""),
        )
    )
    assert section(report, "timers") == [
        "draft after[0]: delay 1h -> 2h",
        "draft after[1]: added (delay 1d)",
        "deciding.waiting after[0]: removed (delay 7d)",
    ]
    assert section(report, "transitions") == []  # timers added or removed: only here


def test_timers_follow_a_renamed_state() -> None:
    report = diff(
        version_2(
            ("version: 2\n", MIGRATE % "draft: drafting"),
            ("initial: draft", "initial: drafting"),
            ("  draft:\n", "  drafting:\n"),
            ("delay: 1h", "delay: 90m"),
        )
    )
    assert section(report, "timers") == ["drafting (was draft) after[0]: delay 1h -> 1h30m"]


def test_invokes_added_removed_and_changed() -> None:
    report = diff(
        version_2(
            (
                "timeout: 1h\n",
                "timeout: 2h\n        version: 3\n        input: {n: data.n}\n        id: \"'a-' + string(data.n)\"\n",
            ),
            (
                "      waiting:\n",
                "      waiting:\n        invoke:\n          - {name: archive, workflow: archiver}\n",
            ),
        )
    )
    assert section(report, "invokes") == [
        "invoke audit: input all data -> {n}",
        "invoke audit: id (none) -> \"'a-' + string(data.n)\"",
        "invoke audit: version latest -> v3",
        "invoke audit: timeout 1h -> 2h",
        "invoke archive: added (workflow archiver latest in deciding.waiting)",
    ]
    gone = diff(
        version_2(
            (
                "    invoke:\n      - name: audit\n        workflow: auditor\n        timeout: 1h\n",
                "",
            )
        )
    )
    assert section(gone, "invokes") == [
        "invoke audit: removed (workflow auditor latest in checking)"
    ]


def test_data_schema_and_declared_event_schemas() -> None:
    report = diff(
        version_2(
            ("data_schema: {type: object}\n", ""),
            ("SUBMIT: {type: object}", "SUBMIT: {type: object, required: [n]}\n  ARCHIVE: {}"),
        )
    )
    assert section(report, "schemas") == [
        "data_schema: removed",
        "events.SUBMIT: changed",
        "events.ARCHIVE: added",
    ]
    changed = diff(
        version_2(("data_schema: {type: object}", "data_schema: {type: object, required: [n]}"))
    )
    assert section(changed, "schemas") == ["data_schema: changed"]


def test_the_migration_line_counts_what_migrate_declares() -> None:
    report = diff(version_2(("version: 2\n", MIGRATE % "draft: draft" + "    data: {n: '0'}\n")))
    assert report.migration == "migrate from 1: 1 state mapping, 1 data assignment"


def test_two_workflows_or_a_version_not_newer_are_incomparable() -> None:
    old = load_chart(OLD, "old.yaml")
    other = load_chart(version_2(("workflow: review", "workflow: audit")), "new.yaml")
    assert incomparable(old, other) == (
        "old.yaml is workflow 'review' but new.yaml is workflow 'audit': "
        "diff compares two versions of one workflow"
    )
    assert incomparable(old, load_chart(OLD, "same.yaml")) == (
        "same.yaml has version 1, not greater than version 1 of old.yaml: "
        "give the older chart first"
    )
    assert incomparable(old, load_chart(version_2(), "new.yaml")) is None


# -- the command ------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_cli_prints_grouped_sections_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "v1.yaml", OLD)
    new = write(
        tmp_path,
        "v2.yaml",
        version_2(("delay: 1h", "delay: 2h"), ("  REJECT: {}", "  REJECT: {}\n  X: {}")),
    )
    code, out, err = run(capsys, "diff", old, new)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "review: version 1 -> 2",
        f"instances on version 1 cannot be migrated: {new} declares no migrate from 1",
        "",
        "timers:",
        "  draft after[0]: delay 1h -> 2h",
        "",
        "schemas:",
        "  events.X: added",
    ]


def test_cli_json_is_one_object_with_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "v1.yaml", OLD)
    new = write(tmp_path, "v2.yaml", version_2(("delay: 1h", "delay: 2h")))
    code, out, _ = run(capsys, "diff", old, new, "--json")
    assert code == 0
    report = json.loads(out)
    assert list(report) == [
        "workflow", "old", "new", "migrates", "migration",
        "states", "events", "transitions", "dispatches", "timers", "invokes", "schemas",
    ]  # fmt: skip
    assert report["old"] == {"file": old, "version": 1}
    assert report["new"] == {"file": new, "version": 2}
    assert report["migrates"] is False
    assert report["timers"] == [
        {
            "subject": "draft after[0]",
            "change": "delay",
            "old": "1h",
            "new": "2h",
            "note": None,
            "line": "draft after[0]: delay 1h -> 2h",
        }
    ]
    assert report["states"] == report["schemas"] == []


def test_cli_refuses_two_different_workflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "v1.yaml", OLD)
    new = write(tmp_path, "v2.yaml", version_2(("workflow: review", "workflow: audit")))
    code, out, err = run(capsys, "diff", old, new)
    assert (code, out) == (2, "")
    assert err == (
        f"omninode: {old} is workflow 'review' but {new} is workflow 'audit': "
        "diff compares two versions of one workflow\n"
    )


def test_cli_refuses_a_version_that_is_not_newer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "v1.yaml", OLD)
    new = write(tmp_path, "v2.yaml", version_2())
    code, out, err = run(capsys, "diff", new, old)
    assert (code, out) == (2, "")
    assert err == (
        f"omninode: {old} has version 1, not greater than version 2 of {new}: "
        "give the older chart first\n"
    )


def test_cli_reports_a_broken_chart_as_file_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "v1.yaml", OLD)
    new = write(tmp_path, "v2.yaml", version_2(("  draft:\n    on:\n", "  draft:\n    on: [\n")))
    code, out, err = run(capsys, "diff", old, new)
    assert (code, out) == (2, "")
    assert err.startswith(f"{new}:15: YAML syntax error: ")
    unknown = write(tmp_path, "v3.yaml", version_2(("version: 2\n", MIGRATE % "nowhere: draft")))
    code, _, err = run(capsys, "diff", old, unknown)
    assert code == 2
    assert err == f"{unknown}:6: migrate from 1: 'nowhere' is no state of version 1\n"


def test_cli_imports_the_guards_beside_either_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The old version checked out elsewhere names a guard that only the new folder registers.
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "handlers.py").write_text(
        "from app.core.guards import guard\n\n"
        "@guard('diff_test_beside')\n"
        "def beside(data, event):\n    return True\n"
    )
    guarded = OLD.replace(
        "APPROVE: approved", "APPROVE: {target: approved, guard: diff_test_beside}"
    )
    old = write(tmp_path / "old", "review.yaml", guarded)
    new = write(tmp_path / "new", "review.yaml", guarded.replace("version: 1", "version: 2"))
    code, out, err = run(capsys, "diff", old, new)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "no changes"


def test_cli_order_fulfillment_with_a_renamed_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ROOT / "rss" / "order_fulfillment.yaml"
    text = source.read_text(encoding="utf-8")
    edits = [
        ("version: 2\n", "version: 3\nmigrate:\n  - from: 2\n    states: {charging: paying}\n"),
        ("  charging:\n", "  paying:\n"),
        ("target: charging", "target: paying"),
        ("delay: 24h", "delay: 48h"),
        ("          timeout: 30s\n", "          timeout: 1m\n"),
        ("      ship.timeout: failed\n", ""),
    ]
    for before, after in edits:
        assert before in text, before
        text = text.replace(before, after, 1)
    new = write(tmp_path, "order_fulfillment.yaml", text)
    code, out, err = run(capsys, "diff", str(source), new)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "order_fulfillment: version 2 -> 3",
        "migrate from 2: 1 state mapping, 0 data assignments",
        "",
        "states:",
        "  charging: renamed to paying",
        "",
        "events:",
        "  ship.timeout: no longer handled",
        "",
        "transitions:",
        "  shipping on ship.timeout: removed (target failed)",
        "",
        "effects and computes:",
        "  effect charge_card: timeout 30s -> 1m",
        "",
        "timers:",
        "  awaiting_payment after[0]: delay 1d -> 2d",
    ]
