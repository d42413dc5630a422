"""Debian's chromium, headless, driven by playwright: the browser of the page tests.

`make install-dev` installs chromium (scripts/install-chromium.sh); playwright is pointed at it
and never downloads a browser. The flags keep chromium off the network it would otherwise try
(component updates, sync, background fetches), which this machine refuses.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Screenshots the tests keep, for people to look at (the README shows some of them).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise AssertionError(
            "Debian's chromium is not installed: run scripts/install-chromium.sh (make install-dev)"
        )
    return found


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A headless chromium for one test; closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=list(FLAGS))
        try:
            yield browser
        finally:
            browser.close()


def artifact(name: str) -> Path:
    """Where a test keeps a screenshot named `name` (the directory is created)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
