"""No chart takes a worker down: every limit of ``app.spi.limits.Limits`` that a chart (or a
step of one) meets is refused with ``file:line: message`` or fails the step, never raises.

Each test is named after what it proves.
"""

from __future__ import annotations

import math
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ChartError, StepFailure
from app.core.expressions import to_json_value
from app.core.guards import GuardRegistry
from app.core.loader import load_chart
from app.core.model import Chart
from app.core.yamlsrc import parse_yaml
from app.infra import chart_files
from app.infra.chart_files import read_chart
from app.infra.runtime import load_registry
from app.infra.settings import Settings
from app.spi.limits import DEFAULT_LIMITS, Limits
from tests.helpers import Driver

HEADER = "rss: 1\nworkflow: w\nversion: 1\n"
MINIMAL = HEADER + "initial: a\nstates:\n  a: {}\n"

# The "billion laughs": nine anchors, each a list of nine references to the one before.
BILLION_LAUGHS = textwrap.dedent(
    """\
    rss: 1
    workflow: lol
    version: 1
    initial: a
    states: {a: {}}
    data:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
    """
)


def problems(text: str, limits: Limits = DEFAULT_LIMITS, file: str = "bad.yaml") -> list[str]:
    with pytest.raises(ChartError) as caught:
        load_chart(text, file, GuardRegistry(), limits)
    found = caught.value.diagnostics
    assert found, "a ChartError carries at least one diagnostic"
    assert all(d.file == file and d.line >= 1 for d in found)
    return [str(d) for d in found]


def load(text: str, limits: Limits = DEFAULT_LIMITS) -> Chart:
    return load_chart(text, "ok.yaml", GuardRegistry(), limits)


def nested_states(depth: int) -> str:
    """A chart whose states nest ``depth`` deep (block style, as an author writes them)."""
    lines = [HEADER.rstrip("\n"), "initial: s0", "states:"]
    indent = "  "
    for level in range(depth):
        lines.append(f"{indent}s{level}:")
        if level < depth - 1:
            lines += [f"{indent}  initial: s{level + 1}", f"{indent}  states:"]
        else:
            lines.append(f"{indent}  type: final")
        indent += "    "
    return "\n".join(lines) + "\n"


# -- 1. the limits travel: loader, chart files, registry -----------------------------------


def test_load_chart_puts_the_limits_it_was_given_on_the_chart() -> None:
    limits = Limits(evaluations_per_step=7)
    assert load(MINIMAL, limits).limits is limits
    assert load(MINIMAL).limits is DEFAULT_LIMITS


def test_load_chart_holds_the_yaml_stage_to_the_limits_it_was_given() -> None:
    text = MINIMAL + "data: {x: [[[1]]]}\n"
    assert load(text).initial_data == {"x": [[[1]]]}
    found = problems(text, Limits(yaml_depth=3))
    assert found == ["bad.yaml:7: nested deeper than 3 levels (OMNINODE_MAX_YAML_DEPTH)"]


def test_load_chart_refuses_text_over_chart_bytes() -> None:
    found = problems(MINIMAL, Limits(chart_bytes=10))
    size = len(MINIMAL.encode())
    assert found == [
        f"bad.yaml:1: the chart is {size} bytes, over the limit of 10 (OMNINODE_MAX_CHART_BYTES)"
    ]


def test_read_chart_refuses_a_file_over_chart_bytes_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL + "description: " + "x" * 5_000 + "\n")
    size = path.stat().st_size

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read_chart opened a file it should have refused from its size")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_text", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(ChartError) as caught:
        read_chart(path, GuardRegistry(), Limits(chart_bytes=4_096))
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{path}:1: the chart is {size} bytes, over the limit of 4096 (OMNINODE_MAX_CHART_BYTES)"
    ]


