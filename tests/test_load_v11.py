"""Load-time rules of RSS v1.1: every problem is a diagnostic with the file and the line of
the offending item (``raise`` names, ``in_state`` paths, ``output`` placement, ``invoke``
names), and the cross-chart checks of :func:`check_invocations`."""

from __future__ import annotations

import textwrap

import pytest

from app.core.composition_build import check_invocations
from app.core.errors import ChartError, Diagnostic
from app.core.expressions import compile_expr
from app.core.loader import load_chart
from app.core.model import Chart

FILE = "v11.yaml"


def problems(text: str) -> list[tuple[int, str]]:
    """The (line, message) of every diagnostic ``text`` is refused with."""
    with pytest.raises(ChartError) as refused:
        load_chart(textwrap.dedent(text), FILE)
    assert all(d.file == FILE for d in refused.value.diagnostics)
    return [(d.line, d.message) for d in refused.value.diagnostics]


def load(text: str, file: str = FILE) -> Chart:
    return load_chart(textwrap.dedent(text), file)


# -- raise -----------------------------------------------------------------------------------


def test_a_raised_dollar_name_is_an_error_on_its_line() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            entry:
              raise:
                - OK
                - $done.a
                - {event: $start}
            on: {OK: a}
        """
    )
    assert found == [
        (10, "raise '$done.a': a raised event may not use a '$' name"),
        (11, "raise '$start': a raised event may not use a '$' name"),
    ]


def test_a_raised_result_name_of_an_effect_or_invoke_is_an_error_on_its_line() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            invoke:
              - {name: ship, workflow: child}
            on:
              GO:
                effects: [{name: work}]
                raise:
                  - work.done
                  - ship.timeout
                  - {event: ship.failed}
                  - ship.started
        """
    )
    assert found == [
        (13, "raise 'work.done': a raised event may not be a result event"),
        (14, "raise 'ship.timeout': a raised event may not be a result event"),
        (15, "raise 'ship.failed': a raised event may not be a result event"),
    ]


def test_a_raised_name_that_only_looks_like_a_result_loads() -> None:
    """``other.done`` names no effect, compute or invoke of the chart: an ordinary name."""
    loaded = load(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            entry: {raise: [other.done, {event: X, payload: {n: "1 + 1"}}]}
        """
    )
    raises = loaded.states["a"].entry.raises
    assert [(r.event, r.line) for r in raises] == [("other.done", 7), ("X", 7)]
    assert [key for key, _ in raises[1].payload] == ["n"]


# -- in_state --------------------------------------------------------------------------------


def test_in_state_of_an_unknown_path_is_an_error_on_its_line_wherever_it_is() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            initial: b
            states: {b: {}}
            entry:
              raise: [{event: X, payload: {v: 'in_state("a.c")'}}]
            on:
              GO:
                when: 'in_state("nope")'
                target: a
              SET:
                assign: {ok: 'in_state("a.b")', bad: 'in_state("b")'}
            invoke:
              - {name: kid, workflow: child, input: {flag: 'in_state("a.x")'}}
        """
    )
    assert found == [
        (10, "in_state('a.c'): no state 'a.c' in this chart"),
        (13, "in_state('nope'): no state 'nope' in this chart"),
        (16, "in_state('b'): no state 'b' in this chart"),
        (18, "in_state('a.x'): no state 'a.x' in this chart"),
    ]


@pytest.mark.parametrize(
    "expr",
    ["in_state(data.path)", "in_state('a' + '.b')", "in_state()", "in_state('a', 'b')"],
)
def test_in_state_with_anything_but_one_string_literal_is_an_error_on_its_line(
    expr: str,
) -> None:
    found = problems(
        f"""\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            on:
              GO:
                target: a
                when: "{expr}"
        """
    )
    assert len(found) == 1
    line, message = found[0]
    assert line == 10
    assert message.startswith(f"in_state() in {expr!r} takes one string literal")


def test_in_state_paths_of_a_loaded_chart_are_kept_on_the_expression() -> None:
    loaded = load(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: p
        states:
          p:
            type: parallel
            states:
              r1: {initial: x, states: {x: {}}}
              r2:
                initial: y
                states:
                  y:
                    on:
                      GO: {when: 'in_state("p.r1.x") && !in_state("p")', target: y}
        """
    )
    (transition,) = loaded.states["p.r2.y"].transitions["GO"]
    assert transition.when is not None
    assert transition.when.state_paths == ("p.r1.x", "p")


# -- output ----------------------------------------------------------------------------------


def test_output_only_on_top_level_final_states() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            output: {x: "1"}
            on: {GO: c}
          c:
            initial: d
            states:
              d: {type: final, output: {x: "2"}}
          e: {type: final, output: {x: "data.n"}}
        """
    )
    assert found == [
        (7, "state 'a': 'output' only applies to top-level final states"),
        (12, "state 'c.d': 'output' only applies to top-level final states"),
    ]


