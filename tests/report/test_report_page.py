"""report.html is one self-contained page: headless chromium renders it with every request
to anything but the file itself refused, and keeps a screenshot (the README shows it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser import artifact, headless_chromium
from playwright.sync_api import Route
from report_builders import backtest, utc

from quantum_trader.backtest import BacktestRequest
from quantum_trader.config import Settings

pytestmark = pytest.mark.slow  # a 30-day backtest of 8 symbols, then chromium: ~15 s idle


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("page")
    request = BacktestRequest(utc(2025, 9, 10), utc(2025, 10, 10), out_dir=directory)
    backtest(Settings(data_dir=directory, signals={"source": "rules"}), request)
    return directory


def test_the_page_renders_offline_with_its_charts_and_tables(out: Path) -> None:
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    page_url = (out / "report.html").as_uri()
    fetched: list[str] = []

    def only_the_file(route: Route) -> None:
        if route.request.url == page_url:
            route.continue_()
        else:
            fetched.append(route.request.url)
            route.abort()

    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        page.route("**/*", only_the_file)
        page.goto(page_url)
        charts = page.eval_on_selector_all(
            "img.chart", "images => images.map(i => i.complete && i.naturalWidth)"
        )
        stamp = page.inner_text("#stamp")
        symbols = page.locator("#by-symbol tr").count() - 1
        halts = page.inner_text("#halts")
        cards = page.inner_text("#key-numbers")
        page.screenshot(path=str(artifact("backtest-report-top.png")))
        page.screenshot(path=str(artifact("backtest-report.png")), full_page=True)
    assert fetched == []  # nothing but the file itself: styles and charts are inline
    assert len(charts) == 3
    assert all(width and width > 500 for width in charts)
    assert stamp == report["sample"] == "RULES (NO TRAINED MODELS)"
    assert symbols == len(report["by_symbol"])
    assert "of the time not traded" in halts
    assert f"{report['return_pct']:+.2f} %" in cards
    for name in ("equity", "pnl_by_symbol", "decisions_by_gate"):
        assert (out / "charts" / f"{name}.png").stat().st_size > 10_000
