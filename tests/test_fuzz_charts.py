"""Fuzzing chart YAML: no chart text takes a worker down.

The invariant, checked on mutated example charts and on small charts made from scratch
(RSS v1.1 included: ``raise`` items, ``invoke`` entries, ``output``, ``in_state`` calls,
valid and not):

* **load_chart either refuses or accepts** — it raises :class:`ChartError` whose every
  diagnostic has the file and a line >= 1 (within the text), or it returns a chart; never
  any other exception;
* **an accepted chart steps without raising** — ``$start``, then events of the types its
  transitions use (results of its dispatches, its timers firing), each through
  :func:`app.core.interpreter.step`, never raise, and every snapshot stays canonical JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.errors import ChartError
from app.core.guards import GuardRegistry, default_guards
from app.core.interpreter import step
from app.core.loader import load_chart
from app.core.model import Chart
from app.core.snapshot import Snapshot
from app.core.yamlsrc import parse_yaml
from app.infra.chart_files import import_handlers
from app.spi.envelopes import RESULT_SUFFIXES, Event
from app.spi.limits import canonical_json

ROOT = Path(__file__).resolve().parents[1]
import_handlers([str(ROOT / "rss" / "handlers.py")])  # the named guards the examples use
EXAMPLES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "rss").glob("*.yaml"))}
FILE = "fuzz.yaml"
# Sized so this file runs in well under 20 s; FUZZ_CHARTS_EXAMPLES=5000 fuzzes for longer.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_CHARTS_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Odd scalars, as YAML text.
ODD_SCALARS = [
    ".nan",
    ".inf",
    "-.inf",
    "1e400",
    "1.0e+400",
    "-0.0",
    "9" * 30,
    "9" * 5_000,
    "0x7fffffffffffffffff",
    "~",
    "null",
    "''",
    '""',
    "true",
    "on",
    "2026-01-01",
    "12:30:00",
    "<<",
    "=",
    "'" + "x" * 20_000 + "'",
    '"ünïcødé ✓ \\U0001D518 \\u0000 \\t"',
    "'#not a comment'",
    "[]",
    "{}",
    "[a, [b, {c: d}]]",
    "[" * 70 + "]" * 70,
    "[" * 3_000 + "]" * 3_000,
    "{a: " * 70 + "1" + "}" * 70,
]
DELAYS = [
    "99999999d",
    "3651d",
    "3650d",
    "0ms",
    "0s",
    "1ms",
    "1h30m",
    "99999999999999999999d",
    "-1s",
]
TAGS = [
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!python/object:os.system",
    "!!python/name:os.system",
    "!custom",
    "!",
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!seq",
    "!!map",
]
KEY_VALUE = re.compile(r"^(\s*(?:- )?[\w$.\"']+:[ ]+)(\S.*)$")


def odd_scalars() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD_SCALARS),
        st.sampled_from(DELAYS),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.floats().map(lambda f: json.dumps(f, allow_nan=True).replace("NaN", ".nan")),
        st.text(max_size=30).map(json.dumps),
    )


def alias_bomb(levels: int, width: int) -> str:
    """Top-level keys whose anchors each repeat the one before ``width`` times."""
    lines = [f"lol0: &lol0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        refs = ", ".join([f"*lol{level - 1}"] * width)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return "\n".join(lines) + "\n"


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """``text`` with one to four mutations: odd values, tags, anchors and aliases, deep
    nesting, odd delays, alias bombs, lines duplicated or dropped."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        candidates = [i for i, line in enumerate(lines) if KEY_VALUE.match(line)]
        kind = draw(
            st.sampled_from(
                ["value", "value", "tag", "alias", "nest", "delay", "bomb", "dup", "drop"]
            )
        )
        if kind == "bomb":
            bomb = alias_bomb(draw(st.integers(1, 9)), draw(st.integers(1, 10)))
            lines = [*bomb.splitlines(), *lines]
            continue
        if not candidates:
            break
        index = draw(st.sampled_from(candidates))
        match = KEY_VALUE.match(lines[index])
        assert match is not None
        head, value = match.groups()
        if kind == "value":
            lines[index] = head + draw(odd_scalars())
        elif kind == "tag":
            lines[index] = f"{head}{draw(st.sampled_from(TAGS))} {value}"
        elif kind == "alias":
            later = [i for i in candidates if i > index]
            if later:
                lines[index] = f"{head}&m {value}"
                target = draw(st.sampled_from(later))
                target_match = KEY_VALUE.match(lines[target])
                assert target_match is not None
                lines[target] = target_match.group(1) + "*m"
        elif kind == "nest":
            depth = draw(st.sampled_from([2, 20, 63, 64, 65, 200, 3_000]))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
            lines[index] = head + opener * depth + value + closer * depth
        elif kind == "delay":
            lines[index] = head + draw(st.sampled_from(DELAYS))
        elif kind == "dup":
            lines.insert(index, lines[index])
        else:
            del lines[index]
    return "\n".join(lines) + "\n"


