"""Binance answers the stand-in did not give before, through the keeper and the ccxt adapter:
what each one does to the positions and their protective stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from loopback import Fault, LoopbackBinance
from loopback.fixtures import connect
from structlog.testing import capture_logs

from quantum_trader.domain import ExitMode, OrderKind, OrderRequest, OrderSide, Side, SizedOrder
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.record import replace
from quantum_trader.storage.memory import InMemoryRepository

BTC = "BTC/USDT:USDT"
DOGE = "DOGE/USDT:USDT"
Q = Decimal(1_500)  # DOGE at 0.20: 300 USDT, in whole coins (its step)
T0 = datetime(2025, 6, 1, tzinfo=UTC)
KEEPER = KeeperSettings()
ME_RECV_WINDOW = "Timestamp for this request is outside of the ME recvWindow."


async def keeper_on(exchange: CcxtExchange) -> PositionKeeper:
    """A keeper of an empty account on `exchange`, its rules loaded."""
    rules = await exchange.load_markets()
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    return await PositionKeeper.load(exchange, repository, ledger, rules, KEEPER, MonitorSettings())


def sized(symbol: str, side: Side, price: Decimal) -> SizedOrder:
    """An entry of about 300 USDT with its stop 3 % away and its target 6 %."""
    quantity = (Decimal(300) / price).quantize(Decimal("0.001"))
    notional = quantity * price
    return SizedOrder(
        symbol=symbol,
        side=side,
        quantity=quantity,
        entry_price=price,
        stop_price=(price * (1 - Decimal("0.03") * side.sign)).quantize(Decimal("0.01")),
        take_profit_price=(price * (1 + Decimal("0.06") * side.sign)).quantize(Decimal("0.01")),
        leverage=3,
        notional_usdt=notional,
        margin_usdt=notional / 3,
        expected_loss_usdt=notional * Decimal("0.03"),
        expected_profit_usdt=notional * Decimal("0.06"),
        costs_usdt=Decimal(0),
        atr_pct=0.02,
        confidence=0.8,
        exit_mode=ExitMode.DEFENSIVE_TRAIL,
    )


async def test_a_stop_refused_for_the_matching_engines_recv_window_is_placed_again_not_closed(
) -> None:  # fmt: skip
    """-5028: the matching engine received the request later than its recvWindow and executed
    nothing. Taken for a refusal of the stop itself, the keeper closed the position at market
    (protective_stop_failed); it is a request to send again, as -1021 is."""
    async with LoopbackBinance() as server:
        exchange = connect(server)
        try:
            keeper = await keeper_on(exchange)
            await keeper.tick(T0, rest=True)
            server.inject(Fault("/fapi/v1/algoOrder", code=-5028, msg=ME_RECV_WINDOW,
                                method="POST"))  # fmt: skip
            with capture_logs() as logs:
                await keeper.enter(sized(BTC, Side.LONG, server.state.mark("BTCUSDT")), T0)
            events = [e["event"] for e in logs]
            assert "protective_stop_failed" not in events
            held = server.state.holding("BTCUSDT").amount
            assert held > 0  # not closed at market
            await keeper.tick(T0 + timedelta(seconds=5))
            listed = [o for o in server.state.algo_orders.values() if o["algoStatus"] == "NEW"]
            ours = sorted((o["orderType"], o["side"], Decimal(o["quantity"])) for o in listed)
            # the take-profit, which the entry left out once its stop failed, goes on too
            assert ours == [("STOP_MARKET", "SELL", held), ("TAKE_PROFIT_MARKET", "SELL", held)]
            assert server.state.holding("BTCUSDT").amount == held
        finally:
            await exchange.close()


async def test_an_entry_whose_answer_is_lost_is_protected_whatever_the_algo_lookup_answers(
) -> None:  # fmt: skip
    """The entry's answer is lost and Binance does not list it yet (-2013 on GET order), so
    the lookup asks the Algo Order API for the same id. What that API answers for an id it
    does not know is not documented (STATUS.md). Answered with a refusal ccxt classes as a bad
    request, the lookup raised OperatorActionRequired: `enter` ended before its blind stop and
    every tick aborted, the filled position left without a stop. Now a refused lookup is a
    failed one (RetryLater): the blind stop goes on and the ticks go on."""
    async with LoopbackBinance() as server:
        exchange = connect(server, timeout_s=0.5)
        try:
            keeper = await keeper_on(exchange)
            await keeper.tick(T0, rest=True)
            server.inject(Fault("/fapi/v1/order", method="POST", delay_s=1.0))  # executed
            for _ in range(20):
                server.inject(Fault("/fapi/v1/order", method="GET", code=-2013,
                                    msg="Order does not exist."))  # fmt: skip
                server.inject(Fault("/fapi/v1/algoOrder", method="GET", code=-1102,
                                    msg="Mandatory parameter 'algoId' was not sent."))  # fmt: skip
            result = await keeper.enter(sized(BTC, Side.LONG, server.state.mark("BTCUSDT")), T0)
            assert result.unknown
            held = server.state.holding("BTCUSDT").amount
            assert held > 0
            for tick in range(1, 4):
                await keeper.tick(T0 + timedelta(seconds=5 * tick))
            stops = [o for o in server.state.algo_orders.values() if o["algoStatus"] == "NEW"]
            assert [(o["side"], Decimal(o["quantity"])) for o in stops] == [("SELL", held)]
        finally:
            await exchange.close()


async def test_a_restart_with_a_lower_leverage_keeps_a_held_positions_leverage_and_starts(
) -> None:  # fmt: skip
    """Binance refuses to lower the leverage of an isolated position (-4161; -2028 when its
    margin is short). prepare_account (every start, and each symbol joining the universe)
    raised on it, so a restart after lowering sizing.default_leverage failed while a position
    was open: nobody managed the position (its stop, exits, trailing). Now the symbol keeps
    the leverage it has, said in one warning, and the start goes on."""
    async with LoopbackBinance() as server:
        exchange = connect(server)
        try:
            await exchange.load_markets()
            await exchange.prepare_account([BTC, "ETH/USDT:USDT"], leverage=3)
            entry = OrderRequest("qte1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal("0.010"))
            await exchange.place_order(entry)
            with capture_logs() as logs:
                await exchange.prepare_account([BTC, "ETH/USDT:USDT"], leverage=2)
            assert exchange.leverage_by_symbol() == {BTC: 3, "ETH/USDT:USDT": 2}
            kept = [e for e in logs if e["event"] == "leverage_kept"]
            assert [(e["symbol"], e["wanted"], e["kept"]) for e in kept] == [(BTC, 2, 3)]
            [position] = await exchange.fetch_positions()
            assert position.leverage == 3
        finally:
            await exchange.close()


@pytest.mark.parametrize(("trades", "listed"), [(600, 600), (1_200, 1_000)])
async def test_an_entry_filled_in_many_trades_is_booked_and_protected_whole(
    trades: int, listed: int
) -> None:
    """A market order that meets many resting orders is reported as many trades, and
    GET /fapi/v1/userTrades lists 500 of an order's trades unless asked for more, 1,000 at
    most. The keeper booked the position from the trades it read: with more than were listed,
    a position smaller than the one held, its stop for that smaller quantity and its fee short.
    Now up to 1,000 are read, and beyond that the order's own executed quantity and average
    price count, the fee scaled from the trades read (one `fills_incomplete` warning)."""
    async with LoopbackBinance() as server:
        server.engine.trades_per_execution = trades
        exchange = connect(server)
        try:
            keeper = await keeper_on(exchange)
            await keeper.tick(T0, rest=True)
            entry = replace(sized(DOGE, Side.LONG, server.state.mark("DOGEUSDT")), quantity=Q)
            with capture_logs() as logs:
                result = await keeper.enter(entry, T0)
            assert result.position is not None
            assert server.state.holding("DOGEUSDT").amount == Q
            assert keeper.positions[DOGE].quantity == Q
            working = [o for o in server.state.algo_orders.values() if o["algoStatus"] == "NEW"]
            covered = sorted((o["orderType"], o["side"], Decimal(o["quantity"])) for o in working)
            assert covered == [("STOP_MARKET", "SELL", Q), ("TAKE_PROFIT_MARKET", "SELL", Q)]
            paid = sum(Decimal(t["commission"]) for t in server.state.trades)
            assert keeper.positions[DOGE].fees_usdt == paid  # one price: the scaling is exact
            short = [e for e in logs if e["event"] == "fills_incomplete"]
            assert [e["trades"] for e in short] == ([listed] if listed < trades else [])
        finally:
            await exchange.close()
