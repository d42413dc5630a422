"""Test-session configuration shared by every test folder."""

from __future__ import annotations

import logging

import pytest
import structlog

# The loopback Binance stand-in's fixtures, for the ccxt adapter and exchange-mode tests.
from loopback.fixtures import exchange, loopback

__all__ = ["exchange", "loopback"]


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
