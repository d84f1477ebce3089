"""YAML parsing that keeps the line of every node, for ``file:line`` diagnostics.

Two deliberate departures from PyYAML's ``SafeLoader`` defaults:
- YAML 1.1 booleans ``on/off/yes/no`` stay strings: ``on:`` is the statechart keyword.
- Timestamps stay strings: instance data must be plain JSON.
Duplicate mapping keys are errors (PyYAML would silently keep the last one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from app.core.errors import Diagnostic

Path = tuple[str | int, ...]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and no implicit timestamps."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass
class SourceDoc:
    """A parsed YAML document: plain data plus the line (1-based) of every path in it."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


def parse_yaml(text: str, file: str) -> tuple[SourceDoc | None, list[Diagnostic]]:
    """Parse one YAML document; on failure return the diagnostics instead."""
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, [Diagnostic(file, line, f"YAML syntax error: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [Diagnostic(file, 1, f"YAML error: {exc}")]
    if node is None:
        return None, [Diagnostic(file, 1, "the document is empty")]
    doc = SourceDoc(file=file, data=None)
    problems: list[Diagnostic] = []
    doc.data = _construct(node, (), doc, loader, problems)
    return (None, problems) if problems else (doc, [])


def _construct(
    node: yaml.Node, path: Path, doc: SourceDoc, loader: _StrictLoader, problems: list[Diagnostic]
) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                line = key_node.start_mark.line + 1
                problems.append(Diagnostic(doc.file, line, "mapping keys must be scalars"))
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                line = key_node.start_mark.line + 1
                problems.append(Diagnostic(doc.file, line, f"duplicate key '{key}'"))
                continue
            result[key] = _construct(value_node, (*path, key), doc, loader, problems)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, i), doc, loader, problems) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
