"""Errors of the core layer. Every one derives from :class:`CoreError`."""

from __future__ import annotations

from dataclasses import dataclass


class CoreError(Exception):
    """Root of the core layer's exceptions."""


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem found in an RSS file, printed as ``file:line: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ChartError(CoreError):
    """An RSS document failed to load; carries every diagnostic found, in line order."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(set(diagnostics)))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UnknownWorkflow(CoreError):
    """No chart is registered for a workflow type (or version)."""


class DuplicateWorkflow(CoreError):
    """Two different chart files declare the same workflow type and version."""


class StepFailure(CoreError):
    """Raised inside a step for an unhandled run-time error; becomes status ``failed``.

    It never escapes :func:`app.core.interpreter.step`.
    """


class SimulationInputError(CoreError):
    """A line of a simulator events file is malformed."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.diagnostic = Diagnostic(file, line, message)
        super().__init__(str(self.diagnostic))
