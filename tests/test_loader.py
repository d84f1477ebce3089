"""Counter-example charts: each must be rejected with its exact file:line and reason."""

from __future__ import annotations

import textwrap

import pytest

from app.core.errors import ChartError
from app.core.guards import GuardRegistry
from app.core.loader import load_chart

HEADER = "rss: 1\nworkflow: w\nversion: 1\n"


def errors(body: str, guards: GuardRegistry | None = None) -> list[str]:
    with pytest.raises(ChartError) as caught:
        load_chart(HEADER + textwrap.dedent(body), "bad.yaml", guards or GuardRegistry())
    return [str(d) for d in caught.value.diagnostics]


def test_unknown_key_is_reported_with_a_suggestion() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            entyr: {assign: {x: "1"}}
        """
    )
    assert found == ["bad.yaml:7: states.a: unknown key 'entyr' (did you mean 'entry'?)"]


def test_unknown_target_names_line_and_suggests_sibling() -> None:
    found = errors(
        """\
        initial: idle
        states:
          idle:
            on:
              GO: runing
          running: {}
        """
    )
    assert found == ["bad.yaml:8: unknown target 'runing' (did you mean 'running'?)"]


def test_unknown_absolute_target() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            on:
              GO: {target: "#b.d"}
          b:
            initial: c
            states:
              c: {}
        """
    )
    assert found == ["bad.yaml:8: unknown target '#b.d' (did you mean '#b.c'?)"]


def test_compound_state_without_initial() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            states:
              b: {}
        """
    )
    assert found == ["bad.yaml:6: state 'a' is compound but has no 'initial'"]


def test_bad_delay() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            after:
              - delay: 15 minutes
                target: b
          b: {}
        """
    )
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:8: bad duration '15 minutes'")


def test_cel_syntax_error_names_line_and_column() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            on:
              GO:
                when: "data.total >"
                target: b
          b: {}
        """
    )
    assert len(found) == 1
    assert found[0].startswith("bad.yaml:9: CEL syntax error in 'data.total >' at column 13")


def test_unknown_named_guard() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            on:
              GO: {guard: is_vip, target: b}
          b: {}
        """
    )
    assert found == [
        "bad.yaml:8: unknown guard 'is_vip': register it with @guard('is_vip') in a handlers "
        "module (registered: none)"
    ]


def test_known_named_guard_is_accepted() -> None:
    registry = GuardRegistry()
    registry.register("is_vip", lambda data, event: True)
    body = "initial: a\nstates:\n  a:\n    on:\n      GO: {guard: is_vip, target: b}\n  b: {}\n"
    assert load_chart(HEADER + body, "ok.yaml", registry).workflow == "w"


def test_unreachable_state() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            on: {GO: b}
          b: {}
          orphan: {}
        """
    )
    assert found == [
        "bad.yaml:9: state 'orphan' is unreachable: no transition, initial or region enters it"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workflow: w\nversion: 1\ninitial: a\nstates: {a: {}}\n",
            "bad.yaml:1: the document: missing required key: 'rss'",
        ),
        (
            "rss: 1\nworkflow: w\ninitial: a\nstates: {a: {}}\n",
            "bad.yaml:1: the document: missing required key: 'version'",
        ),
        (
            "rss: 2\nworkflow: w\nversion: 1\ninitial: a\nstates: {a: {}}\n",
            "bad.yaml:1: rss: unsupported language version 2 (this release reads rss: 1)",
        ),
        (
            "rss: 1\nworkflow: w\nversion: one\ninitial: a\nstates: {a: {}}\n",
            "bad.yaml:3: version: 'one' is not of type 'integer'",
        ),
    ],
)
def test_header_errors(text: str, expected: str) -> None:
    with pytest.raises(ChartError) as caught:
        load_chart(text, "bad.yaml", GuardRegistry())
    assert expected in [str(d) for d in caught.value.diagnostics]


def test_yaml_syntax_error_and_duplicate_keys() -> None:
    with pytest.raises(ChartError) as caught:
        load_chart(HEADER + "initial: a\nstates:\n  a: {}\n  a: {}\n", "dup.yaml", GuardRegistry())
    assert [str(d) for d in caught.value.diagnostics] == ["dup.yaml:7: duplicate key 'a'"]
    with pytest.raises(ChartError) as caught:
        load_chart(HEADER + "initial: a\nstates:\n  a: {on: [\n", "syn.yaml", GuardRegistry())
    assert str(caught.value.diagnostics[0]).startswith("syn.yaml:")
    assert "YAML syntax error" in str(caught.value.diagnostics[0])


def test_on_key_is_not_read_as_a_boolean() -> None:
    """YAML 1.1 reads a bare `on` as true; the loader must keep it as the keyword."""
    body = "initial: a\nstates:\n  a:\n    on: {GO: b}\n  b: {}\n"
    loaded = load_chart(HEADER + body, "ok.yaml", GuardRegistry())
    assert "GO" in loaded.state("a").transitions


def test_several_errors_are_all_reported_in_line_order() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            on:
              GO: nowhere
              STOP: {target: a, when: "(("}
          b:
            after: [{delay: soon, target: a}]
        """
    )
    assert [line.split(":")[1] for line in found] == ["8", "9", "11"]


def test_result_event_for_unknown_dispatch_and_undeclared_event() -> None:
    found = errors(
        """\
        events:
          GO: {}
        initial: a
        states:
          a:
            entry: {effects: [charge_card]}
            on:
              chage_card.done: b
              GOO: b
          b: {}
        """
    )
    assert found == [
        "bad.yaml:11: 'chage_card.done' is a result event, but no effect, compute or invoke is named "
        "'chage_card' (did you mean 'charge_card'?)",
        "bad.yaml:12: event 'GOO' is not declared under 'events' (did you mean 'GO'?)",
    ]


def test_targets_in_the_same_region_are_rejected() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            on:
              GO: {target: ["#p.x", "#p.y"]}
          p:
            initial: x
            states:
              x: {}
              y: {}
        """
    )
    assert found == [
        "bad.yaml:8: targets 'p.x' and 'p.y' cannot be active together: they are not in "
        "different regions of a parallel state"
    ]


def test_compensate_requires_an_awaited_effect() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            entry:
              effects: [{name: mail, mode: fire_and_forget, compensate: unmail}]
              computes: [{name: price, compensate: unprice}]
        """
    )
    assert found == [
        "bad.yaml:8: effect 'mail': compensate needs mode: await (a fire_and_forget effect "
        "never reports completion)",
        "bad.yaml:9: compute 'price': only effects compensate",
    ]


def test_misplaced_keys_on_special_states() -> None:
    found = errors(
        """\
        initial: a
        states:
          a:
            initial: x
            states:
              x:
                type: final
                status: failed
                on: {GO: "#a"}
              h: {type: history, history: deep, entry: {assign: {x: "1"}}}
        """
    )
    assert found == [
        "bad.yaml:11: state 'a.x': 'status' only applies to top-level final states",
        "bad.yaml:12: state 'a.x': a final state cannot have 'on'",
        "bad.yaml:13: state 'a.h': a history state cannot have entry/exit actions",
    ]
