"""A position closed by hand on Binance, seen by the keeper through the ccxt adapter: booked
at the person's own trade (GET /fapi/v1/userTrades), not at the mark of the tick that saw it
(keeper/external.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from loopback import Fault, LoopbackBinance
from loopback.fixtures import connect
from structlog.testing import capture_logs
from test_exchange_answers import BTC, DOGE, KEEPER, T0, Q, sized

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide, Side
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.record import replace
from quantum_trader.storage.memory import InMemoryRepository

TAKER_FEE = Decimal("0.0004")  # the stand-in's, as Binance's default tier


async def keeper_on(exchange: CcxtExchange) -> tuple[PositionKeeper, InMemoryRepository]:
    rules = await exchange.load_markets()
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, rules, KEEPER, MonitorSettings()
    )
    return keeper, repository


async def close_by_hand_in(
    server: LoopbackBinance, pieces: int, symbol: str = BTC
) -> tuple[PositionKeeper, InMemoryRepository, CcxtExchange]:
    """A long entered by the keeper, then closed by a person in `pieces` trades."""
    exchange = connect(server)
    keeper, repository = await keeper_on(exchange)
    now = utc_from_ms(server.state.now_ms)
    await keeper.tick(now, rest=True)
    market = symbol.split("/")[0] + "USDT"
    entry = sized(symbol, Side.LONG, server.state.mark(market))
    await keeper.enter(entry if symbol == BTC else replace(entry, quantity=Q), now)
    held = server.state.holding(market).amount
    server.state.now_ms += 60_000
    server.engine.trades_per_execution = pieces
    web = OrderRequest("web_8f2c", symbol, OrderSide.SELL, OrderKind.MARKET, held,
                       reduce_only=True)  # fmt: skip
    await exchange.place_order(web)
    server.engine.trades_per_execution = 1
    server.state.now_ms += 120_000
    return keeper, repository, exchange


async def test_a_close_by_hand_is_booked_from_the_accounts_trades_through_ccxt() -> None:
    async with LoopbackBinance() as server:
        exchange = connect(server)
        try:
            keeper, repository = await keeper_on(exchange)
            now = utc_from_ms(server.state.now_ms)
            await keeper.tick(now, rest=True)
            mark = server.state.mark("BTCUSDT")
            await keeper.enter(sized(BTC, Side.LONG, mark), now)
            held = server.state.holding("BTCUSDT").amount
            entry_fees = keeper.positions[BTC].fees_usdt

            server.state.now_ms += 60_000
            closed_at = server.state.mark("BTCUSDT")
            web = OrderRequest("web_8f2a", BTC, OrderSide.SELL, OrderKind.MARKET, held,
                               reduce_only=True)  # fmt: skip
            await exchange.place_order(web)  # a person, on Binance's site
            server.state.now_ms += 120_000
            server.state.marks["BTCUSDT"] = closed_at * Decimal("1.02")
            with capture_logs() as logs:
                await keeper.tick(utc_from_ms(server.state.now_ms), rest=True)

            assert keeper.positions == {}
            [trade] = await repository.closed_trades()
            assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, closed_at)
            assert trade.fees_usdt == entry_fees + held * closed_at * TAKER_FEE
            [note] = [e for e in logs if e["event"] == "position_closed_externally"]
            assert "account's 1 trade(s)" in note["detail"]
        finally:
            await exchange.close()


async def test_an_unreadable_userTrades_answer_awaits_the_trades_and_the_tick_goes_on(
) -> None:  # fmt: skip
    """A malformed userTrades answer on the tick that sees the close, the marks read: the
    tick goes on, the position leaves the books and its close awaits its trades (was: booked
    at that mark at once, not a traded price); the next tick books the person's."""
    async with LoopbackBinance() as server:
        keeper, repository, exchange = await close_by_hand_in(server, 1)
        try:
            now = utc_from_ms(server.state.now_ms)
            closed_at = server.state.mark("BTCUSDT")
            server.state.marks["BTCUSDT"] = later = closed_at + 100
            malformed = '[{"id": 1}]'  # no side, price, quantity or time
            server.inject(Fault("/fapi/v1/userTrades", method="GET", status=200, body=malformed))
            with capture_logs() as logs:
                await keeper.tick(now, rest=True)

            assert keeper.positions == {}
            assert await repository.closed_trades() == []
            assert [e["symbol"] for e in logs if e["event"] == "account_trades_unread"] == [BTC]
            [waits] = [e for e in logs if e["event"] == "external_close_awaits_price"]
            assert f"nothing to book it at but the mark {later} " in waits["detail"]
            assert BTC in keeper.view().blocked

            await keeper.tick(now + timedelta(seconds=5), rest=True)
            [trade] = await repository.closed_trades()
            assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, closed_at)
            assert keeper.view().blocked == {}
        finally:
            await exchange.close()


