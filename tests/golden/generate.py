"""Generate the golden journals: the journal records the simulator's runs of the example
scenarios write, as `omninode history --json` prints them.

For every script ``tests/scenarios/<workflow>/<name>.jsonl``, the simulator runs it over the
charts in ``rss/`` (one world, one clock), and every step it routes is turned into the
journal record a worker would append (``app.infra.outbox.journal_record``). That gives

- ``tests/golden/<workflow>/<name>.jsonl``: every instance's records (the parent's and its
  children's), in the order they were written, one ``journal_row`` per line;
- ``tests/golden/<workflow>/<name>.snapshots.json``: each instance's final snapshot, by key.

``tests/test_replay_golden.py`` replays them through the charts in ``rss/``. Regenerate
after a deliberate change of an example chart (then bump its ``version``, or replay fails
for running instances too) or of the journal's content, and review the diff:

    .venv/bin/python -m tests.golden.generate
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from app.core.interpreter import StepResult
from app.core.model import Chart
from app.core.router import ChartRegistry
from app.core.simulate import Simulator, parse_script
from app.core.snapshot import Snapshot
from app.infra.chart_files import chart_files, handler_specs, import_handlers, load_charts
from app.infra.http_views import journal_row
from app.infra.outbox import journal_record
from app.spi.envelopes import Event, JournalRecord

ROOT = Path(__file__).resolve().parents[2]
RSS = ROOT / "rss"
SCENARIOS = ROOT / "tests" / "scenarios"
GOLDEN = ROOT / "tests" / "golden"


class RecordingRegistry(ChartRegistry):
    """Routes as the runtime does, and keeps the journal record of every accepted step."""

    def __init__(self, charts: list[Chart]) -> None:
        super().__init__(charts)
        self.records: list[JournalRecord] = []

    def route(self, snapshot: Snapshot | None, event: Event) -> StepResult:
        result = super().route(snapshot, event)
        record = journal_record(event, result, snapshot)
        if record is not None:
            self.records.append(record)
        return result


@dataclass
class World:
    """What one simulated run leaves: the journal records and every final snapshot."""

    records: list[JournalRecord] = field(default_factory=list)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)


def example_charts() -> ChartRegistry:
    """The charts in ``rss/``, after their handler modules (guards), as a worker loads them."""
    import_handlers(handler_specs([RSS]))
    loaded = load_charts(chart_files([RSS]))
    assert not loaded.problems, loaded.problems
    return loaded.registry


def run_world(first: Chart, others: list[Chart], script_text: str, file: str) -> World:
    """Simulate a script (its events go to ``first``'s instance ``sim-1``) and record it."""
    simulator = Simulator(first, file=file, others=others)
    recorder = RecordingRegistry(list(simulator.registry))
    simulator.registry = recorder
    for _ in simulator.run(parse_script(script_text, file)):
        pass
    return World(recorder.records, dict(simulator.snapshots))


def scenario_world(registry: ChartRegistry, scenario: Path) -> World:
    first = registry.get(scenario.parent.name)
    others = [chart for chart in registry if chart is not first]
    return run_world(first, others, scenario.read_text(encoding="utf-8"), str(scenario))


def scenarios() -> list[Path]:
    return sorted(p for p in SCENARIOS.glob("*/*.jsonl") if not p.name.endswith(".expected.jsonl"))


def journal_text(records: list[JournalRecord]) -> str:
    return "".join(json.dumps(journal_row(r), sort_keys=True) + "\n" for r in records)


def snapshots_text(snapshots: dict[str, Snapshot]) -> str:
    found = {key: snapshot.to_dict() for key, snapshot in sorted(snapshots.items())}
    return json.dumps(found, indent=2, sort_keys=True) + "\n"


def main() -> None:
    registry = example_charts()
    for scenario in scenarios():
        world = scenario_world(registry, scenario)
        target = GOLDEN / scenario.parent.name / scenario.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(journal_text(world.records), encoding="utf-8")
        snapshots = target.with_name(f"{scenario.stem}.snapshots.json")
        snapshots.write_text(snapshots_text(world.snapshots), encoding="utf-8")
        print(f"{target.relative_to(ROOT)}: {len(world.records)} records")


if __name__ == "__main__":
    main()
