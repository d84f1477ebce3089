"""The web console in real headless Chromium, served by a worker on a real broker.

One worker (with the HTTP API on its own port) runs an order into a known state: paid, so
charged, its stock reserved and its invoice priced, waiting in ``fulfilment.packing.picking``
and ``fulfilment.invoicing.invoiced``. The instance page, opened in Chromium driven by
Playwright (the system's ``chromium``: no browser download), shows that state highlighted
on the chart (the state's ``<g data-state>`` has the class ``active``, and so do its
ancestors) and every journal record in its timeline. A screenshot is written to
``test-artifacts/console-instance.png`` (or ``$CONSOLE_SCREENSHOT``) and its path printed.

Skipped only where no Chromium executable is found (``CHROMIUM_PATH``, else ``chromium``
or ``chromium-browser`` on the PATH). The static checks at the end need neither.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Deployment
from tests.helpers import until

CONSOLE = ROOT / "app" / "infra" / "web" / "console"
WORKFLOW = "order_fulfillment"
INSTANCE = "web-order-1"
WAITING = ["fulfilment.invoicing.invoiced", "fulfilment.packing.picking"]
ARTIFACT = ROOT / "test-artifacts" / "console-instance.png"


def chromium() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError:  # not listening yet
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def waiting_instance(api: str) -> dict[str, Any]:
    """Start the order and pay it; return its snapshot once it waits for PICKED."""
    base = f"{api}/api/instances/{WORKFLOW}/{INSTANCE}"
    start = {"order_id": INSTANCE, "total": 40, "items": ["book", "lamp"]}
    assert call(base, "POST", start)[0] == 202
    assert until(lambda: call(base)[0] == 200)
    assert call(f"{base}/events/PAY", "POST", {"amount": 15})[0] == 202  # short: stays
    assert call(f"{base}/events/PAY", "POST", {"amount": 40})[0] == 202

    def settled() -> dict[str, Any] | None:
        status, body = call(base)
        waiting = status == 200 and sorted(body["configuration"]) == WAITING
        return body if waiting and not body["pending"] else None

    snapshot = until(settled)
    assert snapshot, call(base)
    return snapshot  # type: ignore[no-any-return]


@pytest.mark.kafka
def test_instance_page_highlights_the_current_states_and_lists_the_journal(
    deployment: Deployment,
) -> None:
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium executable: set CHROMIUM_PATH or apt-get install chromium")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only with a browser

    worker = deployment.worker("console")
    worker.wait_ready()
    api = worker.api_url
    assert until(lambda: call(api + "/readyz")[0] == 200), deployment.logs()
    snapshot = waiting_instance(api)
    history_url = f"{api}/api/instances/{WORKFLOW}/{INSTANCE}/history"

    def indexed() -> list[dict[str, Any]] | None:  # the projector keeps up with the reducer
        status, body = call(history_url)
        return body["records"] if status == 200 and body["seq"] >= snapshot["seq"] else None

    records = until(indexed)
    assert records, call(history_url)
    journal = [(r["seq"], r["event"]["type"]) for r in records]
    assert len(journal) == snapshot["seq"] >= 6

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(request.url))
            page.goto(f"{api}/#/instances/{WORKFLOW}/{INSTANCE}")
            shown = _check_page(page, journal)
            _screenshot(page)
            _check_other_views(page, api)
            _send_from_the_page(page, api, len(journal))
        finally:
            browser.close()
    assert problems == []
    assert shown["active"] == {
        "fulfilment",
        "fulfilment.packing",
        "fulfilment.packing.picking",
        "fulfilment.invoicing",
        "fulfilment.invoicing.invoiced",
    }


def _check_page(page: Any, journal: list[tuple[int, str]]) -> dict[str, Any]:
    for state in WAITING:
        page.wait_for_selector(f'svg g.active[data-state="{state}"]', timeout=20_000)
    page.wait_for_selector(f'ol.timeline li[data-seq="{journal[0][0]}"]', timeout=20_000)
    active = page.eval_on_selector_all(
        "svg g.state.active", "groups => groups.map(g => g.dataset.state)"
    )
    idle = page.eval_on_selector_all(
        "svg g.state:not(.active)", "groups => groups.map(g => g.dataset.state)"
    )
    assert "awaiting_payment" in idle and "shipping" in idle
    rows = page.eval_on_selector_all(
        "ol.timeline li",
        "items => items.map(li => [Number(li.dataset.seq),"
        " li.querySelector('.event').textContent])",
    )
    assert sorted((seq, kind) for seq, kind in rows) == journal  # every record, once
    assert [seq for seq, _ in rows] == sorted((seq for seq, _ in rows), reverse=True)
    timeline = page.inner_text("ol.timeline")
    assert "fulfilment.packing.picking" in timeline  # the states a record left it in
    facts = page.inner_text("#p-status + *")
    assert "active" in facts and "fulfilment.packing.picking" in facts
    return {"active": set(active)}


def _check_other_views(page: Any, api: str) -> None:
    """The list, the workflows and the dead letters answer from the same worker."""
    page.goto(f"{api}/#/instances?workflow={WORKFLOW}&state=fulfilment")
    page.wait_for_selector(f'a[href="#/instances/{WORKFLOW}/{INSTANCE}"]', timeout=10_000)
    page.goto(f"{api}/#/workflows")
    page.wait_for_selector('a[href*="state=fulfilment.packing.picking"]', timeout=10_000)
    page.goto(f"{api}/#/deadletters")
    page.wait_for_selector("text=No dead letters.", timeout=10_000)


def _send_from_the_page(page: Any, api: str, records: int) -> None:
    """The page's POSTs pass the API's checks against other sites (their Origin is the
    page's, their Content-Type JSON): an undeclared type is the API's 400, shown; a PAY
    (which the paid order ignores) submitted twice at once is sent once, with one
    Idempotency-Key as its event id, and the button is back once the answer is in."""
    page.goto(f"{api}/#/instances/{WORKFLOW}/{INSTANCE}")
    form = page.locator('form[aria-label="Send an event"]')
    form.locator('input[name="type"]').fill("NOT_DECLARED")
    form.locator('button[type="submit"]').click()
    page.wait_for_selector("text=declares its events", timeout=10_000)
    form.locator('input[name="type"]').fill("PAY")
    form.locator('textarea[name="payload"]').fill('{"amount": 1}')
    form.evaluate("f => { f.requestSubmit(); f.requestSubmit(); }")  # a double submit
    page.wait_for_selector("text=202 Accepted: PAY is on its way.", timeout=10_000)
    assert form.locator('button[type="submit"]').is_enabled()
    history_url = f"{api}/api/instances/{WORKFLOW}/{INSTANCE}/history?from_seq={records + 1}"

    def added() -> list[dict[str, Any]] | None:
        status, body = call(history_url)
        return body["records"] if status == 200 and body["records"] else None

    new = until(added)
    assert new, call(history_url)
    time.sleep(1.0)  # a second event, were one sent, would be journaled by now
    _, body = call(history_url)
    (record,) = body["records"]
    assert record["event"]["type"] == "PAY"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        record["event"]["event_id"],
    )


def _screenshot(page: Any) -> None:
    target = Path(os.environ.get("CONSOLE_SCREENSHOT", ARTIFACT))
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    print(f"console screenshot: {target}")


# -- static checks: the console works offline and its files are all there -------------------

URL = re.compile(r"""\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
IMPORT = re.compile(r"""^import\s.*?from\s+["'](.+?)["'];$""", re.MULTILINE | re.DOTALL)
LINKED = re.compile(r"""(?:src|href)="(console/[^"]+)\"""")


def test_the_console_loads_nothing_from_elsewhere() -> None:
    for path in sorted(CONSOLE.iterdir()):
        text = path.read_text(encoding="utf-8")
        found = [m for m in URL.findall(text) if m != "http://www.w3.org"]  # a namespace
        assert found == [], f"{path.name} names another origin: {found}"


def test_every_file_the_console_names_is_in_its_folder() -> None:
    page = (CONSOLE / "index.html").read_text(encoding="utf-8")
    linked = LINKED.findall(page)
    assert "console/console.js" in linked and "console/console.css" in linked
    for name in linked:
        assert (CONSOLE / name.removeprefix("console/")).is_file(), name
    for script in CONSOLE.glob("*.js"):
        for module in IMPORT.findall(script.read_text(encoding="utf-8")):
            assert module.startswith("./"), f"{script.name} imports {module}"
            assert (CONSOLE / module[2:]).is_file(), f"{script.name} imports {module}"
