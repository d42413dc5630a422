"""Test-session configuration shared by every test folder."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
import structlog
import uvloop
from hypothesis import settings as hypothesis_settings

# The loopback Binance stand-in's fixtures, for the ccxt adapter and exchange-mode tests.
from loopback.fixtures import exchange, loopback

__all__ = ["REPO", "exchange", "loopback"]

# The checkout: tests reach its files (config/, README.md, Dockerfile) through this, never cwd.
REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run and have no time limit per example, so
# the suite is green or red by the code alone, on any machine however busy ("ci", the
# default). `make explore` draws new examples ("explore"): run it to look for new failures,
# then pin each one found with @example beside the test.
for _name, _derandomize in (("ci", True), ("explore", False)):
    hypothesis_settings.register_profile(
        _name, derandomize=_derandomize, deadline=None, database=None, print_blob=True
    )
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """Logs are data in tests: nothing is printed, and loggers are never cached, so
    `structlog.testing.capture_logs` sees every event whatever ran earlier in the worker.
    (Only entry points configure logging; the daemon's CLI caches loggers for speed.)"""
    del config
    structlog.configure(
        processors=[],
        logger_factory=structlog.ReturnLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    # The event loop every command runs on (uvloop.run), for the async tests and every
    # asyncio.run in a test: its transports and timers behave in their own ways (a dead
    # child's pipe raises RuntimeError, not OSError; a timer may fire a millisecond early).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@pytest.fixture(autouse=True)
def isolated_from_the_user(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the user's `./data`, working directory, `$HOME` or `QT_`
    settings: each test starts in an empty directory of its own, with an empty home and
    none of the caller's QT_ variables, nor PYTHONUNBUFFERED. Files of the checkout are
    reached through REPO."""
    root = tmp_path_factory.mktemp("user")
    (root / "home").mkdir()
    (root / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    for name in list(os.environ):
        if name.upper().startswith("QT_"):
            monkeypatch.delenv(name)
    # Children start as in a default environment, buffered: this machine sets it, which once
    # hid a helper process that failed without it (test_foundation_correlations_aside.py).
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.chdir(root / "cwd")
