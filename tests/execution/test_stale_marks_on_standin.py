"""Mark prices read at the weight Binance charges for them, against the stand-in through ccxt.

The streamed marks that are fresh are used and only the stale ones read over REST (was: one
stale symbol threw every streamed mark away for premiumIndex of all symbols, weight 10, every
5 s tick it stayed stale). A few symbols are read one request each (`symbol=`, weight 1), many
in one request for all (weight 10); one symbol's failed read leaves out that symbol alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from loopback import Fault, LoopbackBinance, LoopbackState, generated_markets
from loopback.fixtures import advance_until, connect, running_streams
from loopback.state import START_MS
from structlog.testing import capture_logs

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.errors import MarketDataError, RateLimited
from quantum_trader.execution.binance_streams import BinanceStreams
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.keeper.reads import ExchangeReads
from quantum_trader.keeper.settings import KeeperSettings

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
PREMIUM_INDEX = "/fapi/v1/premiumIndex"


def premium_index_reads(server: LoopbackBinance) -> list[dict[str, str]]:
    """The parameters of each premiumIndex request the stand-in answered, in order."""
    return [params for _, path, params in server.requests if path == PREMIUM_INDEX]


@dataclass
class Streamed:
    server: LoopbackBinance
    exchange: CcxtExchange
    streams: BinanceStreams
    clock: ManualClock


@pytest.fixture
async def streamed() -> AsyncIterator[Streamed]:
    """The streams up on the stand-in, whose mark-price stream never carries ETH's mark."""
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        server.streams.faults.marks_left_out.add("ETHUSDT")
        exchange = connect(server)
        try:
            await exchange.load_markets()
            async with running_streams(server, exchange) as streams:
                await advance_until(server, lambda: streams.health().usable, 30, "usable")
                await advance_until(
                    server, lambda: streams.mark_prices([BTC], clock.now()), 5, "BTC's mark"
                )
                yield Streamed(server, exchange, streams, clock)
        finally:
            await exchange.close()


async def test_the_stream_gives_the_fresh_marks_it_has(streamed: Streamed) -> None:
    now = streamed.clock.now()
    assert streamed.streams.mark_prices([BTC, ETH], now) == {BTC: Decimal("100000.0")}
    assert streamed.streams.mark_prices([ETH], now) is None  # none of them fresh


async def test_a_stale_streamed_mark_alone_is_read_over_rest_at_weight_one(
    streamed: Streamed,
) -> None:
    server = streamed.server
    server.state.marks["BTCUSDT"] = Decimal("101000.5")  # REST would say so; the stream not yet
    server.reset_counts()
    reads = ExchangeReads(streamed.exchange, streamed.streams, KeeperSettings())
    marks = await reads.marks([BTC, ETH], streamed.clock.now())
    assert marks == {BTC: Decimal("100000.0"), ETH: Decimal("3500.0")}
    assert premium_index_reads(server) == [{"symbol": "ETHUSDT"}]
    assert server.weight == 1  # was 10, every tick ETH stayed stale


async def test_rest_only_reads_two_symbols_one_request_each(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    reads = ExchangeReads(exchange, None, KeeperSettings())
    marks = await reads.marks([BTC, ETH], utc_from_ms(loopback.state.now_ms))
    assert marks == {BTC: Decimal("100000.0"), ETH: Decimal("3500.0")}
    assert sorted(p["symbol"] for p in premium_index_reads(loopback)) == ["BTCUSDT", "ETHUSDT"]
    assert loopback.weight == 2


@pytest.mark.parametrize(("held", "requests", "weight"), [(4, 4, 4), (5, 1, 10), (10, 1, 10)])
async def test_many_symbols_are_read_in_one_request_for_all(
    held: int, requests: int, weight: int
) -> None:
    state = LoopbackState(markets={m.market_id: m for m in generated_markets(50)})
    async with LoopbackBinance(state) as server:
        exchange = connect(server)
        try:
            symbols = [f"{m.base}/USDT:USDT" for m in state.markets.values()][:held]
            await exchange.load_markets()
            server.reset_counts()
            assert set(await exchange.fetch_mark_prices(symbols)) == set(symbols)
        finally:
            await exchange.close()
    assert len(premium_index_reads(server)) == requests
    assert server.weight == weight


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path=PREMIUM_INDEX, status=400, code=-1121, msg="Invalid symbol.", symbol="ETHUSDT"),
        Fault(path=PREMIUM_INDEX, status=200, body='{"symbol": "ETHUSDT"}', symbol="ETHUSDT"),
    ],
    ids=["refused", "unreadable"],
)
async def test_one_symbols_failed_read_leaves_out_that_symbol_alone(
    exchange: CcxtExchange, loopback: LoopbackBinance, fault: Fault
) -> None:
    loopback.inject(fault)
    with capture_logs() as logs:
        assert await exchange.fetch_mark_prices([BTC, ETH, SOL]) == {
            BTC: Decimal("100000.0"),
            SOL: Decimal("180.0"),
        }
    [said] = [e for e in logs if e["event"] == "mark_prices_incomplete"]
    assert said["symbols"] == [ETH]


async def test_a_symbol_unavailable_after_the_retries_is_left_out(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    for _ in range(3):  # the first try and both retries
        loopback.inject(Fault(path=PREMIUM_INDEX, status=503, body="busy", symbol="ETHUSDT"))
    assert await exchange.fetch_mark_prices([BTC, ETH]) == {BTC: Decimal("100000.0")}


async def test_no_symbol_read_leaves_the_keeper_without_marks_said_once(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    for market_id in ("BTCUSDT", "ETHUSDT"):
        loopback.inject(Fault(path=PREMIUM_INDEX, status=400, code=-1121, symbol=market_id))
    reads = ExchangeReads(exchange, None, KeeperSettings())
    with capture_logs() as logs:
        assert await reads.marks([BTC, ETH], utc_from_ms(loopback.state.now_ms)) == {}
    [said] = [e for e in logs if e["event"] == "mark_prices_unavailable"]
    assert "-1121" in said["error"]
    for market_id in ("BTCUSDT", "ETHUSDT"):
        loopback.inject(Fault(path=PREMIUM_INDEX, status=400, code=-1121, symbol=market_id))
    with pytest.raises(MarketDataError):
        await exchange.fetch_mark_prices([BTC, ETH])


async def test_a_rate_limit_on_one_symbol_stops_the_read(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    """A 429 is about the IP, not the symbol: the read fails as a whole, as the one request
    for all symbols did, and nothing more is sent before its Retry-After."""
    loopback.inject(
        Fault(path=PREMIUM_INDEX, status=429, code=-1003, retry_after_s=30, symbol="ETHUSDT")
    )
    with pytest.raises(RateLimited):
        await exchange.fetch_mark_prices([ETH])
    loopback.reset_counts()
    with pytest.raises(RateLimited):
        await exchange.fetch_mark_prices([BTC, ETH])
    assert premium_index_reads(loopback) == []
