"""Which handler modules loading charts imports: OMNINODE_HANDLERS, else ``handlers.py``.

Any other ``*.py`` beside the charts (a helper script, a test) must never run because a
chart was validated or simulated: one that called ``omninode simulate`` itself once
recursed into hundreds of processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import main
from app.infra.chart_files import handler_specs, import_handlers

ROOT = Path(__file__).resolve().parents[1]
CHART = "rss: 1\nworkflow: w\nversion: 1\ninitial: a\nstates:\n  a: {on: {GO: b}}\n  b: {}\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _module_writing(marker: Path) -> str:
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"


@pytest.fixture(autouse=True)
def _no_configured_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNINODE_HANDLERS", raising=False)


def test_stray_helper_beside_a_chart_is_not_imported_by_validate_or_simulate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "helper-ran"
    (tmp_path / "helper.py").write_text(_module_writing(marker))
    chart = tmp_path / "w.yaml"
    chart.write_text(CHART)
    events = tmp_path / "e.jsonl"
    events.write_text('{"type": "$start"}\n{"type": "GO"}\n')

    code, out, err = run(capsys, "validate", str(tmp_path))
    assert code == 0, err
    assert "handlers: none" in out.splitlines()
    code, out, err = run(capsys, "validate", str(chart))
    assert code == 0, err
    code, out, err = run(capsys, "simulate", str(chart), str(events))
    assert code == 0, err
    assert len(out.splitlines()) == 2
    code, _, err = run(capsys, "diagram", str(chart))
    assert code == 0, err
    assert not marker.exists()


def test_handlers_py_beside_a_chart_is_imported_and_validate_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "handlers-ran"
    handlers = tmp_path / "handlers.py"
    handlers.write_text(_module_writing(marker))
    (tmp_path / "w.yaml").write_text(CHART)
    code, out, err = run(capsys, "validate", str(tmp_path))
    assert code == 0, err
    assert f"handlers: imported {handlers}" in out.splitlines()
    assert marker.read_text() == "imported"


def test_validate_of_the_examples_imports_rss_handlers_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, "validate", "rss/")
    assert code == 0, err
    assert "handlers: imported rss/handlers.py" in out.splitlines()


def test_handler_specs_takes_handlers_py_from_every_chart_folder(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "x.yaml").write_text(CHART)
    (sub / "handlers.py").write_text("")
    (sub / "tools.py").write_text("")
    (tmp_path / "handlers.py").write_text("")
    (tmp_path / "conftest.py").write_text("")
    assert handler_specs([tmp_path]) == [str(tmp_path / "handlers.py"), str(sub / "handlers.py")]
    assert handler_specs([sub / "x.yaml"]) == [str(sub / "handlers.py")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert handler_specs([empty]) == []


def test_omninode_handlers_replaces_the_convention(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = tmp_path / "handlers-ran"
    named = tmp_path / "named-ran"
    (tmp_path / "handlers.py").write_text(_module_writing(beside))
    elsewhere = tmp_path / "lib"
    elsewhere.mkdir()
    (elsewhere / "mine.py").write_text(_module_writing(named))
    (tmp_path / "w.yaml").write_text(CHART)
    monkeypatch.setenv("OMNINODE_HANDLERS", str(elsewhere / "mine.py"))
    assert handler_specs([tmp_path]) == [str(elsewhere / "mine.py")]
    code, out, err = run(capsys, "validate", str(tmp_path))
    assert code == 0, err
    assert f"handlers: imported {elsewhere / 'mine.py'}" in out.splitlines()
    assert named.exists() and not beside.exists()


def test_import_handlers_returns_the_modules_it_imported(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text("NAME = 'here'\n")
    (module,) = import_handlers(handler_specs([tmp_path]))
    assert module.NAME == "here"
    assert module.__file__ == str((tmp_path / "handlers.py").resolve())


def test_omninode_handlers_none_imports_no_module_not_even_handlers_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "handlers.py").write_text("raise SystemExit('must not be imported')\n")
    monkeypatch.setenv("OMNINODE_HANDLERS", "none")
    assert handler_specs([tmp_path]) == []
