"""The report in a real browser: Debian's headless Chromium driven by Playwright (no downloaded browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.labels import read_labels
from distillguard.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_report_renders_filters_and_exports_labels(scan, browser, tmp_path: Path) -> None:
    report = write_report(scan.out_dir, scan.store)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"dialog opened: {d.message}"))
    page.on(
        "request",
        lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None,
    )
    page.goto(report.as_uri())

    # The overview chart and the largest campaign (350 accounts, drawn by /24) are drawn at once.
    page.wait_for_selector("#overview .js-plotly-plot")
    assert page.locator("#campaign-0 .js-plotly-plot").count() == 2
    assert "one per network prefix" in page.inner_text("#campaign-0")
    assert page.locator("#campaign-table tbody tr").count() == len(scan.campaigns)
    # The second campaign is drawn account by account when opened.
    page.click("#campaign-1 > summary")
    page.wait_for_function("document.querySelectorAll('#campaign-1 .js-plotly-plot').length === 2")
    assert page.locator("#campaign-1 .js-plotly-plot .scatterlayer .point").count() == 12

    # Markup in prompts and ids is shown as text, never run.
    assert page.evaluate("window.__pwned") is None
    assert "<script>window.__pwned" in page.inner_text("#campaign-1 .templates")

    # Filter the accounts table by text, then by verdict and campaign.
    rows = page.locator("#account-table tbody tr")
    page.fill("#account-filter", "user-000")
    page.wait_for_function("document.querySelectorAll('#account-table tbody tr').length === 10")
    assert all(t.startswith("user-000") for t in rows.locator("td:first-child").all_inner_texts())
    page.fill("#account-filter", "")
    page.select_option("#campaign-filter", "C1")
    page.select_option("#verdict-filter", "review")
    texts = rows.locator("td:nth-child(3)").all_inner_texts()
    assert texts and set(texts) == {"review"}
    assert set(rows.locator("td:nth-child(4)").all_inner_texts()) == {"C1"}

    # Review: confirm an account and dismiss a campaign, then export the labels file.
    first = rows.first.get_attribute("data-account")
    page.fill("#analyst", "ana")
    rows.first.locator("button[data-label=confirm]").click()
    page.locator("#campaign-table button[data-kind=campaign][data-label=dismiss]").first.click()
    assert page.inner_text("#label-count") == "2"
    with page.expect_download() as download:
        page.click("#export-labels")
    labels_file = tmp_path / "labels.csv"
    download.value.save_as(labels_file)
    labels = read_labels(labels_file)
    assert labels.accounts[first].label == "confirm" and labels.accounts[first].analyst == "ana"
    assert labels.campaigns["C2"].label == "dismiss" and labels.campaigns["C2"].score is not None

    page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert not errors, errors
    assert not requests, f"the report fetched from the network: {requests}"