async def test_a_close_by_hand_in_more_trades_than_a_page_is_read_whole() -> None:
    """1,000 trades (a full page: maybe more) and 1,500: read on from the last trade id
    (`fromId`, Binance's way past a page), booked at their price, every fee counted."""
    for pieces in (1_000, 1_500):
        async with LoopbackBinance() as server:
            keeper, repository, exchange = await close_by_hand_in(server, pieces, DOGE)
            try:
                closed_at = server.state.mark("DOGEUSDT")
                server.state.marks["DOGEUSDT"] = closed_at * Decimal("1.02")
                with capture_logs() as logs:
                    await keeper.tick(utc_from_ms(server.state.now_ms), rest=True)

                [trade] = await repository.closed_trades()
                assert trade.exit_price == closed_at
                [note] = [e for e in logs if e["event"] == "position_closed_externally"]
                assert f"account's {pieces} trade(s)" in note["detail"]
            finally:
                await exchange.close()


async def test_trades_of_another_symbol_in_the_answer_are_not_taken() -> None:
    """An answer listing a trade on ETHUSDT (a stand-in ignoring the `symbol` filter): the
    close is booked from BTCUSDT's trade alone."""
    async with LoopbackBinance() as server:
        keeper, repository, exchange = await close_by_hand_in(server, 1)
        try:
            closed_at = server.state.mark("BTCUSDT")
            [*_, person] = server.state.trades
            other = {**person, "id": person["id"] + 1, "orderId": 999_999, "symbol": "ETHUSDT",
                     "price": "1.5"}  # fmt: skip
            body = json.dumps([*server.state.trades, other])
            server.inject(Fault("/fapi/v1/userTrades", method="GET", status=200, body=body))
            await keeper.tick(utc_from_ms(server.state.now_ms), rest=True)

            [trade] = await repository.closed_trades()
            assert trade.exit_price == closed_at
        finally:
            await exchange.close()


async def test_a_close_by_hand_seen_while_userTrades_and_the_marks_answer_429_waits_for_its_trade(
) -> None:  # fmt: skip
    """Seed 30066 of the hand-trading campaign, through ccxt: the tick that sees the close gets
    a 429 on userTrades and on premiumIndex. No trade is booked then (was: at the position's
    stop price), the symbol takes no entry; the next tick books the close at the person's
    trade (keeper/unpriced.py)."""
    async with LoopbackBinance() as server:
        keeper, repository, exchange = await close_by_hand_in(server, 1)
        try:
            now = utc_from_ms(server.state.now_ms)
            closed_at = server.state.mark("BTCUSDT")
            server.state.marks["BTCUSDT"] = closed_at + 100
            for path in ("/fapi/v1/userTrades", "/fapi/v1/premiumIndex"):
                server.inject(Fault(path, method="GET", status=429, code=-1003))
            await keeper.tick(now, rest=True)
            assert keeper.positions == {}
            assert await repository.closed_trades() == []
            assert BTC in keeper.view().blocked

            await keeper.tick(now + timedelta(seconds=5), rest=True)
            [trade] = await repository.closed_trades()
            assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, closed_at)
            assert trade.closed_at == now
            assert keeper.view().blocked == {}
        finally:
            await exchange.close()