# -- small charts from scratch, and semantic mutations of the examples -----------------------

EVENTS = ["GO", "STOP"]
VALID_DELAYS = ["0ms", "0s", "1ms", "1h30m", "15m", "3650d"]
WHENS = [
    "true",
    "false",
    "data.n > 1",
    "data.n",
    "event.payload.x == 1",
    "data.missing > 1",
    "[[[[[[1]]]]]] == [[[[[[1]]]]]]",
    'in_state("a")',
    'in_state("a.x")',
    'in_state("a") || in_state("nowhere")',
    "",
    "(((",
]
# RSS v1.1 `raise` items: valid names and payloads, then `$` names, result names of the
# effect `work` and the invoke `kid_a`, and malformed items.
RAISED = [
    "GO",
    "STOP",
    "other.timeout",
    {"event": "GO", "payload": {"x": "data.n"}},
    {"event": "STOP", "payload": {"x": "1 / 0", "y": 'in_state("b")'}},
]
ODD_RAISED = [
    "$done.a",
    "$start",
    "work.done",
    "kid_a.failed",
    {"event": "GO", "payload": "not a map"},
    {"payload": {}},
    "",
]


def raised_items() -> st.SearchStrategy[Any]:
    """Mostly valid raised items, now and then one the loader refuses."""
    return st.one_of(*[st.sampled_from(RAISED)] * 4, st.sampled_from(ODD_RAISED))


EXPRS = [
    "data.n + 1",
    "event.payload",
    "event.payload.x",
    "[[[[[[[[[[1]]]]]]]]]]",
    "[" * 40 + "1" + "]" * 40,
    "'x'",
    "1.5",
    "data.n / 0",
    "{}",
    "{'a': [data]}",
]


