"""A protective stop that met its trigger but did not close the position: it is followed up.

A stop whose market order Binance expires unfilled or in part (a book that ran out) leaves
the position open past its stop: the next tick books what executed, says the stop is gone
(`protective_stop_gone`) and the stop maths closes the rest at market.


Binance's demo trading has left a triggered reduce-only stop in TRIGGERING for good (its
market order never sent, the position open, a cancel answered -2011; NautilusTrader
discussion 5378). A stop that is TRIGGERING or TRIGGERED is executing, so the keeper neither
cancels nor replaces it at once; once it has been so `monitor.stop_stuck_after_s`, the
position counts as unprotected: a new stop is placed beside it (never a cancel of the stuck
one), an error line and a protection alert say so. Shown end to end through the ccxt adapter
on the loopback stand-in, whether or not Binance lists such orders among the open ones (its
documentation does not say; where it does not, the keeper's lookup of the stop by id says it
is firing — was: counted missing at once, another stop placed); and on the pure protection
planning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from loopback import FillPlan, LoopbackBinance
from loopback.fixtures import connect
from position_builders import NOW, SETTINGS, position, protected, stop_order
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, SYMBOLS, T0, sized

from quantum_trader.clock import ManualClock
from quantum_trader.domain import (
    Action,
    ExitReason,
    GateName,
    MarketView,
    PortfolioView,
    ReasonCode,
    Side,
    Signal,
    Verdict,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.gates.signal_filter import select_candidates
from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.protect import CancelOrder, PlaceStop, StopWhy, plan_protection
from quantum_trader.market.model import MarketState
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]
STUCK_AFTER = timedelta(seconds=SETTINGS.stop_stuck_after_s)


# -- planning (pure) ------------------------------------------------------------------------------


def firing_stop_of(side: Side, fired: timedelta) -> tuple[Any, Any]:
    """A position and its own stop, which met its trigger `fired` before NOW."""
    held = protected(position(side, symbol=BTC), "qt-s-0-r1-1")
    stop = stop_order(held, "qt-s-0-r1-1", trigger=held.stop_price)
    return held, replace(stop, triggered_at=NOW - fired)


@pytest.mark.parametrize("side", list(Side))
def test_a_stop_executing_for_less_than_the_bound_is_left_alone(side: Side) -> None:
    held, stop = firing_stop_of(side, STUCK_AFTER - timedelta(seconds=1))
    assert plan_protection(held, [stop], NOW, SETTINGS) == []
    moved = replace(held, stop_price=held.stop_price + side.sign)  # trailing moved it
    long_ago = replace(moved, stop_replaced_at=NOW - timedelta(hours=1))
    assert plan_protection(long_ago, [stop], NOW, SETTINGS) == []  # no replacement mid-flight


@pytest.mark.parametrize("side", list(Side))
def test_a_stop_executing_for_the_bound_gets_another_beside_it_and_is_never_cancelled(
    side: Side,
) -> None:
    held, stop = firing_stop_of(side, STUCK_AFTER)
    [place] = plan_protection(held, [stop], NOW, SETTINGS)
    assert place == PlaceStop(
        BTC, side.exit_order_side, held.quantity, stop.trigger_price, StopWhy.STUCK
    )
    # Once the new stop is the position's, the stuck one stays: Binance refuses to cancel it.
    fresh = stop_order(held, "qt-s-0-r1-2", trigger=held.stop_price)
    replaced = replace(held, stop_order_id=fresh.client_order_id)
    assert plan_protection(replaced, [stop, fresh], NOW, SETTINGS) == []


def test_an_old_stop_still_waiting_is_cancelled_as_before() -> None:
    held, stop = firing_stop_of(Side.LONG, STUCK_AFTER)
    waiting = replace(stop, triggered_at=None, client_order_id="qt-s-0-r1-0")
    actions = plan_protection(held, [stop, waiting], NOW, SETTINGS)
    assert actions[1:] == [CancelOrder(BTC, waiting.client_order_id)]


# -- end to end: the ccxt adapter on the loopback stand-in ----------------------------------------


def algo(server: LoopbackBinance, status: str) -> list[dict[str, Any]]:
    return [
        o
        for o in server.state.algo_orders.values()
        if o["algoStatus"] == status and o["orderType"] == "STOP_MARKET"
    ]


@asynccontextmanager
async def stand_in_stalling(
    listed: bool,
) -> AsyncIterator[tuple[LoopbackBinance, CcxtExchange, ManualClock]]:
    """The stand-in leaving triggered stops TRIGGERING (listed among the open orders or not),
    and the ccxt adapter on it."""
    clock = ManualClock(T0)
    async with LoopbackBinance(clock=clock) as server:
        server.engine.stall_triggers = True
        server.state.lists_firing = listed
        exchange = connect(server)
        try:
            yield server, exchange, clock
        finally:
            await exchange.close()


@pytest.mark.parametrize("listed", [True, False], ids=["listed-as-open", "not-listed"])
async def test_a_stop_left_triggering_by_binance_gets_another_and_the_position_its_stop(
    listed: bool,
) -> None:
    async with stand_in_stalling(listed) as (server, exchange, clock):
        await stuck_stop_on_the_stand_in(server, exchange, clock)


async def long_on_the_stand_in(
    server: LoopbackBinance, exchange: CcxtExchange, clock: ManualClock
) -> tuple[PositionKeeper, InMemoryRepository, dict[str, Any]]:
    """A keeper on the stand-in that entered BTC long (stop 97000): it, its repository and
    the stop's algo order."""
    rules = await exchange.load_markets()
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, rules, KEEPER, MonitorSettings()
    )
    await keeper.tick(clock.now(), rest=True)
    await keeper.enter(sized(BTC, Side.LONG, server.state.mark("BTCUSDT")), clock.now())
    [stop] = algo(server, "NEW")
    return keeper, repository, stop