def test_read_chart_stops_reading_one_byte_past_the_limit_when_the_size_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows after stat (or a device that reports size 0) is still refused."""
    path = tmp_path / "grows.yaml"
    path.write_text(MINIMAL + "description: " + "x" * 5_000 + "\n")
    real_stat = Path.stat

    class Small:
        st_size = 10

    monkeypatch.setattr(
        Path, "stat", lambda self, **kw: Small() if self == path else real_stat(self)
    )
    with pytest.raises(ChartError) as caught:
        read_chart(path, GuardRegistry(), Limits(chart_bytes=4_096))
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{path}:1: the chart is 4097 bytes, over the limit of 4096 (OMNINODE_MAX_CHART_BYTES)"
    ]


def test_read_chart_loads_a_file_within_the_limit_and_the_chart_carries_the_limits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(MINIMAL)
    limits = Limits(chart_bytes=len(MINIMAL.encode()))
    assert read_chart(path, GuardRegistry(), limits).limits is limits


def test_load_registry_reads_every_chart_with_the_settings_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "w.yaml").write_text(MINIMAL)
    limits = Limits(chart_bytes=20)
    settings = Settings(rss_paths=(str(tmp_path),), handler_modules=("json",), limits=limits)
    with pytest.raises(ChartError) as caught:
        load_registry(settings)
    assert "OMNINODE_MAX_CHART_BYTES" in str(caught.value)
    seen: list[Limits] = []
    real = chart_files.read_chart

    def spy(
        path: Path, guards: GuardRegistry | None = None, limits: Limits = DEFAULT_LIMITS
    ) -> Chart:
        seen.append(limits)
        return real(path, guards, limits)

    monkeypatch.setattr("app.infra.chart_files.read_chart", spy)
    roomy = Limits(chart_bytes=10_000)
    load_registry(Settings(rss_paths=(str(tmp_path),), handler_modules=("json",), limits=roomy))
    assert seen == [roomy]


# -- 2. YAML hardening -----------------------------------------------------------------------


def test_billion_laughs_alias_bomb_is_refused_quickly_with_its_line() -> None:
    assert len(BILLION_LAUGHS.encode()) < 600
    began = time.perf_counter()
    found = problems(BILLION_LAUGHS)
    assert time.perf_counter() - began < 0.5
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:15: more than 64 *alias references")
    assert found[0].endswith("(OMNINODE_MAX_YAML_ALIASES)")


def test_nodes_made_by_expanding_aliases_are_counted_and_refused_over_yaml_nodes() -> None:
    """Within the alias limit, the node count is what stops the bomb (10**6 nodes)."""
    roomy_aliases = Limits(yaml_aliases=1_000)
    began = time.perf_counter()
    found = problems(BILLION_LAUGHS, roomy_aliases)
    assert time.perf_counter() - began < 1.0
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:")
    assert (
        "more than 100000 YAML nodes once aliases are expanded (OMNINODE_MAX_YAML_NODES)"
        in (found[0])
    )


def test_a_few_aliases_within_the_limits_still_load() -> None:
    chart = load(MINIMAL + "data:\n  base: &base {retries: 3}\n  copy: *base\n")
    assert chart.initial_data == {"base": {"retries": 3}, "copy": {"retries": 3}}


@pytest.mark.parametrize(
    "value",
    ["[" * 3_000 + "]" * 3_000, "{a: " * 3_000 + "1" + "}" * 3_000],
    ids=["sequence", "mapping"],
)
def test_flow_collections_3000_deep_are_refused_with_a_line_not_a_recursion_error(
    value: str,
) -> None:
    began = time.perf_counter()
    found = problems(MINIMAL + "data: {x: " + value + "}\n")
    assert time.perf_counter() - began < 1.0
    assert found == ["bad.yaml:7: nested deeper than 64 levels (OMNINODE_MAX_YAML_DEPTH)"]


def test_block_mapping_300_deep_is_refused_with_the_line_where_the_limit_is_crossed() -> None:
    body = "".join(" " * (level + 1) + f"k{level}:\n" for level in range(300))
    # the document is level 1, the mapping holding k0 (line 8) level 2, holding k63 level 65
    found = problems(MINIMAL + "data:\n" + body)
    assert found == ["bad.yaml:71: nested deeper than 64 levels (OMNINODE_MAX_YAML_DEPTH)"]


def test_a_recursive_alias_is_refused_not_a_recursion_error() -> None:
    found = problems(MINIMAL + "data: {x: &loop [*loop]}\n")
    assert found == [
        "bad.yaml:7: nested deeper than 64 levels once aliases are expanded "
        "(OMNINODE_MAX_YAML_DEPTH)"
    ]


def test_aliases_that_nest_deeper_than_the_text_are_refused() -> None:
    """Each line is 3 levels deep in the text; the aliases stack them 9 deep."""
    text = MINIMAL + textwrap.dedent(
        """\
        data:
          a: &a [[1]]
          b: &b [[*a]]
          c: &c [[*b]]
          d: [[*c]]
        """
    )
    assert load(text).initial_data["d"] == [[[[[[[[1]]]]]]]]
    found = problems(text, Limits(yaml_depth=6))
    assert found == [
        "bad.yaml:8: nested deeper than 6 levels once aliases are expanded "
        "(OMNINODE_MAX_YAML_DEPTH)"
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!timestamp 2026-01-01", "!!timestamp"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [a: 1]", "!!omap"),
        ("!!pairs [a: 1]", "!!pairs"),
        ("!!python/object:os.system x", "!!python/object:os.system"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!custom x", "!custom"),
        ("! x", "!"),
        ("!<tag:example.com,2026:thing> x", "tag:example.com,2026:thing"),
    ],
)
def test_tags_that_are_not_plain_json_are_refused_with_their_line(value: str, shown: str) -> None:
    found = problems(MINIMAL + f"data:\n  ok: 1\n  x: {value}\n")
    assert found == [
        f"bad.yaml:9: the tag {shown} is refused: chart values must be plain JSON "
        "(strings, numbers, booleans, null, lists, mappings)"
    ]


def test_plain_json_tags_are_accepted() -> None:
    text = MINIMAL + textwrap.dedent(
        """\
        data:
          s: !!str 12
          i: !!int "7"
          f: !!float "1.5"
          b: !!bool "true"
          n: !!null ""
          l: !!seq [1]
          m: !!map {k: v}
        """
    )
    assert dict(load(text).initial_data) == {
        "s": "12",
        "i": 7,
        "f": 1.5,
        "b": True,
        "n": None,
        "l": [1],
        "m": {"k": "v"},
    }


@pytest.mark.parametrize(
    "value", ["!!int abc", "!!bool maybe", "!!float x1", "!!int " + "9" * 5_000, "!!null [1]"]
)
def test_a_tagged_value_that_cannot_be_read_is_a_diagnostic_not_a_traceback(value: str) -> None:
    found = problems(MINIMAL + f"data:\n  x: {value}\n")
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:8: ")


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "1.0e+400", "!!float .nan"])
def test_nan_and_infinity_are_refused_as_not_json(value: str) -> None:
    found = problems(MINIMAL + f"data:\n  x: {value}\n")
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:8: ")
    assert "is not a JSON number: chart values must be plain JSON" in found[0]


def test_merge_keys_and_equals_signs_are_plain_strings_not_a_traceback() -> None:
    chart = load(MINIMAL + "data: {'<<': {a: 1}, x: =}\n")
    assert dict(chart.initial_data) == {"<<": {"a": 1}, "x": "="}
    found = problems(MINIMAL + "data:\n  base: &b {a: 1}\n  y: {<<: *b}\n  z: {<<: 1, <<: 2}\n")
    assert found == ["bad.yaml:10: duplicate key '<<'"]


def test_yaml_12_booleans_string_timestamps_and_duplicate_keys_still_hold() -> None:
    chart = load(MINIMAL + "data: {a: on, b: yes, c: true, d: 2026-01-01}\n")
    assert dict(chart.initial_data) == {"a": "on", "b": "yes", "c": True, "d": "2026-01-01"}
    assert problems(MINIMAL + "data: {a: 1, a: 2}\n") == ["bad.yaml:7: duplicate key 'a'"]


def test_complex_mapping_keys_are_refused_without_being_built() -> None:
    found = problems(MINIMAL + "data:\n  ? [a, b]\n  : 1\n")
    assert found == ["bad.yaml:8: mapping keys must be scalars"]


def test_parse_yaml_reports_every_refused_tag_at_once() -> None:
    doc, found = parse_yaml("a: !!binary eA==\nb: !x y\nc: [!!set {}]\n", "t.yaml")
    assert doc is None
    assert [d.line for d in found] == [1, 2, 3]


# -- 3. builder: semantic limits -------------------------------------------------------------


def test_states_at_the_state_depth_limit_load() -> None:
    chart = load(nested_states(16))
    assert max(path.count(".") + 1 for path in chart.states if path) == 16


def test_states_nested_deeper_than_state_depth_are_refused_at_the_line_of_the_state() -> None:
    found = problems(nested_states(17))
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:54: state 's0.s1.")
    assert found[0].endswith(
        "is nested 17 deep, deeper than the limit of 16 (OMNINODE_MAX_STATE_DEPTH)"
    )


def test_states_200_deep_get_a_diagnostic_not_a_recursion_error() -> None:
    # With the default limits the YAML depth stops it first ...
    assert problems(nested_states(200)) == [
        "bad.yaml:100: nested deeper than 64 levels (OMNINODE_MAX_YAML_DEPTH)"
    ]
    # ... and with a generous YAML depth, the state depth does (before the schema check).
    found = problems(nested_states(200), Limits(yaml_depth=1_000))
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:54: ")
    assert "(OMNINODE_MAX_STATE_DEPTH)" in found[0]


def test_a_yaml_depth_set_beyond_what_python_can_recurse_is_a_diagnostic() -> None:
    found = problems(nested_states(400), Limits(yaml_depth=100_000, state_depth=1_000))
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:1: ")
    assert "OMNINODE_MAX_YAML_DEPTH" in found[0]


AFTER = HEADER + textwrap.dedent(
    """\
    initial: a
    states:
      a:
        after:
          - delay: {delay}
            target: b
      b: {{}}
    """
)


def test_an_after_delay_over_delay_ms_is_refused_at_the_delay_line() -> None:
    found = problems(AFTER.format(delay="3000000d"))
    assert found == [
        "bad.yaml:8: delay 3000000d is longer than the maximum 3650d "
        "(OMNINODE_MAX_DELAY_MS=315360000000)"
    ]


def test_an_after_delay_at_the_limit_loads_and_zero_is_fine() -> None:
    assert load(AFTER.format(delay="3650d")).states["a"].after[0].delay_ms == 3650 * 86_400_000
    assert load(AFTER.format(delay="0ms")).states["a"].after[0].delay_ms == 0
    assert problems(AFTER.format(delay="2s"), Limits(delay_ms=1_000)) == [
        "bad.yaml:8: delay 2s is longer than the maximum 1s (OMNINODE_MAX_DELAY_MS=1000)"
    ]


def test_timeouts_and_retry_delays_over_delay_ms_are_refused_too() -> None:
    text = HEADER + textwrap.dedent(
        """\
        initial: a
        states:
          a:
            entry:
              effects:
                - name: call
                  timeout: 4000d
                  retry: {initial: 1s, max: 5000d}
        """
    )
    found = problems(text)
    assert found == [
        "bad.yaml:10: timeout 4000d is longer than the maximum 3650d "
        "(OMNINODE_MAX_DELAY_MS=315360000000)",
        "bad.yaml:11: max 5000d is longer than the maximum 3650d "
        "(OMNINODE_MAX_DELAY_MS=315360000000)",
    ]


def test_data_nested_deeper_than_json_depth_is_refused_at_the_data_line() -> None:
    text = MINIMAL + "data: {x: " + "[" * 40 + "]" * 40 + "}\n"
    found = problems(text)
    assert found == [
        "bad.yaml:7: data must be plain JSON: nested deeper than 32 levels at x"
        + "[0]" * 31
        + " (OMNINODE_MAX_JSON_DEPTH)"
    ]
    assert load(MINIMAL + "data: {x: " + "[" * 31 + "]" * 31 + "}\n").initial_data


def test_a_schema_that_refers_to_itself_without_end_is_a_load_diagnostic() -> None:
    found = problems(MINIMAL + "data_schema: {$ref: '#'}\nevents: {GO: {allOf: [$ref: '#']}}\n")
    assert found == [
        "bad.yaml:7: invalid JSON Schema: the schema refers to itself without end (a $ref loop)",
        "bad.yaml:8: invalid JSON Schema: the schema refers to itself without end (a $ref loop)",
    ]


def test_a_schema_loop_only_some_data_reaches_fails_the_step_not_the_worker() -> None:
    text = HEADER + textwrap.dedent(
        """\
        data_schema:
          if: {required: [loop]}
          then: {$ref: '#'}
        initial: a
        states:
          a:
            on:
              GO: {assign: {loop: "1"}}
        """
    )
    driver = Driver(load(text))
    assert driver.send("$start").snapshot.status == "active"  # type: ignore[union-attr]
    result = driver.send("GO")
    assert result.trace.outcome == "failed"
    assert "refers to itself without end" in (result.trace.reason or "")


# -- 4. the reducer never raises on a chart the loader accepted ------------------------------


def test_a_timer_deadline_past_year_9999_fails_the_instance_instead_of_raising() -> None:
    driver = Driver(load(AFTER.format(delay="3650d")), now="9995-06-01T00:00:00Z")
    result = driver.send("$start")
    assert result.trace.outcome == "failed"
    assert result.trace.reason == (
        "timer deadline of $after.a.0 (3650d after 9995-06-01T00:00:00Z) is past year 9999"
    )


GUARDED_ALWAYS = HEADER + textwrap.dedent(
    """\
    data: {{n: 0}}
    initial: a
    states:
      a:
        always:
    {guards}
          - when: "data.n < 100000"
            assign: {{n: "data.n + 1"}}
    """
)


def test_3000_guarded_always_transitions_fail_the_step_quickly_at_the_evaluation_budget() -> None:
    guards = "\n".join(f'      - when: "data.n < -{i}"\n        target: a' for i in range(3_000))
    chart = load(GUARDED_ALWAYS.format(guards=guards))
    began = time.perf_counter()
    result = Driver(chart).send("$start")
    assert time.perf_counter() - began < 2.0
    assert result.trace.outcome == "failed"
    assert result.trace.reason == (
        "more than 10000 guard/when evaluations in one step (OMNINODE_MAX_EVALUATIONS_PER_STEP)"
    )


def test_the_evaluation_budget_is_per_step_and_counts_named_guards() -> None:
    registry = GuardRegistry()
    registry.register("yes", lambda data, event: True)
    text = HEADER + textwrap.dedent(
        """\
        initial: a
        states:
          a:
            on:
              GO:
                - {when: "false", target: b}
                - {guard: "yes", target: b}
          b:
            on:
              GO:
                - {when: "false", target: a}
                - {when: "false", target: a}
                - {guard: "yes", target: a}
        """
    )
    chart = load_chart(text, "ok.yaml", registry, Limits(evaluations_per_step=2))
    driver = Driver(chart)
    driver.send("$start")
    assert driver.send("GO").trace.outcome == "applied"  # 2 evaluations: within budget
    failed = driver.send("GO")  # 3 evaluations in this step: over
    assert failed.trace.outcome == "failed"
    assert failed.trace.reason == (
        "more than 2 guard/when evaluations in one step (OMNINODE_MAX_EVALUATIONS_PER_STEP)"
    )


def test_an_assignment_nested_deeper_than_json_depth_fails_the_step() -> None:
    text = MINIMAL.replace("  a: {}", '  a:\n    on:\n      GO: {assign: {x: "[[[[1]]]]"}}')
    for depth, outcome in ((4, "applied"), (3, "failed")):
        driver = Driver(load(text, Limits(json_depth=depth)))
        driver.send("$start")
        result = driver.send("GO")
        assert result.trace.outcome == outcome
    assert result.trace.reason == (
        "assign x: result is nested deeper than 3 levels (OMNINODE_MAX_JSON_DEPTH)"
    )


def test_a_payload_too_deep_to_copy_is_rejected_before_an_assignment_sees_it() -> None:
    text = MINIMAL.replace("  a: {}", '  a:\n    on:\n      GO: {assign: {x: "event.payload"}}')
    driver = Driver(load(text))
    started = driver.send("$start").snapshot
    deep: Any = 1
    for _ in range(2_000):
        deep = [deep]
    result = driver.send("GO", {"deep": deep})
    assert result.trace.outcome == "rejected" and result.snapshot == started
    assert "nested deeper than 32 levels" in (result.trace.reason or "")


def test_a_dispatch_input_nested_deeper_than_json_depth_fails_the_step() -> None:
    text = MINIMAL.replace(
        "  a: {}",
        '  a:\n    on:\n      GO: {effects: [{name: send, input: {x: "[[[1]]]"}}]}',
    )
    driver = Driver(load(text, Limits(json_depth=2)))
    driver.send("$start")
    result = driver.send("GO")
    assert result.trace.outcome == "failed"
    assert result.trace.reason == (
        "effect send input.x: result is nested deeper than 2 levels (OMNINODE_MAX_JSON_DEPTH)"
    )


class _Str(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        ("s", "s"),
        (1.5, 1.5),
        ((1, (2,)), [1, [2]]),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
        ([[[1]]], [[[1]]]),
        (_Str("x"), "x"),
    ],
)
def test_to_json_value_returns_plain_json_within_the_depth(value: Any, expected: Any) -> None:
    assert to_json_value(value, "w", 3) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([[[[1]]]], "w: result is nested deeper than 3 levels (OMNINODE_MAX_JSON_DEPTH)"),
        ({"a": {"b": {"c": {}}}}, "w: result is nested deeper than 3 levels"),
        (math.nan, "w: result nan is not a JSON number"),
        ([math.inf], "w: result inf is not a JSON number"),
        ({1: "x"}, "w: map keys must be strings to be stored as JSON"),
        (b"x", "w: result of type bytes is not JSON"),
        ([{1, 2}], "w: result of type set is not JSON"),
    ],
)
def test_to_json_value_refuses_what_is_not_json_within_the_depth(value: Any, reason: str) -> None:
    with pytest.raises(StepFailure) as caught:
        to_json_value(value, "w", 3)
    assert str(caught.value).startswith(reason)


def test_to_json_value_refuses_a_value_far_deeper_than_the_limit_without_recursing() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(StepFailure, match="nested deeper than 32 levels"):
        to_json_value(deep, "w")
