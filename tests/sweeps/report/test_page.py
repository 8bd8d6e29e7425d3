"""The report page: one self-contained HTML file that renders every figure in headless Chromium with the
network cut off (its screenshot is kept in ``test-artifacts/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from sweeps.report import figures
from sweeps.report.answer import answer
from sweeps.report.evidence import weigh
from sweeps.report.publish import tables_of, write
from sweeps.report.results import SearchTrial
from sweeps.report.verdict import verdict
from tests.sweeps.helpers import REPO
from tests.sweeps.report.constructed import results

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium")
SEEDS = np.array([0.861, 0.874, 0.869, 0.880, 0.858])


def _page(folder: Path) -> tuple[Path, int]:
    """A shoot-out's page from constructed numbers, led by its answer; returns it and how many figures it
    holds."""
    trials = [SearchTrial(n, 0.85 - 0.01 * i, 10 ** (-3 + i / 2)) for n in ("sgd", "adam") for i in range(4)]
    found = results({"sgd": SEEDS - 0.02, "adam": SEEDS}, {"sgd": SEEDS - 0.1, "adam": SEEDS - 0.01}, trials)
    evidence = weigh(found)
    shown = {"Learning curves": figures.curves(found), "Tunability": figures.tunability(found, evidence)}
    files = write(
        folder,
        "Sweep constructed",
        ["a setting"],
        verdict(found, evidence),
        tables_of(found, evidence),
        interactive=shown,
        leading=answer(found, evidence),
    )
    return next(f for f in files if f.name == "report.html"), len(shown)


def test_the_page_embeds_plotly_once_and_fetches_nothing(tmp_path: Path) -> None:
    page = _page(tmp_path)[0].read_text()
    assert page.count(get_plotlyjs()) == 1
    assert "<script src" not in page and "<link" not in page and "<img" not in page
    assert "Fair shoot-out" in page and "Conclusions" in page and "Tunability" in page


def test_report_md_opens_with_the_answer(tmp_path: Path) -> None:
    _page(tmp_path)
    heading, first, *_ = (tmp_path / "report.md").read_text().split("\n\n")
    assert heading == "# Sweep constructed"
    assert first.startswith("**adam leads sgd by 0.0200 final val_acc") and "significant" in first


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found on PATH (apt-get install chromium)")
def test_the_page_renders_every_figure_offline_in_headless_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    path, expected = _page(tmp_path)
    shot = tmp_path / "report-page.png"
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(path.as_uri())
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
            drawn = page.locator(".js-plotly-plot").count()
            text = page.locator("body").inner_text()
        finally:
            page.screenshot(path=shot, full_page=True)
            browser.close()
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(shot, ARTIFACTS / shot.name)
    assert drawn == expected and not errors
    heading, first = [line for line in text.splitlines() if line.strip()][:2]
    assert heading == "Sweep constructed"
    assert (
        first.startswith("adam leads sgd by 0.0200 final val_acc [95% interval of the difference")
        and "significant" in first
    )
    assert requests == [path.as_uri()]  # the page itself, nothing else