async def stuck_stop_on_the_stand_in(
    server: LoopbackBinance, exchange: CcxtExchange, clock: ManualClock
) -> tuple[PositionKeeper, InMemoryRepository]:
    """BTC long, its stop left TRIGGERING, another placed beside it; that one closes the
    position while the first stays TRIGGERING: the keeper and its repository."""
    keeper, repository, stop = await long_on_the_stand_in(server, exchange, clock)
    alerts: list[ProtectionAlert] = []
    keeper.alert_listeners.append(alerts.append)
    state = server.state
    state.marks["BTCUSDT"] = Decimal("96900.0")  # through the stop: Binance triggers it ...
    server.sync()
    state.marks["BTCUSDT"] = Decimal("98500.0")  # ... and the mark comes back above it
    assert stop["algoStatus"] == "TRIGGERING"

    with capture_logs() as logs:
        clock.set(clock.now() + timedelta(seconds=5))
        await keeper.tick(clock.now())
        assert algo(server, "NEW") == []  # executing, listed or looked up: left alone
        for _ in range(int(STUCK_AFTER / timedelta(seconds=5)) + 1):
            clock.set(clock.now() + timedelta(seconds=5))
            await keeper.tick(clock.now())

    [fresh] = algo(server, "NEW")
    assert (fresh["side"], fresh["triggerPrice"], fresh["quantity"]) == ("SELL", "97000", "0.003")
    assert stop["algoStatus"] == "TRIGGERING"  # still there, never cancelled
    cancels = [p for m, path, p in server.requests if m == "DELETE" and "algoOrder" in path]
    assert stop["clientAlgoId"] not in {p.get("clientAlgoId") for p in cancels}
    assert state.holding("BTCUSDT").amount == Decimal("0.003")
    assert keeper.positions[BTC].stop_order_id == fresh["clientAlgoId"]
    # It looked like protection (not listed: as its lookup said): the keeper says it was not.
    stuck = [e["log_level"] for e in logs if e["event"] == "stop_stuck_triggering"]
    assert stuck == ["error"]  # once: the tick that placed the new stop
    assert [a.event for a in alerts] == ["stop_stuck_triggering"]

    server.engine.stall_triggers = False
    state.marks["BTCUSDT"] = Decimal("96900.0")  # the new stop closes the position
    for _ in range(3):
        clock.set(clock.now() + timedelta(seconds=5))
        await keeper.tick(clock.now())
    assert state.holding("BTCUSDT").amount == 0
    assert BTC not in keeper.positions
    assert stop["algoStatus"] == "TRIGGERING"
    return keeper, repository


@pytest.mark.parametrize("listed", [True, False], ids=["listed-as-open", "not-listed"])
async def test_no_entry_goes_beside_a_stop_binance_left_triggering_until_it_ends(
    listed: bool,
) -> None:
    """The stuck stop outlives its position (closed by the stop placed beside it). Should
    Binance execute it while a new position is open, it would reduce that position (it is
    reduce-only): an unplanned partial close. So the symbol takes no entry while it is firing,
    also after a restart, and takes one again once Binance has ended it."""
    async with stand_in_stalling(listed) as (server, exchange, clock):
        await no_entry_beside_a_stuck_stop(server, exchange, clock)


