"""The top-level router: a registry of charts by workflow type and version that routes an
event to the right chart's reducer (router -> subreducers -> statechart).

An instance stays on the chart version it started with; new instances use the latest, or
the version their ``$start`` pins (the envelope's ``version``: ``omninode start --version``,
or a parent's ``invoke``).
"""

from __future__ import annotations

from collections.abc import Iterator

from app.core.bounds import bounded_step
from app.core.errors import DuplicateWorkflow, UnknownWorkflow
from app.core.interpreter import StepResult, StepTrace, with_parent_answer
from app.core.migration import migrate
from app.core.model import Chart
from app.core.snapshot import Snapshot
from app.spi.envelopes import MIGRATE, Event


class ChartRegistry:
    def __init__(self, charts: list[Chart] | None = None) -> None:
        self._charts: dict[str, dict[int, Chart]] = {}
        for chart in charts or []:
            self.register(chart)

    def register(self, chart: Chart) -> None:
        versions = self._charts.setdefault(chart.workflow, {})
        existing = versions.get(chart.version)
        if existing is not None and existing.file != chart.file:
            raise DuplicateWorkflow(
                f"workflow '{chart.workflow}' version {chart.version} is also defined in "
                f"{existing.file}; bump 'version' when a chart changes"
            )
        versions[chart.version] = chart

    def get(self, workflow: str, version: int | None = None) -> Chart:
        versions = self._charts.get(workflow)
        if not versions:
            known = ", ".join(sorted(self._charts)) or "none"
            raise UnknownWorkflow(f"unknown workflow type '{workflow}' (known: {known})")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownWorkflow(f"workflow '{workflow}' has no version {version} loaded")
        return versions[version]

    def __iter__(self) -> Iterator[Chart]:
        for workflow in sorted(self._charts):
            yield from (self._charts[workflow][v] for v in sorted(self._charts[workflow]))

    def __contains__(self, workflow: object) -> bool:
        return workflow in self._charts

    def route(self, snapshot: Snapshot | None, event: Event) -> StepResult:
        """Step ``event`` with the chart its instance runs on, held to the chart's limits;
        unknown types are rejected."""
        if event.type == MIGRATE and snapshot is not None:
            versions = self._charts.get(event.workflow_type, {})
            if snapshot.version in versions:
                return migrate(versions, snapshot, event)
        try:
            version = snapshot.version if snapshot is not None else event.version
            chart = self.get(event.workflow_type, version)
        except UnknownWorkflow as exc:
            refused = StepResult(snapshot, (), StepTrace("rejected", event.type, None, str(exc)))
            return with_parent_answer(snapshot, event, refused)
        return bounded_step(chart, snapshot, event)
