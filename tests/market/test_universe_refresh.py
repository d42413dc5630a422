"""The universe in testnet/live, re-resolved on a schedule against the loopback Binance
stand-in (its clock moved by hand): who joins and leaves and why, one line and a notification
per change, a failed refresh keeps the universe, and a joining symbol is prepared and warm."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from loopback import LoopbackBinance
from loopback.faults import Outage
from loopback.fixtures import connect, loopback, loopback_settings, open_runtime_on
from loopback.markets import LoopbackMarket
from pydantic import SecretStr
from structlog.testing import capture_logs

from quantum_trader.app_ops import open_operations
from quantum_trader.clock import ManualClock, ms_from_utc, utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.market.exchange_feed import ExchangeFeed
from quantum_trader.market.live_universe import LiveUniverse, UniverseChange
from quantum_trader.market.settings import UniverseSettings
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import NotifySettings

__all__ = ["loopback"]
BTC, ETH, SOL, BNB = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT"
HISTORY = 300


def ticker_rows(quote_volumes: Mapping[str, float], now_ms: int) -> list[dict[str, Any]]:
    """GET /fapi/v1/ticker/24hr rows as Binance documents them (every field, as strings)."""
    return [
        {
            "symbol": market_id,
            "priceChange": "-94.99999800",
            "priceChangePercent": "-95.960",
            "weightedAvgPrice": "0.29628482",
            "lastPrice": "4.00000200",
            "lastQty": "200.00000000",
            "openPrice": "99.00000000",
            "highPrice": "100.00000000",
            "lowPrice": "0.10000000",
            "volume": "8913.30000000",
            "quoteVolume": f"{volume:.2f}",
            "openTime": now_ms - 86_400_000,
            "closeTime": now_ms,
            "firstId": 28385,
            "lastId": 28460,
            "count": 76,
        }
        for market_id, volume in quote_volumes.items()
    ]


def rule_settings(tmp_path: Path, **universe: Any) -> Settings:
    rule = {"rule": "top_volume", "top_n": 2, "min_listing_days": 30, "refresh_s": 3600}
    return Settings(
        data_dir=tmp_path,
        exchange=loopback_settings(),
        market=MarketSettings(history_bars=HISTORY, universe=UniverseSettings(**(rule | universe))),
        server={"port": 0},  # not 8080, which something else on the machine may serve
    )


@pytest.fixture
async def exchange(loopback: LoopbackBinance) -> AsyncIterator[CcxtExchange]:
    connected = connect(loopback)
    try:
        await connected.load_markets()
        yield connected
    finally:
        await connected.close()


async def started(
    loopback: LoopbackBinance, exchange: CcxtExchange, settings: Settings
) -> tuple[LiveUniverse, ExchangeFeed, list[UniverseChange]]:
    """A universe started at the stand-in's now with its feed warm, recording its changes."""
    universe = LiveUniverse(exchange, settings)
    await universe.start(now(loopback))
    feed = ExchangeFeed(exchange, universe.symbols, "5m", HISTORY)
    universe.feed = feed
    await feed.snapshot(now(loopback))
    changes: list[UniverseChange] = []
    universe.listeners.append(changes.append)
    return universe, feed, changes


def now(loopback: LoopbackBinance) -> datetime:
    return utc_from_ms(loopback.state.now_ms)


def advance(loopback: LoopbackBinance, seconds: float) -> datetime:
    loopback.state.now_ms += round(seconds * 1000)
    return now(loopback)


