"""The chart drawn as SVG (app.core.chart_svg): well-formed XML, one group per state with its
path, the active states and their ancestors marked, text escaped, the same bytes every time,
and bounded in size and time."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from app.core.chart_svg import MAX_STATES, render_svg
from app.core.model import Chart
from app.infra.chart_files import import_handlers, read_chart
from tests.conftest import ROOT
from tests.helpers import chart

SVG = "{http://www.w3.org/2000/svg}"
EXAMPLES = sorted((ROOT / "rss").glob("*.yaml"))


@pytest.fixture(scope="module")
def examples() -> dict[str, Chart]:
    import_handlers([str(ROOT / "rss" / "handlers.py")])  # the charts' guards
    return {path.stem: read_chart(path) for path in EXAMPLES}


def groups(svg: str) -> dict[str, ET.Element]:
    """data-state -> its group, failing on a state drawn twice."""
    found: dict[str, ET.Element] = {}
    for element in ET.fromstring(svg).iter(f"{SVG}g"):
        path = element.get("data-state")
        if path is not None:
            assert path not in found, f"{path} drawn twice"
            found[path] = element
    return found


def active(svg: str) -> set[str]:
    return {p for p, g in groups(svg).items() if "active" in (g.get("class") or "").split()}


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_every_state_of_each_example_is_drawn_once_with_its_path(
    examples: dict[str, Chart], name: str
) -> None:
    example = examples[name]
    svg = render_svg(example)
    assert set(groups(svg)) == set(example.states) - {""}
    assert active(svg) == set()
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert int(root.get("width") or 0) > 0


def test_a_nested_state_is_drawn_inside_its_parent_group(examples: dict[str, Chart]) -> None:
    found = groups(render_svg(examples["order_fulfillment"]))
    inner = {g.get("data-state") for g in found["fulfilment"].iter(f"{SVG}g")}
    assert "fulfilment.packing.picking" in inner
    assert "shipping" not in inner


def test_active_states_and_their_ancestors_are_marked(examples: dict[str, Chart]) -> None:
    order = examples["order_fulfillment"]
    svg = render_svg(
        order, frozenset({"fulfilment.packing.picking", "fulfilment.invoicing.invoiced"})
    )
    assert active(svg) == {
        "fulfilment",
        "fulfilment.packing",
        "fulfilment.packing.picking",
        "fulfilment.invoicing",
        "fulfilment.invoicing.invoiced",
    }
    leaf = groups(svg)["fulfilment.packing.picking"].find(f"{SVG}rect")
    idle = groups(svg)["fulfilment.packing.reserving"].find(f"{SVG}rect")
    assert leaf is not None and idle is not None
    assert leaf.get("fill") != idle.get("fill")
    assert leaf.get("stroke") != idle.get("stroke")


def test_unknown_active_paths_are_ignored(examples: dict[str, Chart]) -> None:
    order = examples["order_fulfillment"]
    svg = render_svg(order, frozenset({"nowhere", "", "shipped"}))
    assert active(svg) == {"shipped"}


ESCAPES = """\
    rss: 1
    workflow: escapes
    version: 1
    description: "<script>alert('x')</script> & more"
    events:
      GO: {}
    initial: a
    states:
      a:
        on:
          GO:
            - when: "data.n < 3 && data.s != \\"<b>\\""
              target: b
            - target: a
      b: {type: final}
