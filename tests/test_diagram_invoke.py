"""Diagrams of RSS v1.1 charts: a state's ``invoke`` list beside the state (a Mermaid note, a
DOT label line) and ``raise`` actions on edge labels, where effects are drawn."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.cli.main import main
from app.core.diagram import edge_label, invoke_label, to_dot, to_mermaid
from tests.helpers import chart

# No cross-chart check here: a diagram draws one chart, whatever it invokes.
ORDER = """\
    rss: 1
    workflow: order
    version: 1
    initial: working
    states:
      working:
        initial: shipping
        invoke:
          - {name: audit, workflow: auditing}
        states:
          shipping:
            invoke:
              - {name: ship, workflow: shipment, version: 2, timeout: 2h}
              - {name: bill, workflow: billing}
            on:
              ship.done:
                target: shipped
                raise: [SHIPPED, {event: NOTIFY, payload: {who: "'ops'"}}]
                effects: [{name: mail, mode: fire_and_forget}]
              bill.failed: {target: shipped, raise: [UNPAID]}
          shipped: {type: final}
        on_done: done
      done: {type: final}
"""


def test_invoke_label_names_the_child_its_pinned_version_and_timeout() -> None:
    specs = {spec.name: spec for _, spec in chart(ORDER).invocations()}
    assert invoke_label(specs["ship"]) == "invoke ship → shipment v2 (timeout 2h)"
    assert invoke_label(specs["bill"]) == "invoke bill → billing"
    assert invoke_label(specs["audit"]) == "invoke audit → auditing"


def test_raised_events_appear_on_edge_labels_before_the_effects() -> None:
    order = chart(ORDER)
    labels = sorted(edge_label(order, t) for t in order.transitions())
    assert labels == [
        "bill.failed / raise UNPAID",
        "done",
        "ship.done / raise SHIPPED, raise NOTIFY, mail (ff)",
    ]


def test_mermaid_puts_a_note_beside_each_invoking_state_at_its_own_level() -> None:
    text = to_mermaid(chart(ORDER))
    assert text == textwrap.dedent(
        """\
        stateDiagram-v2
            [*] --> working
            state "working" as working {
                [*] --> working__shipping
                state "shipping" as working__shipping
                note right of working__shipping
                    invoke ship → shipment v2 (timeout 2h)
                    invoke bill → billing
                end note
                state "shipped" as working__shipped
                working__shipped --> [*]
            }
            note right of working
                invoke audit → auditing
            end note
            state "done" as done
            done --> [*]
            working --> done : done
            working__shipping --> working__shipped : ship.done / raise SHIPPED, raise NOTIFY, mail (ff)
            working__shipping --> working__shipped : bill.failed / raise UNPAID
        """
    )


def test_dot_adds_a_label_line_per_invoke_to_states_and_clusters() -> None:
    text = to_dot(chart(ORDER))
    assert 'label="working\\ninvoke audit → auditing"; style=rounded;' in text
    assert (
        '"working.shipping" [label="shipping\\ninvoke ship → shipment v2 (timeout 2h)'
        '\\ninvoke bill → billing"];'
    ) in text
    assert '"working.shipped" [label="shipped", peripheries=2];' in text
    assert (
        '"working.shipping" -> "working.shipped" '
        '[label="ship.done / raise SHIPPED, raise NOTIFY, mail (ff)"];'
    ) in text


def test_charts_without_invoke_or_raise_draw_as_before() -> None:
    plain = chart(
        """\
        rss: 1
        workflow: plain
        version: 1
        initial: a
        states:
          a: {on: {GO: {target: b, effects: [{name: work}]}}}
          b: {type: final}
        """
    )
    assert "note" not in to_mermaid(plain)
    assert "a --> b : GO / work" in to_mermaid(plain)
    assert '"a" [label="a"];' in to_dot(plain)


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_omninode_diagram_draws_invokes_of_a_chart_whose_children_are_not_loaded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "order.yaml"
    path.write_text(textwrap.dedent(ORDER))
    code = main(["diagram", str(path), "--format", fmt])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "invoke ship → shipment v2 (timeout 2h)" in out
    assert "raise UNPAID" in out