async def test_a_refresh_swaps_the_symbol_that_left_the_top_and_keeps_its_rules(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    volumes = {"BTCUSDT": 9e9, "ETHUSDT": 5e9, "SOLUSDT": 1e9, "BNBUSDT": 5e8}
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    universe, feed, changes = await started(loopback, exchange, rule_settings(tmp_path))
    assert universe.symbols == (BTC, ETH)

    volumes["SOLUSDT"] = 7e9  # SOL overtakes ETH
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    asked = loopback.count("/fapi/v1/ticker/24hr")
    assert await universe.refresh(advance(loopback, 1800)) is None  # not due yet
    assert loopback.count("/fapi/v1/ticker/24hr") == asked

    with capture_logs() as logs:
        change = await universe.refresh(advance(loopback, 1800))
    assert change is not None
    assert changes == [change]
    assert (change.added, change.removed) == ((SOL,), (ETH,))
    assert change.why[SOL].startswith("rank 2 by 24 h quote volume (7,000,000,000 USDT)")
    assert change.why[ETH] == "rank 3 by 24 h quote volume (5,000,000,000 USDT), outside the top 2"
    (line,) = [e for e in logs if e["event"] == "universe_changed"]
    assert line["added"] == [SOL]
    assert line["removed"] == [ETH]
    assert line["why"] == change.why
    assert universe.symbols == (BTC, SOL)
    # ETH leaves the feed (no signal, so no new entry) but keeps its rules for the keeper.
    assert ETH in universe.rules
    snapshot = await feed.snapshot(now(loopback))
    assert set(snapshot.bars) == {BTC, SOL}
    assert len(snapshot.bars[SOL]) == HISTORY
    # SOL joined prepared: isolated margin, leverage capped by its bracket.
    holding = loopback.state.holding("SOLUSDT")
    assert (holding.margin_type, holding.leverage) == ("isolated", 3)
    assert universe.rules[SOL].leverage_brackets[0].initial_leverage == 125


async def test_a_failed_refresh_keeps_the_universe_and_retries_sooner(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    volumes = {"BTCUSDT": 9e9, "ETHUSDT": 5e9, "SOLUSDT": 1e9}
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    universe, feed, changes = await started(loopback, exchange, rule_settings(tmp_path))

    due = advance(loopback, 3600)
    moment = loopback.state.now_ms
    loopback.outage(Outage("/fapi/v1/ticker/24hr", moment, moment + 1))
    with capture_logs() as logs:
        assert await universe.refresh(due) is None
    (warning,) = [e for e in logs if e["event"] == "universe_refresh_failed"]
    assert warning["log_level"] == "warning"
    assert warning["kept"] == [BTC, ETH]

    loopback.state.tickers_24h = []  # an answer with no volume: the rule picks nothing
    with capture_logs() as logs:
        assert await universe.refresh(advance(loopback, 900)) is None  # retried after 15 min
    (warning,) = [e for e in logs if e["event"] == "universe_refresh_failed"]
    assert "picks no symbol" in warning["error"]

    loopback.state.brackets_answer = {"code": 0}  # not Binance's shape: brackets unusable
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    with capture_logs() as logs:
        assert await universe.refresh(advance(loopback, 900)) is None
    assert [e["event"] for e in logs if e["event"] == "universe_refresh_failed"]
    assert universe.symbols == (BTC, ETH)
    assert feed.symbols == (BTC, ETH)
    assert changes == []


async def test_a_symbol_listed_after_start_joins_once_old_enough(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    listed = loopback.state.now_ms - 29 * 86_400_000  # a day short of min_listing_days
    loopback.state.markets["NEWUSDT"] = LoopbackMarket(
        "NEWUSDT", "NEW", Decimal("0.5"), "0.0001", "1", "1", onboard_ms=listed, max_leverage=20
    )
    volumes = {"BTCUSDT": 9e9, "ETHUSDT": 5e9, "NEWUSDT": 8e9}
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    settings = rule_settings(tmp_path)
    settings = settings.model_copy(
        update={"sizing": settings.sizing.model_copy(update={"default_leverage": 25,
                                                             "max_leverage": 25})}
    )  # fmt: skip
    universe, _, _ = await started(loopback, exchange, settings)
    assert universe.symbols == (BTC, ETH)

    change = await universe.refresh(advance(loopback, 86_400))
    assert change is not None
    assert change.added == ("NEW/USDT:USDT",)
    assert change.removed == (ETH,)
    assert universe.rules["NEW/USDT:USDT"].max_leverage == 20
    assert loopback.state.holding("NEWUSDT").leverage == 20  # capped at its bracket, not 25
    assert exchange.id_by_symbol["NEW/USDT:USDT"] == "NEWUSDT"  # markets reloaded for orders


async def test_a_fixed_symbol_that_stops_trading_leaves_and_returns_when_it_trades_again(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        exchange=loopback_settings(),
        market=MarketSettings(symbols=(BTC, ETH), history_bars=HISTORY),
    )
    universe, feed, changes = await started(loopback, exchange, settings)
    assert universe.symbols == (BTC, ETH)
    trading = loopback.state.markets["ETHUSDT"]
    loopback.state.markets["ETHUSDT"] = replace(trading, status="SETTLING")
    change = await universe.refresh(advance(loopback, 86_400))
    assert change is not None
    assert (change.added, change.removed) == ((), (ETH,))
    assert change.why[ETH] == "status SETTLING, not TRADING"
    assert feed.symbols == (BTC,)
    assert universe.health_lines() == [f"{ETH} not traded: status SETTLING, not TRADING"]

    loopback.state.markets["ETHUSDT"] = trading
    change = await universe.refresh(advance(loopback, 900))  # retried sooner: ETH is wanted
    assert change is not None
    assert change.added == (ETH,)
    assert change.why[ETH] == "in market.symbols and tradable again"
    assert universe.health_lines() == []
    assert len(changes) == 2


RUNNERS: dict[str, web.AppRunner] = {}


async def webhook_receiver(hooks: list[dict[str, Any]]) -> str:
    """A webhook on 127.0.0.1 that records every JSON body posted to it; its base URL."""

    async def record(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    RUNNERS[url] = runner
    return url


async def webhook_close(url: str) -> None:
    await RUNNERS.pop(url).cleanup()


async def test_the_daemon_manages_a_removed_symbols_position_to_its_exit_and_trades_the_new(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    volumes = {"BTCUSDT": 9e9, "BNBUSDT": 5e9}
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    settings = rule_settings(tmp_path, top_n=1)
    hooks: list[dict[str, Any]] = []
    receiver = await webhook_receiver(hooks)
    settings = settings.model_copy(
        update={
            "exchange": loopback_settings(use_streams=False),
            "notify": NotifySettings(webhook_url=SecretStr(f"{receiver}/hook")),
        }
    )
    clock = ManualClock(now(loopback))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(webhook_close, receiver)
        runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
        await open_operations(runtime, Metrics(), stack)
        core = runtime.core
        assert (await core.executor.run_cycle(clock.now())).opened == 1
        assert set(core.keeper.positions) == {BTC}

        volumes["BNBUSDT"] = 9.5e9  # BNB overtakes BTC
        loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
        clock.advance(3600)
        loopback.state.now_ms = ms_from_utc(clock.now())
        summary = await core.executor.run_cycle(clock.now())
        assert runtime.universe is not None
        assert runtime.universe.symbols == (BNB,)
        assert set(core.keeper.positions) == {BTC, BNB}  # BTC's position stays, managed
        loopback.state.marks["BTCUSDT"] = Decimal("90000")  # below BTC's stop: it triggers
        await core.keeper.tick(clock.now(), rest=True)
        trades = await runtime.repository.closed_trades()
        later = await core.executor.run_cycle(clock.now())

    assert summary.opened == 1
    (trade,) = trades
    # The keeper booked BTC's stop, which fired after BTC had left the universe.
    assert (trade.symbol, trade.exit_reason) == (BTC, ExitReason.SL_HIT)
    assert set(core.keeper.positions) == {BNB}
    assert {d.verdict.symbol for d in summary.decisions + later.decisions} == {BNB}
    (notified,) = [h for h in hooks if h["kind"] == "universe_changed"]
    assert (notified["added"], notified["removed"]) == ("BNB/USDT:USDT", BTC)
    assert "rank 1 by 24 h quote volume" in notified["text"]


async def test_a_step_binance_changes_reaches_the_orders_at_the_next_refresh(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    """Binance changes a symbol's lot step now and then; the refresh reads exchangeInfo for
    the sizer and the keeper, and the adapter rounds orders with the same rules (it used to
    keep the start's until the next start)."""
    volumes = {"BTCUSDT": 9e9, "ETHUSDT": 5e9}
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    universe, _, _ = await started(loopback, exchange, rule_settings(tmp_path))
    btc = loopback.state.markets["BTCUSDT"]
    loopback.state.markets["BTCUSDT"] = replace(btc, step_size="0.01", min_quantity="0.01")
    loopback.state.tickers_24h = ticker_rows(volumes, loopback.state.now_ms)
    assert await universe.refresh(advance(loopback, 3600)) is None  # no change of symbols
    assert universe.rules[BTC].step_size == Decimal("0.01")

    await exchange.place_order(
        OrderRequest("qt-step-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal("0.0123"))
    )
    method, path, params = loopback.requests[-1]
    assert (method, path, params["quantity"]) == ("POST", "/fapi/v1/order", "0.01")