def json_values() -> st.SearchStrategy[Any]:
    """JSON-ish values: finite and odd floats, huge ints, long and odd strings, nesting."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats().filter(lambda f: not math.isfinite(f)),
        st.text(max_size=10),
        st.sampled_from(["", "x" * 10_000, "ünïcødé ✓ \U0001d518", "3000000d", "~"]),
    )
    nested = st.integers(min_value=1, max_value=40).map(lambda depth: _nest([], depth))
    return st.recursive(
        scalars | nested,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def some_delays() -> st.SearchStrategy[str]:
    """Mostly valid delays, now and then one that is not (or is too long)."""
    return st.sampled_from(VALID_DELAYS) | st.sampled_from(VALID_DELAYS) | st.sampled_from(DELAYS)


@st.composite
def transition(draw: st.DrawFn, targets: list[str]) -> Any:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["target"] = draw(st.sampled_from(targets))
    if draw(st.integers(0, 2)) == 0:
        spec["when"] = draw(st.sampled_from(WHENS[:-2]) | st.sampled_from(WHENS))
    elif draw(st.integers(0, 4)) == 0:
        spec["guard"] = draw(st.sampled_from(["ok", "boom"]))
    if draw(st.booleans()):
        spec["assign"] = {
            draw(st.sampled_from(["n", "x", "a.b"])): draw(
                st.sampled_from(EXPRS) | st.integers() | st.booleans() | st.none()
            )
        }
    if draw(st.integers(0, 3)) == 0:
        spec["raise"] = draw(st.lists(raised_items(), min_size=1, max_size=3))
    if draw(st.integers(0, 3)) == 0:
        effect: dict[str, Any] = {"name": "work"}
        if draw(st.booleans()):
            effect["timeout"] = draw(some_delays())
        if draw(st.booleans()):
            effect["input"] = {"k": draw(st.sampled_from(EXPRS))}
        if draw(st.booleans()):
            effect["retry"] = {"initial": "0ms", "max": draw(some_delays())}
        spec["effects"] = [effect]
    if not spec:
        return draw(st.sampled_from(targets))
    return spec


@st.composite
def invoke_entry(draw: st.DrawFn, name: str) -> Any:
    """An RSS v1.1 ``invoke`` entry: mostly valid, a quarter of them with one odd field (a
    name clashing with the effect ``work`` or breaking the pattern, an odd version, id,
    input or timeout)."""
    spec: dict[str, Any] = {"name": name, "workflow": draw(st.sampled_from(["child", "fz"]))}
    if draw(st.booleans()):
        spec["version"] = draw(st.sampled_from([1, 2]))
    if draw(st.booleans()):
        spec["input"] = {"k": draw(st.sampled_from(["data.n", "1 / 0", 'in_state("c")']))}
    if draw(st.booleans()):
        spec["id"] = draw(st.sampled_from(["'fixed'", "data.n", "'x' * 3", "'" + "k" * 300 + "'"]))
    if draw(st.booleans()):
        spec["timeout"] = draw(st.sampled_from(VALID_DELAYS))
    if draw(st.sampled_from([False, False, False, True])):
        field, odd = draw(
            st.sampled_from(
                [
                    ("name", "work"),
                    ("name", "Bad-Name"),
                    ("name", ""),
                    ("workflow", "no such type"),
                    ("version", 0),
                    ("version", "2"),
                    ("version", 10**30),
                    ("input", "data"),
                    ("id", ""),
                    ("id", "((("),
                    ("timeout", "-1s"),
                    ("timeout", "99999999d"),
                ]
            )
        )
        spec[field] = odd
    return spec


@st.composite
def scratch_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A small chart that is mostly valid: consistent names, a few hostile values."""
    names = ["a", "b", "c"][: draw(st.integers(1, 3))]
    states: dict[str, Any] = {}
    for name in names:
        node: dict[str, Any] = {}
        targets = list(names) + [f"#{n}" for n in names]
        if draw(st.integers(0, 3)) == 0:
            node["initial"] = "x"
            node["states"] = {"x": {"on": {"GO": "y"}}, "y": {"type": "final"}}
            targets += [f"#{name}.x", f"#{name}.y"]
            node["on_done"] = draw(transition(names))
        if draw(st.booleans()):
            node["on"] = {
                event: draw(
                    transition(targets) | st.lists(transition(targets), min_size=1, max_size=3)
                )
                for event in draw(
                    st.lists(st.sampled_from(EVENTS), min_size=1, max_size=2, unique=True)
                )
            }
        if draw(st.integers(0, 2)) == 0:
            node["always"] = [draw(transition(targets)) for _ in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            timer = {"delay": draw(some_delays())}
            if draw(st.booleans()):
                timer["target"] = draw(st.sampled_from(names))
            node["after"] = [timer]
        if draw(st.integers(0, 2)) == 0:
            node["entry"] = {"assign": {"n": draw(st.sampled_from(EXPRS))}}
        if draw(st.integers(0, 3)) == 0:
            node["invoke"] = [draw(invoke_entry(f"kid_{name}"))]
        if draw(st.sampled_from([False] * 11 + [True])):  # not a top-level final: refused
            node["output"] = {"x": draw(st.sampled_from(EXPRS))}
        states[name] = node
    if len(names) > 1 and draw(st.booleans()):
        states[names[-1]] = {"type": "final"}
        if draw(st.booleans()):
            states[names[-1]]["output"] = {"x": draw(st.sampled_from(EXPRS))}
    jumps = {f"JUMP_{name}": name for name in names[1:]}  # every state reachable
    states[names[0]]["on"] = {**states[names[0]].get("on", {}), **jumps}
    doc: dict[str, Any] = {"rss": 1, "workflow": "fz", "version": 1, "initial": names[0]}
    if draw(st.booleans()):
        doc["data"] = draw(st.dictionaries(st.sampled_from(["n", "x", "deep"]), json_values()))
    if draw(st.integers(0, 3)) == 0:
        doc["data_schema"] = draw(
            st.sampled_from(
                [
                    {"type": "object"},
                    {"$ref": "#"},
                    {"if": {"required": ["x"]}, "then": {"$ref": "#"}},
                ]
            )
        )
    doc["states"] = states
    return doc


@st.composite
def semantic_mutation(draw: st.DrawFn, text: str) -> str:
    """An example with odd but well-formed content: data values, timers, assignments,
    raised events."""
    parsed, _ = parse_yaml(text, FILE)  # `on:` stays a string (yaml.safe_load makes it True)
    assert parsed is not None
    doc = parsed.data
    state_paths: list[tuple[str, ...]] = []
    work: list[tuple[tuple[str, ...], Any]] = [((), doc["states"])]
    while work:
        prefix, children = work.pop()
        for name, node in children.items():
            state_paths.append((*prefix, name))
            if isinstance(node, dict) and isinstance(node.get("states"), dict):
                work.append(((*prefix, name), node["states"]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(state_paths))
        node = doc["states"][path[0]]
        for name in path[1:]:
            node = node["states"][name]
        if node.get("type") in ("final", "history"):
            kind = "data"
        else:
            kind = draw(st.sampled_from(["data", "after", "assign", "always", "raise"]))
        if kind == "data":
            doc.setdefault("data", {})[draw(st.sampled_from(["n", "x", "fz"]))] = draw(
                json_values()
            )
        elif kind == "after":
            node.setdefault("after", []).append(
                {"delay": draw(st.sampled_from(DELAYS)), "target": path[-1]}
            )
        elif kind == "assign":
            node["entry"] = {
                **(node.get("entry") or {}),
                "assign": {"fz": draw(st.sampled_from(EXPRS))},
            }
        elif kind == "raise":
            node["entry"] = {
                **(node.get("entry") or {}),
                "raise": draw(st.lists(raised_items(), min_size=1, max_size=2)),
            }
        else:
            node["always"] = [
                {
                    "when": draw(st.sampled_from(WHENS)),
                    "assign": {"fz": draw(st.sampled_from(EXPRS))},
                }
            ]
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10_000)


def fuzz_guards() -> GuardRegistry:
    registry = GuardRegistry()
    registry.register("ok", lambda data, event: True)

    def boom(data: Any, event: Any) -> bool:
        raise RuntimeError("boom")

    registry.register("boom", boom)
    return registry


SCRATCH_GUARDS = fuzz_guards()


# -- the invariant ---------------------------------------------------------------------------


def check_refused_with_lines_or_accepted_and_steps(
    text: str, guards: GuardRegistry, payloads: list[dict[str, Any]], late: bool
) -> None:
    """load_chart raises ChartError whose diagnostics all have the file and a line >= 1,
    or returns a chart; and every chart it accepts steps without raising."""
    try:
        chart = load_chart(text, FILE, guards)
    except ChartError as refused:
        assert refused.diagnostics, "a refusal says why"
        last_line = text.count("\n") + 1
        for diagnostic in refused.diagnostics:
            assert diagnostic.file == FILE, diagnostic
            assert 1 <= diagnostic.line <= last_line, diagnostic
        return
    steps_without_raising(chart, payloads, late)


def steps_without_raising(chart: Chart, payloads: list[dict[str, Any]], late: bool) -> None:
    """``$start``, then every event type its transitions use (dispatch results included),
    and any armed timer, each stepped without raising; snapshots stay canonical JSON."""
    types = sorted({e for node in chart.states.values() for e in node.transitions if e[0] != "$"})
    types += [
        f"{name}{suffix}" for name in sorted(chart.dispatch_names) for suffix in RESULT_SUFFIXES
    ]
    base = "9990-01-01T00:00:" if late else "2026-01-01T00:00:"
    snapshot: Snapshot | None = None
    script = ["$start", *types, "$timer", *types, "$timer", "$cancel"]
    for n, kind in enumerate(script):
        payload = payloads[n % len(payloads)] if payloads else {}
        at = f"{base}{n:02d}Z"
        if kind == "$timer":
            if snapshot is None or not snapshot.timers:
                continue
            timer = min(snapshot.timers, key=lambda t: t.deadline)
            event = Event(
                chart.workflow, "i", timer.event, f"e{n}", timer.deadline, {}, timer_id=timer.id
            )
        else:
            event = Event(chart.workflow, "i", kind, f"e{n}", at, payload)
        result = step(chart, snapshot, event)
        if result.snapshot is not None:
            canonical_json(result.snapshot.to_dict())
            snapshot = result.snapshot


PAYLOADS = st.lists(
    st.fixed_dictionaries({}, optional={"x": st.sampled_from([1, 1.5, "a", None, [1], {"k": 2}])}),
    max_size=3,
)


@FUZZ
@given(
    name=st.sampled_from(sorted(EXAMPLES)),
    data=st.data(),
    payloads=PAYLOADS,
    late=st.booleans(),
)
def test_mutated_example_text_is_refused_with_lines_or_accepted_and_steps_without_raising(
    name: str, data: st.DataObject, payloads: list[dict[str, Any]], late: bool
) -> None:
    """Text mutations (tags, aliases, bombs, nesting, odd scalars) of the example charts."""
    text = data.draw(mutated_text(EXAMPLES[name]))
    check_refused_with_lines_or_accepted_and_steps(text, default_guards, payloads, late)


@FUZZ
@given(
    name=st.sampled_from(sorted(EXAMPLES)),
    data=st.data(),
    payloads=PAYLOADS,
    late=st.booleans(),
)
def test_odd_content_in_examples_is_refused_with_lines_or_accepted_and_steps_without_raising(
    name: str, data: st.DataObject, payloads: list[dict[str, Any]], late: bool
) -> None:
    """Well-formed odd content (data values, delays, assignments) in the example charts."""
    text = data.draw(semantic_mutation(EXAMPLES[name]))
    check_refused_with_lines_or_accepted_and_steps(text, default_guards, payloads, late)


@FUZZ
@given(doc=scratch_documents(), data=st.data(), payloads=PAYLOADS, late=st.booleans())
def test_small_charts_from_scratch_are_refused_with_lines_or_accepted_and_step_without_raising(
    doc: dict[str, Any], data: st.DataObject, payloads: list[dict[str, Any]], late: bool
) -> None:
    """Small charts made from scratch, a quarter of them text-mutated as well."""
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10_000)
    if data.draw(st.integers(0, 3)) == 0:
        text = data.draw(mutated_text(text))
    check_refused_with_lines_or_accepted_and_steps(text, SCRATCH_GUARDS, payloads, late)


def test_the_unmutated_examples_load_and_step_without_raising() -> None:
    """The fuzz starts from valid charts: each example is accepted and steps."""
    for text in EXAMPLES.values():
        steps_without_raising(load_chart(text, FILE, default_guards), [{}], late=False)
