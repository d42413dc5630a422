"""Pytest fixtures and helpers: a running loopback server, a CcxtExchange and the streams
connected to it, a testnet daemon's settings and clock on it (`daemon_settings`,
`clock_into_bar`), and a way to move the stand-in's ManualClock in steps the event loop can
follow (`advance`, `advance_until`, `settle`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from quantum_trader.app import Runtime
from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.config import ExchangeSettings, MarketSettings, Settings
from quantum_trader.domain import ExchangeMode
from quantum_trader.execution.binance_streams import BinanceStreams
from quantum_trader.execution.ccxt_exchange import DEFAULT_RETRY_DELAYS_S, CcxtExchange
from quantum_trader.ops.metrics import Metrics

from .inflight import in_flight
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


BTC = "BTC/USDT:USDT"


def daemon_settings(data_dir: Path, symbols: tuple[str, ...] = (BTC,), **sections: Any) -> Settings:
    """A testnet daemon's settings on the stand-in (`loopback_settings`): `symbols` with 300
    bars of history, and any other section given (`server=`, `notify=`, `exchange=`, …)."""
    market = MarketSettings(symbols=symbols, history_bars=300)
    defaults: dict[str, Any] = {"exchange": loopback_settings(), "market": market}
    return Settings(data_dir=data_dir, **(defaults | sections))


def clock_into_bar(server: LoopbackBinance) -> ManualClock:
    """A daemon's clock 10 s after the stand-in's, inside its current 5 m bar."""
    return ManualClock(utc_from_ms(server.state.now_ms + 10_000))


async def open_runtime_on(
    server: LoopbackBinance,
    settings: Settings,
    stack: AsyncExitStack,
    stopping: asyncio.Event | None = None,
    *,
    clock: ManualClock | None = None,
    metrics: Metrics | None = None,
    retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
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
        retry_delays_s=retry_delays_s,
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


@asynccontextmanager
async def running_streams(
    server: LoopbackBinance, exchange: CcxtExchange, **overrides: Any
) -> AsyncIterator[BinanceStreams]:
    """`streams_on(server, exchange, **overrides)` running for the block, stopped (and waited
    for) when it ends. Call after `exchange.load_markets()`."""
    streams = streams_on(server, exchange, **overrides)
    stopping = asyncio.Event()
    task = asyncio.create_task(streams.run(stopping))
    try:
        yield streams
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


# Turns of the event loop in a row with nothing happening at the stand-in after which the
# tasks around it are taken to have done all they can without time passing (if nothing is in
# flight outside the loop either). Counted in turns, not in wall time: a slow or busy machine
# takes longer per turn, never more turns. Between two of the stand-in's requests or messages
# its clients take a few turns (an answer parsed, the next request written); 20 is over three
# times the most the streams tests were seen to need.
QUIET_TURNS = 20
IN_FLIGHT_POLL_S = 0.001  # while a thread or the kernel works: leave them the CPU, look again


async def settle(server: LoopbackBinance) -> None:
    """Let the event loop run until the stand-in and its clients have done all they can at
    the current instant: QUIET_TURNS turns in a row in which the stand-in answered no REST
    request, had no websocket message waiting or being sent, took none; and then nothing in
    flight that the loop does not show (`inflight.in_flight`: connections being opened or
    closed, bytes unread or unacknowledged, another thread of ours running).

    This waits for what has to happen, not for a length of wall time, so the clock moves on
    only after the effects of its last step, however slow or busy the machine. Not waited
    for: waits of the client's own in wall time (ccxt's keep-alive pings, retry delays)."""
    quiet, seen = 0, (server.activity, server.streams.activity)
    while True:
        await asyncio.sleep(0)
        now = (server.activity, server.streams.activity)
        quiet = 0 if now != seen or server.busy() else quiet + 1
        seen = now
        if quiet < QUIET_TURNS:
            continue
        if not in_flight(server.port):
            return
        quiet = 0
        await asyncio.sleep(IN_FLIGHT_POLL_S)


async def advance(server: LoopbackBinance, seconds: float, step_s: float = 1.0) -> None:
    """Move the stand-in's clock forward by `seconds` in steps, and after each step let
    sockets and tasks do all they can at that instant (`settle`)."""
    clock = manual_clock(server)
    moved = 0.0
    while moved < seconds:
        step = min(step_s, seconds - moved)
        clock.advance(step)
        moved += step
        await settle(server)


def manual_clock(server: LoopbackBinance) -> ManualClock:
    assert isinstance(server.clock, ManualClock), "a stand-in on a ManualClock"
    return server.clock


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
    server: LoopbackBinance,
    probe: Callable[[], object],
    max_s: float,
    what: str,
    step_s: float = 1.0,
) -> float:
    """Settle, then advance the stand-in's clock in steps until `probe()` is truthy; return
    the seconds it took. Fails naming `what` after `max_s` simulated seconds."""
    waited = 0.0
    await settle(server)
    while not probe():
        if waited >= max_s:
            raise AssertionError(f"not {what} after {max_s:g} s of simulated time")
        await advance(server, step_s, step_s)
        waited += step_s
    return waited
