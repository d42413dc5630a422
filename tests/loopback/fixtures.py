"""Pytest fixtures and helpers: a running loopback server, a CcxtExchange and the streams
connected to it, and a way to move a ManualClock in steps the event loop can follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pydantic import SecretStr

from quantum_trader.app import Runtime
from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.config import ExchangeSettings, Settings
from quantum_trader.domain import ExchangeMode
from quantum_trader.execution.binance_streams import BinanceStreams
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.ops.metrics import Metrics

from .server import LoopbackBinance, loopback_api_urls
from .sources import AlwaysBuy

API_KEY = "loopback-api-key-5f1d2b7e"
API_SECRET = "loopback-api-secret-9a8c7d6e"


def loopback_settings(
    timeout_s: float = 2.0, server: LoopbackBinance | None = None, **overrides: Any
) -> ExchangeSettings:
    """Demo-trading settings; with `server`, exchange.rest_url and ws_url point at it."""
    urls = {"rest_url": server.base_url, "ws_url": server.ws_url} if server else {}
    return ExchangeSettings(
        mode=ExchangeMode.TESTNET,
        api_key=SecretStr(API_KEY),
        api_secret=SecretStr(API_SECRET),
        request_timeout_s=timeout_s,
        **urls,
        **overrides,
    )


async def open_runtime_on(
    server: LoopbackBinance,
    settings: Settings,
    stack: AsyncExitStack,
    stopping: asyncio.Event | None = None,
    *,
    clock: ManualClock | None = None,
    metrics: Metrics | None = None,
) -> Runtime:
    """The testnet runtime on the stand-in, trading AlwaysBuy signals without rate limiting;
    its clock 10 s into a 5 m bar of the stand-in's unless `clock` is given."""
    return await open_exchange_runtime(
        settings,
        stack,
        stopping or asyncio.Event(),
        clock=clock or ManualClock(utc_from_ms(server.state.now_ms + 10_000)),
        api_urls=loopback_api_urls(server.base_url),
        source=AlwaysBuy(),
        rate_limit=False,
        metrics=metrics,
    )


def connect(server: LoopbackBinance, timeout_s: float = 2.0, **overrides: Any) -> CcxtExchange:
    """A CcxtExchange on demo-trading settings with exchange.rest_url on `server`."""
    return CcxtExchange.create(
        loopback_settings(timeout_s, server, **overrides),
        retry_delays_s=(0.01, 0.02),
        rate_limit=False,
        clock=server.clock,
    )


def streams_on(server: LoopbackBinance, exchange: CcxtExchange, **overrides: Any) -> BinanceStreams:
    """BinanceStreams on `server` (exchange.ws_url), seeded through `exchange`, on the
    server's clock. Call after `exchange.load_markets()`."""
    assert server.clock is not None, "streams need a stand-in that follows a clock"
    return BinanceStreams.create(
        loopback_settings(2.0, server, **overrides), exchange, server.clock
    )


async def advance(clock: ManualClock, seconds: float, step_s: float = 1.0) -> None:
    """Move `clock` forward by `seconds` in steps, letting sockets and tasks run between."""
    moved = 0.0
    while moved < seconds:
        step = min(step_s, seconds - moved)
        clock.advance(step)
        moved += step
        for _ in range(3):
            await asyncio.sleep(0.002)


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


async def advance_until(
    clock: ManualClock, probe: Callable[[], object], max_s: float, what: str, step_s: float = 1.0
) -> float:
    """Advance `clock` in steps until `probe()` is truthy; return the seconds it took.
    Fails naming `what` after `max_s` simulated seconds."""
    waited = 0.0
    while not probe():
        if waited >= max_s:
            raise AssertionError(f"not {what} after {max_s:g} s of simulated time")
        await advance(clock, step_s, step_s)
        waited += step_s
    return waited
