"""The RL sizing agent learns from every trade its entries open, on the model exchange.

The desk keeps the agent's decision by the entry's client order id before the keeper sends it
(app.connect_learning), so the trade is learnt from once however it is booked: within `enter`
(a fill past its target, closed at once), at a later tick (the entry's answer lost while the
exchange could not be read), after a restart. Was: the executor kept the decision only when
`enter` returned a position, so those trades taught the agent nothing.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_properties import GRACE, KEEPER, PRICES, RULES, SYMBOLS, T0, Harness, sized

from quantum_trader.app import connect_learning
from quantum_trader.domain import ClosedTrade, ExitReason, Order, OrderRequest, Side, SizedOrder
from quantum_trader.errors import OrderRejected
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.record import replace
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.desk import RL_PENDING, SizingDesk
from quantum_trader.sizing.rl import ACTIONS
from quantum_trader.sizing.settings import CostSettings, RLSettings, SizingSettings
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]
STATE = "TRENDING|c4|e0|s0"
ACTION = ACTIONS[5]
ALPHA = RLSettings().alpha


class WatchedExchange(ModelExchange):
    """The model exchange, noting the RL decisions kept when each order arrives."""

    repository: InMemoryRepository
    kept_on_arrival: list[dict[str, dict[str, Any]]]

    async def place_order(self, request: OrderRequest) -> Order:
        self.kept_on_arrival.append(await self.repository.load_state(RL_PENDING))
        return await super().place_order(request)


async def started() -> tuple[Harness, SizingDesk]:
    exchange = WatchedExchange(RULES, dict(PRICES), T0)
    exchange.repository, exchange.kept_on_arrival = InMemoryRepository(), []
    keeper, desk, _ = await program_on(exchange)
    return Harness(exchange, exchange.repository, keeper, T0), desk


async def restarted(harness: Harness) -> SizingDesk:
    """The program started again on the same exchange and database."""
    assert isinstance(harness.exchange, WatchedExchange)
    harness.keeper, desk, _ = await program_on(harness.exchange, harness.now)
    return desk


async def program_on(
    exchange: WatchedExchange, now: datetime = T0
) -> tuple[PositionKeeper, SizingDesk, Ledger]:
    """The keeper, the RL sizing desk and the ledger, connected as the daemon connects them."""
    repository = exchange.repository
    ledger = await Ledger.load(repository, Decimal(10_000), now, PerformanceSettings())
    monitor = MonitorSettings()
    keeper = await PositionKeeper.load(exchange, repository, ledger, RULES, KEEPER, monitor)
    settings = SizingSettings(method="rl")
    desk = await SizingDesk.load(settings, CostModel(CostSettings()), repository, monitor)
    connect_learning(desk, keeper, ledger)
    await keeper.tick(now, rest=True)
    return keeper, desk, ledger


def rl_order(harness: Harness) -> SizedOrder:
    """A long BTC entry planned at the mark (100: stop 97, target 106) as the agent sized it."""
    order = sized(BTC, Side.LONG, harness.exchange.marks[BTC])
    return replace(order, method=f"rl|{STATE}#{ACTION.key}")


async def closed_at_stop(harness: Harness) -> ClosedTrade:
    """Move the mark through the stop and tick until the trade is booked."""
    harness.exchange.marks[BTC] = Decimal(96)
    for _ in range(10):
        await harness.tick()
        trades = await harness.repository.closed_trades()
        if trades:
            [trade] = trades
            return trade
    raise AssertionError("the position did not close at its stop")


async def assert_learnt_once(
    harness: Harness, desk: SizingDesk, trade: ClosedTrade, logs: list[MutableMapping[str, Any]]
) -> None:
    assert trade.r_multiple is not None
    assert [e["event"] for e in logs if e["event"].startswith("rl_")] == ["rl_learned"]
    assert desk.agent is not None
    assert desk.agent.value(STATE, ACTION) == pytest.approx(ALPHA * trade.r_multiple)
    saved = (await harness.repository.load_state("sizing"))["rl_q_table"]["table"]
    assert saved[STATE][ACTION.key] == pytest.approx(ALPHA * trade.r_multiple)
    assert await harness.repository.load_state(RL_PENDING) == {}


async def test_an_entry_whose_answer_was_lost_and_booked_at_a_later_tick_is_learnt_from() -> None:
    harness, desk = await started()
    exchange = harness.exchange
    exchange.lose_next = True  # the entry executes; its answer is lost
    exchange.reads_down_until = harness.now + timedelta(seconds=20)  # and nothing can be read
    with capture_logs() as logs:
        result = await harness.keeper.enter(rl_order(harness), harness.now)
        assert (result.position, result.unknown) == (None, True)
        while BTC not in harness.keeper.positions:  # booked by a later tick
            assert harness.now < T0 + timedelta(minutes=2)
            await harness.tick()
        trade = await closed_at_stop(harness)

    assert trade.exit_reason is ExitReason.SL_HIT
    assert trade.entry_order_id == result_entry_id(harness)
    await assert_learnt_once(harness, desk, trade, logs)


async def test_an_entry_filled_past_its_target_and_closed_at_once_is_learnt_from() -> None:
    harness, desk = await started()
    harness.exchange.entry_fills_at = Decimal("106.50")  # past its target, 106
    with capture_logs() as logs:
        result = await harness.keeper.enter(rl_order(harness), harness.now)
        [trade] = await harness.repository.closed_trades()

    assert result.position is None
    assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
    await assert_learnt_once(harness, desk, trade, logs)


async def test_a_refused_entry_leaves_no_decision_kept() -> None:
    """Kept while the entry travelled; dropped once it was refused."""
    harness, _ = await started()
    exchange = harness.exchange
    assert isinstance(exchange, WatchedExchange)
    exchange.reject_next = True
    with pytest.raises(OrderRejected):
        await harness.keeper.enter(rl_order(harness), harness.now)

    [kept] = exchange.kept_on_arrival
    assert list(kept) == [exchange.received[0].client_order_id]
    assert kept[exchange.received[0].client_order_id]["action"] == ACTION.key
    assert await harness.repository.load_state(RL_PENDING) == {}


async def test_an_entry_lost_on_its_way_leaves_no_decision_kept_once_settled() -> None:
    """The request never reached the exchange: `enter` cannot know (outcome unknown), and the
    tick that settles the entry as never accepted drops its decision. Was: kept until the
    200-decision cap pushed it out."""
    harness, _ = await started()
    harness.exchange.drop_next = True
    result = await harness.keeper.enter(rl_order(harness), harness.now)
    assert (result.position, result.unknown) == (None, True)
    entry = result_entry_id(harness)
    assert list(await harness.repository.load_state(RL_PENDING)) == [entry]

    while entry not in await settled_orders(harness):
        assert harness.now < T0 + GRACE + timedelta(minutes=1)
        await harness.tick()

    assert BTC not in harness.keeper.positions
    assert await harness.repository.load_state(RL_PENDING) == {}


async def settled_orders(harness: Harness) -> set[str]:
    """The client ids of the orders the database holds as ended."""
    orders = await harness.repository.orders()
    return {o.client_order_id for o in orders if o.status.is_final}


async def test_a_restart_between_the_entry_and_its_booking_still_learns_once() -> None:
    """The entry's answer lost, the program restarted before any tick booked it: the new
    program books it, and learns from its trade once."""
    harness, _ = await started()
    exchange = harness.exchange
    exchange.lose_next = True
    exchange.reads_down_until = harness.now + timedelta(seconds=20)
    with capture_logs() as logs:
        result = await harness.keeper.enter(rl_order(harness), harness.now)
        assert result.position is None
        harness.advance(timedelta(seconds=30))  # the exchange readable again
        desk = await restarted(harness)
        assert BTC in harness.keeper.positions
        trade = await closed_at_stop(harness)
        await restarted(harness)  # a third start: nothing booked again, nothing learnt again
        await harness.tick()

    assert trade.entry_order_id == result_entry_id(harness)
    await assert_learnt_once(harness, desk, trade, logs)


def result_entry_id(harness: Harness) -> str:
    [entry] = [r for r in harness.exchange.received if not r.reduce_only]
    return entry.client_order_id


async def test_a_trade_amended_with_fees_read_later_moves_the_recent_r() -> None:
    """The trade's fees read after it was booked (keeper/fees.py) lower its R; the ledger's
    amendment reaches the desk, whose recent R is read anew (was: the R booked at the close
    stayed there until a restart). The Q-table keeps what it learnt at the close."""
    exchange = WatchedExchange(RULES, dict(PRICES), T0)
    exchange.repository, exchange.kept_on_arrival = InMemoryRepository(), []
    keeper, desk, ledger = await program_on(exchange)
    harness = Harness(exchange, exchange.repository, keeper, T0)
    await harness.keeper.enter(rl_order(harness), harness.now)
    trade = await closed_at_stop(harness)
    assert trade.r_multiple is not None
    assert desk.recent_r == [trade.r_multiple]
    assert desk.agent is not None
    learnt = desk.agent.value(STATE, ACTION)

    amended = replace(trade, fees_usdt=trade.fees_usdt + 1, pnl_usdt=trade.pnl_usdt - 1,
                      r_multiple=trade.r_multiple - 0.25)  # fmt: skip
    assert await ledger.amend_trade(amended, harness.now) == trade

    assert desk.recent_r == [pytest.approx(trade.r_multiple - 0.25)]
    assert desk.agent.value(STATE, ACTION) == learnt