async def no_entry_beside_a_stuck_stop(
    server: LoopbackBinance, exchange: CcxtExchange, clock: ManualClock
) -> None:
    keeper, repository = await stuck_stop_on_the_stand_in(server, exchange, clock)
    [stuck] = algo(server, "TRIGGERING")
    fired = datetime.fromtimestamp(stuck["triggerTime"] / 1000, UTC)
    entry = sized(BTC, Side.LONG, server.state.mark("BTCUSDT"))

    why = keeper.blocked_symbols()[BTC]
    assert why.startswith(f"stop {stuck['clientAlgoId']} triggering since {fired.isoformat()}")
    with pytest.raises(OrderRejected) as refused:
        await keeper.enter(entry, clock.now())
    assert refused.value.reason is ReasonCode.ORDER_UNSETTLED
    assert str(refused.value) == f"ORDER_UNSETTLED: {why}"
    assert denied_signals(keeper, server.state.mark("BTCUSDT"), clock) == [
        Verdict.deny(GateName.SIGNAL_FILTER, BTC, ReasonCode.ORDER_UNSETTLED, why)
    ]

    restarted = await PositionKeeper.load(  # the books from the database, then the exchange
        exchange,
        repository,
        await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings()),
        await exchange.load_markets(),
        KEEPER,
        MonitorSettings(),
    )
    await restarted.tick(clock.now(), rest=True)
    assert restarted.blocked_symbols() == {BTC: why}

    server.engine.resume_stalled()  # Binance runs it at last: nothing held, nothing closed
    assert stuck["algoStatus"] == "REJECTED"
    clock.set(clock.now() + timedelta(seconds=5))
    await restarted.tick(clock.now())
    assert restarted.blocked_symbols() == {}
    opened = await restarted.enter(entry, clock.now())
    assert opened.position is not None
    assert server.state.holding("BTCUSDT").amount == entry.quantity


def denied_signals(keeper: PositionKeeper, price: Decimal, clock: ManualClock) -> list[Verdict]:
    """What the executor's signal filter answers a BUY signal on BTC (`select_candidates`
    with the keeper's `blocked_symbols`, as the executor calls it)."""
    view = MarketView(clock.now(), {BTC: price}, {}, {BTC: 0.02})
    market = MarketState(view, [Signal(BTC, Action.BUY, 0.9, "test")])
    equity = Decimal(10_000)
    portfolio = PortfolioView(
        equity, equity, equity, Decimal(0), keeper.positions, equity, equity, equity
    )
    _, denied = select_candidates(market, portfolio, 0.5, keeper.blocked_symbols())
    return denied


@pytest.mark.parametrize("executed", ["0", "0.5"], ids=["nothing", "half"])
async def test_a_stop_whose_market_order_binance_expires_is_followed_by_an_exit_at_market(
    executed: str,
) -> None:
    clock = ManualClock(T0)
    async with LoopbackBinance(clock=clock) as server:
        server.engine.triggered_fill = FillPlan(Decimal(executed))
        exchange = connect(server)
        try:
            await expired_stop_on_the_stand_in(server, exchange, clock)
        finally:
            await exchange.close()


async def expired_stop_on_the_stand_in(
    server: LoopbackBinance, exchange: CcxtExchange, clock: ManualClock
) -> None:
    keeper, repository, stop = await long_on_the_stand_in(server, exchange, clock)
    state = server.state
    state.marks["BTCUSDT"] = Decimal("96900.0")  # through the stop: Binance triggers it
    server.sync()
    assert stop["algoStatus"] == "FINISHED"
    left = state.holding("BTCUSDT").amount
    assert left > 0  # the stop closed nothing or half

    with capture_logs() as logs:
        for _ in range(2):
            clock.set(clock.now() + timedelta(seconds=5))
            await keeper.tick(clock.now())

    assert state.holding("BTCUSDT").amount == 0
    assert BTC not in keeper.positions
    gone = [e["log_level"] for e in logs if e["event"] == "protective_stop_gone"]
    assert gone == (["error"] if left == Decimal("0.003") else [])  # half: it did work
    trades = await repository.closed_trades()
    assert [(t.quantity, t.exit_reason) for t in trades] == [(Decimal("0.003"), ExitReason.SL_HIT)]
    assert algo(server, "NEW") == []