def test_output_of_a_top_level_final_state_is_compiled_per_key() -> None:
    loaded = load(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a: {on: {GO: e}}
          e:
            type: final
            output: {total: "data.n + 1", label: "'x'"}
        """
    )
    output = loaded.states["e"].output
    assert output is not None
    assert [(key, expr.source, expr.line) for key, expr in output] == [
        ("total", "data.n + 1", 9),
        ("label", "'x'", 9),
    ]


# -- invoke ----------------------------------------------------------------------------------


def test_an_invoke_name_clashing_with_an_effect_compute_or_invoke_is_an_error() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            entry:
              effects: [{name: work}]
              computes: [{name: score}]
            invoke:
              - name: work
                workflow: child
              - name: score
                workflow: child
              - name: kid
                workflow: child
            on: {GO: b}
          b:
            invoke:
              - {name: kid, workflow: child}
        """
    )
    assert found == [
        (11, "invoke name 'work' is already used by an effect, compute or invoke"),
        (13, "invoke name 'score' is already used by an effect, compute or invoke"),
        (20, "invoke name 'kid' is already used by an effect, compute or invoke"),
    ]


def test_a_final_state_cannot_invoke() -> None:
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a: {on: {GO: e}}
          e:
            type: final
            invoke: [{name: kid, workflow: child}]
        """
    )
    assert found == [(9, "state 'e': a final state cannot invoke")]


def test_result_events_of_an_invoke_are_known_result_names() -> None:
    """``ship.done|failed|timeout`` may be handled once ``ship`` is an invoke; ``ghost.done``
    still names nothing."""
    found = problems(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            invoke: [{name: ship, workflow: child, timeout: 1h}]
            on:
              ship.done: b
              ship.failed: b
              ship.timeout: b
              ghost.done: b
          b: {}
        """
    )
    assert len(found) == 1
    line, message = found[0]
    assert line == 12
    assert message.startswith("'ghost.done' is a result event, but no effect")
    assert "is named 'ghost'" in message


def test_invoke_fields_are_built_with_their_line() -> None:
    loaded = load(
        """\
        rss: 1
        workflow: w
        version: 1
        initial: a
        states:
          a:
            invoke:
              - name: ship
                workflow: child
                version: 2
                input: {order: "data.order"}
                id: "data.order + '-ship'"
                timeout: 2h
              - {name: bill, workflow: billing}
        """
    )
    ship, bill = loaded.states["a"].invoke
    assert (ship.name, ship.workflow, ship.version, ship.timeout_ms, ship.line) == (
        "ship",
        "child",
        2,
        7_200_000,
        8,
    )
    assert ship.input is not None and [k for k, _ in ship.input] == ["order"]
    assert ship.id is not None and ship.id.source == "data.order + '-ship'"
    assert (bill.version, bill.input, bill.id, bill.timeout_ms, bill.line) == (
        None,
        None,
        None,
        None,
        14,
    )
    assert {"ship", "bill"} <= loaded.dispatch_names


# -- cross-chart checks ----------------------------------------------------------------------

PARENT = """\
rss: 1
workflow: parent
version: 1
initial: a
states:
  a:
    invoke:
      - {name: ship, workflow: shipment, version: 2}
    on: {GO: b}
  b:
    invoke:
      - name: bill
        workflow: billing
"""

SHIPMENT = """\
rss: 1
workflow: shipment
version: {version}
initial: a
states:
  a: {{}}
"""


def test_check_invocations_names_an_unloaded_workflow_and_an_unloaded_version() -> None:
    parent = load(PARENT, "parent.yaml")
    shipment_v1 = load(SHIPMENT.format(version=1), "shipment1.yaml")
    shipment_v3 = load(SHIPMENT.format(version=3), "shipment3.yaml")
    assert check_invocations([parent, shipment_v1, shipment_v3]) == [
        Diagnostic(
            "parent.yaml",
            8,
            "state 'a' invokes 'shipment' version 2, which is not loaded (loaded versions: 1, 3)",
        ),
        Diagnostic(
            "parent.yaml",
            12,
            "state 'b' invokes workflow 'billing', which is not among the charts loaded "
            "together (loaded: parent, shipment)",
        ),
    ]


def test_check_invocations_is_quiet_when_every_invoked_chart_is_loaded() -> None:
    parent = load(PARENT, "parent.yaml")
    shipment_v2 = load(SHIPMENT.format(version=2), "shipment2.yaml")
    billing = load(SHIPMENT.format(version=1).replace("shipment", "billing"), "billing.yaml")
    assert check_invocations([parent, shipment_v2, billing]) == []
    assert str(check_invocations([parent])[0]).startswith("parent.yaml:8: state 'a' invokes")


def test_in_state_text_inside_a_string_literal_is_not_a_call() -> None:
    assert compile_expr("data.note != 'in_state(a)'", 1).state_paths == ()
    assert compile_expr("data.s == 'x' && in_state(\"q.r\")", 1).state_paths == ("q.r",)