"""


def test_text_is_escaped() -> None:
    svg = render_svg(chart(ESCAPES))
    assert "<script" not in svg and "<b>" not in svg
    assert any('data.n < 3 && data.s != "<b>"' in text for text in texts(svg))
    assert "GO → self" in " ".join(texts(svg)).replace("↻ ", "")


def test_rendering_is_deterministic(examples: dict[str, Chart]) -> None:
    order = examples["order_fulfillment"]
    lit = frozenset({"shipping"})
    first = render_svg(order, lit)
    assert render_svg(order, lit) == first
    again = read_chart(ROOT / "rss" / "order_fulfillment.yaml")
    assert render_svg(again, lit) == first


def test_parallel_regions_dashed_finals_doubled_initial_markers(
    examples: dict[str, Chart],
) -> None:
    order = examples["order_fulfillment"]
    svg = render_svg(order)
    found = groups(svg)
    region = found["fulfilment.packing"].find(f"{SVG}rect")
    assert region is not None and region.get("stroke-dasharray")
    assert len(found["shipped"].findall(f"{SVG}rect")) == 2
    assert len(found["charging"].findall(f"{SVG}rect")) == 1
    containers = [n for n in order.states.values() if n.initial is not None]
    markers = [c for c in ET.fromstring(svg).iter(f"{SVG}circle") if c.get("class") == "initial"]
    assert len(markers) == len(containers) == 3  # the root, packing, invoicing


def test_transitions_are_arrows_with_labels_and_notes(examples: dict[str, Chart]) -> None:
    svg = render_svg(examples["order_fulfillment"])
    lines = [
        (line.get("data-source"), line.get("data-target"))
        for line in ET.fromstring(svg).iter(f"{SVG}line")
        if line.get("class") == "transition"
    ]
    assert ("charging", "fulfilment") in lines
    assert ("fulfilment.packing.reserving", "failed") in lines
    assert len(lines) == len(set(lines))  # one arrow per pair, its labels stacked
    words = texts(svg)
    assert "charge_card.done" in words
    assert "after 1d" in words
    assert "invoke ship → shipment (timeout 2h)" in words
    assert "entry / charge_card" in words
    assert "↻ PAY" in words  # the short payment: a transition with no target


def generated(states: int) -> str:
    """A chart with ``states`` atomic states in groups of ten, each group a compound state
    (every fifth one parallel with two regions), each state moving on to the next."""
    lines = ["rss: 1", "workflow: big", "version: 1", "initial: g0", "states:"]
    for g in range(states // 10):
        nxt = f"g{g + 1}" if (g + 1) * 10 < states else "end"
        if g % 5 == 4:
            lines += [f"  g{g}:", "    type: parallel", f"    on_done: {nxt}", "    states:"]
            for r in range(2):
                lines += [f"      r{r}:", "        initial: s0", "        states:"]
                for s in range(4):
                    target = f"s{s + 1}" if s < 3 else "f"
                    lines.append(f"          s{s}: {{on: {{E{s}_{g}_{r}: {target}}}}}")
                lines.append("          f: {type: final}")
            continue
        lines += [f"  g{g}:", "    initial: s0", f"    on_done: {nxt}", "    states:"]
        for s in range(9):
            target = f"s{s + 1}" if s < 8 else "f"
            lines.append(f"      s{s}: {{on: {{EVENT_{g}_{s}: {target}, BACK_{g}_{s}: s0}}}}")
        lines.append("      f: {type: final}")
    lines.append("  end: {type: final}")
    return "\n".join(lines) + "\n"


def test_a_large_chart_renders_in_bounded_size_and_time() -> None:
    big = chart(generated(600))
    assert 600 < len(big.states) <= MAX_STATES
    started = time.perf_counter()
    svg = render_svg(big, frozenset({"g3.s4"}))
    elapsed = time.perf_counter() - started
    print(f"{len(big.states) - 1} states: {len(svg)} bytes in {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0
    assert len(svg) < 2_000_000
    assert set(groups(svg)) == set(big.states) - {""}
    assert active(svg) == {"g3", "g3.s4"}


def test_a_chart_over_the_limit_is_refused_with_a_small_drawing() -> None:
    huge = chart(generated(MAX_STATES + 10))
    svg = render_svg(huge)
    assert len(svg) < 1_000
    assert groups(svg) == {}
    assert any("over the" in text for text in texts(svg))


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_edge_labels_of_the_examples_do_not_overlap(examples: dict[str, Chart], name: str) -> None:
    svg = ET.fromstring(render_svg(examples[name]))
    rects = [
        tuple(float(r.get(k) or 0) for k in ("x", "y", "width", "height"))
        for r in svg.iter(f"{SVG}rect")
        if r.get("class") == "label"
    ]
    assert rects
    for i, (x, y, w, h) in enumerate(rects):
        for a, b, c, d in rects[i + 1 :]:
            assert not (x < a + c and a < x + w and y < b + d and b < y + h), (x, y, a, b)


def test_a_densely_connected_chart_renders_in_bounded_time() -> None:
    """Every state to every other: 1,560 arrows, each label looking for a free spot."""
    lines = ["rss: 1", "workflow: dense", "version: 1", "initial: s0", "states:"]
    for i in range(40):
        on = ", ".join(f"E{i}_{j}: s{j}" for j in range(40) if j != i)
        lines.append(f"  s{i}: {{on: {{{on}}}}}")
    dense = chart("\n".join(lines) + "\n")
    started = time.perf_counter()
    svg = render_svg(dense)
    elapsed = time.perf_counter() - started
    print(f"40 states, 1560 arrows: {len(svg)} bytes in {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0
    assert len(svg) < 2_000_000
