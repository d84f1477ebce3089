"""YAML parsing that keeps the line of every node, for ``file:line`` diagnostics.

Deliberate departures from PyYAML's ``SafeLoader`` defaults:
- YAML 1.1 booleans ``on/off/yes/no`` stay strings: ``on:`` is the statechart keyword.
- Timestamps, merge keys (``<<``) and ``=`` stay strings: instance data must be plain JSON.
- Duplicate mapping keys are errors (PyYAML would silently keep the last one).
- Only plain JSON values: an explicit tag other than ``!!str``, ``!!int``, ``!!float``,
  ``!!bool``, ``!!null``, ``!!seq`` or ``!!map`` is refused, and so are ``.nan``/``.inf``.
- Hostile documents are refused with a diagnostic, never a traceback: the text is held to
  ``chart_bytes``; the event stream (PyYAML's parser is iterative) is checked for nesting
  (``yaml_depth``) and ``*alias`` references (``yaml_aliases``) before the recursive composer
  runs; construction counts the nodes it makes as aliases expand (``yaml_nodes``), so an
  alias bomb stops early.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from app.core.errors import Diagnostic
from app.spi.limits import DEFAULT_LIMITS, Limits

Path = tuple[str | int, ...]

_YAML_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_YAML_TAG + name for name in ("str", "int", "float", "bool", "null"))
_SEQ_TAG = _YAML_TAG + "seq"
_MAP_TAG = _YAML_TAG + "map"
_JSON_TAGS = _SCALAR_TAGS | {_SEQ_TAG, _MAP_TAG}
_NOT_JSON = "chart values must be plain JSON (strings, numbers, booleans, null, lists, mappings)"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and no implicit timestamps, merge keys or ``=``."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:timestamp",
            "tag:yaml.org,2002:merge",
            "tag:yaml.org,2002:value",
        )
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


class _Refused(Exception):
    """A limit was exceeded while building the data: stop at once with this diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def parse_yaml(
    text: str, file: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[SourceDoc | None, list[Diagnostic]]:
    """Parse one YAML document; on failure return the diagnostics instead."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.chart_bytes:
        message = (
            f"the chart is {size} bytes, over the limit of {limits.chart_bytes} "
            "(OMNINODE_MAX_CHART_BYTES)"
        )
        return None, [Diagnostic(file, 1, message)]
    try:
        problems = _check_events(text, file, limits)
        if problems:
            return None, problems
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
    except RecursionError:  # only when OMNINODE_MAX_YAML_DEPTH is set far above its default
        return None, [Diagnostic(file, 1, _too_deep_for_python(limits))]
    if node is None:
        return None, [Diagnostic(file, 1, "the document is empty")]
    doc = SourceDoc(file=file, data=None)
    builder = _Constructor(doc, loader, limits)
    try:
        doc.data = builder.construct(node, ())
    except _Refused as refused:
        return None, [*builder.problems, refused.diagnostic]
    except RecursionError:
        return None, [Diagnostic(file, 1, _too_deep_for_python(limits))]
    return (None, builder.problems) if builder.problems else (doc, [])


def _check_events(text: str, file: str, limits: Limits) -> list[Diagnostic]:
    """Nesting, alias count and tags, read off the event stream before anything recursive
    runs. Stops at the first limit exceeded; collects every tag that is not plain JSON."""
    problems: list[Diagnostic] = []
    depth = 0
    aliases = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        line = event.start_mark.line + 1 if event.start_mark else 1
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.yaml_depth:
                message = f"nested deeper than {limits.yaml_depth} levels (OMNINODE_MAX_YAML_DEPTH)"
                return [*problems, Diagnostic(file, line, message)]
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.yaml_aliases:
                message = (
                    f"more than {limits.yaml_aliases} *alias references (OMNINODE_MAX_YAML_ALIASES)"
                )
                return [*problems, Diagnostic(file, line, message)]
        if isinstance(event, yaml.NodeEvent) and not isinstance(event, yaml.AliasEvent):
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _JSON_TAGS:
                problems.append(
                    Diagnostic(file, line, f"the tag {_short(tag)} is refused: {_NOT_JSON}")
                )
    return problems


class _Constructor:
    """Turns a composed node graph into plain data, recording lines and counting nodes."""

    def __init__(self, doc: SourceDoc, loader: _StrictLoader, limits: Limits) -> None:
        self.doc = doc
        self.loader = loader
        self.limits = limits
        self.problems: list[Diagnostic] = []
        self.nodes = 0

    def refuse(self, node: yaml.Node, message: str) -> _Refused:
        return _Refused(Diagnostic(self.doc.file, node.start_mark.line + 1, message))

    def error(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Diagnostic(self.doc.file, node.start_mark.line + 1, message))

    def construct(self, node: yaml.Node, path: Path) -> Any:
        self.nodes += 1
        if self.nodes > self.limits.yaml_nodes:
            raise self.refuse(
                node,
                f"more than {self.limits.yaml_nodes} YAML nodes once aliases are expanded "
                "(OMNINODE_MAX_YAML_NODES)",
            )
        self.doc.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.CollectionNode) and len(path) >= self.limits.yaml_depth:
            # the text was checked, but aliases can nest deeper than the text
            raise self.refuse(
                node,
                f"nested deeper than {self.limits.yaml_depth} levels once aliases are "
                "expanded (OMNINODE_MAX_YAML_DEPTH)",
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self.error(node, f"the tag {_short(node.tag)} is refused: {_NOT_JSON}")
            return [self.construct(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            self.error(node, f"the tag {_short(node.tag)} is refused: {_NOT_JSON}")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            self.nodes += 1
            known = len(self.problems)
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if len(self.problems) > known:
                continue  # the key itself was refused (a tag, NaN): said once is enough
            if not isinstance(key, str | int | float | bool):
                self.error(key_node, "mapping keys must be scalars")
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                self.error(key_node, f"duplicate key '{key}'")
                continue
            result[key] = self.construct(value_node, (*path, key))
            self.doc.lines[(*path, key)] = key_node.start_mark.line + 1
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.error(node, f"the tag {_short(node.tag)} is refused: {_NOT_JSON}")
            return None
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception:  # ValueError, KeyError, ConstructorError: never a traceback
            self.error(node, f"cannot read {_excerpt(node.value)} as {_short(node.tag)}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.error(node, f"{_excerpt(node.value)} is not a JSON number: {_NOT_JSON}")
            return None
        return value


def _short(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _excerpt(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[:width] + "…")


def _too_deep_for_python(limits: Limits) -> str:
    return (
        f"nested too deeply to read (OMNINODE_MAX_YAML_DEPTH={limits.yaml_depth} is above "
        "what the parser can handle; lower it)"
    )
