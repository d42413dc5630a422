"""Pytest fixtures: a running loopback server and a CcxtExchange connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import ExchangeMode
from quantum_trader.execution.ccxt_exchange import CcxtExchange

from .server import LoopbackBinance, loopback_api_urls

API_KEY = "loopback-api-key-5f1d2b7e"
API_SECRET = "loopback-api-secret-9a8c7d6e"


def loopback_settings(timeout_s: float = 2.0) -> ExchangeSettings:
    return ExchangeSettings(
        mode=ExchangeMode.TESTNET,
        api_key=SecretStr(API_KEY),
        api_secret=SecretStr(API_SECRET),
        request_timeout_s=timeout_s,
    )


def connect(server: LoopbackBinance, timeout_s: float = 2.0) -> CcxtExchange:
    """A CcxtExchange on demo-trading settings with every REST base URL on `server`."""
    return CcxtExchange.create(
        loopback_settings(timeout_s),
        api_urls=loopback_api_urls(server.base_url),
        retry_delays_s=(0.01, 0.02),
        rate_limit=False,
    )


@pytest.fixture
async def loopback() -> AsyncIterator[LoopbackBinance]:
    async with LoopbackBinance() as server:
        yield server


@pytest.fixture
async def exchange(loopback: LoopbackBinance) -> AsyncIterator[CcxtExchange]:
    connected = connect(loopback)
    try:
        await connected.load_markets()
        loopback.reset_counts()
        yield connected
    finally:
        await connected.close()
