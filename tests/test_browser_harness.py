"""The page tests' browser works on this machine: chromium renders and playwright reads."""

from __future__ import annotations

from browser import artifact, headless_chromium


def test_headless_chromium_renders_a_page_and_keeps_a_screenshot() -> None:
    with headless_chromium() as browser:
        page = browser.new_page()
        page.set_content("<h1 id='title'>Quantum Trader</h1>")
        assert page.inner_text("#title") == "Quantum Trader"
        target = artifact("browser-harness.png")
        page.screenshot(path=str(target))
    assert target.stat().st_size > 0
