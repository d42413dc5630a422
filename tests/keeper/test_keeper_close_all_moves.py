"""Moving a close-all stop when the exchange does not go along, and close-all orders not ours.

Binance keeps one close-all order per symbol and side (-4130), so ours is moved by cancelling it
first (keeper/carry_close_all.py). An outside probe (2026-12-06, afternoon) found: a person's
own close-all order on the side made ours refused, alerted and the position closed at market
on every tick; a cancel not confirmed was followed by a placement Binance refuses, and a market
close; a replacement that failed after the cancel left the position bare with a warning only;
every move cancelled the old stop twice; and Binance's ending of a close-all order with its
position (time in force GTE) read as a stop cancelled by hand. On fakes built on the paper
exchange, which refuses and expires close-all orders as Binance does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs
from test_keeper_close_all_stop import bars, unexpected_errors
from test_keeper_partial_minimum import INJ, entry, inj_keeper

from quantum_trader.clock import ManualClock
from quantum_trader.domain import ZERO, Order, OrderKind, OrderRequest, OrderSide, ReasonCode
from quantum_trader.errors import OrderRejected, OrderStateUnknown, RateLimited
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings

# 20, then 21 from the fourth bar: break-even, then the trailing stop, move the stop up.
RISING = [20.0] * 3 + [21.0] * 60


class Faulty(PaperExchange):
    """The paper exchange, with the faults a test sets: the next close-all placements fail
    with `placements` (in order), the next cancels are not confirmed (`unconfirmed`); every
    cancel asked for is counted."""

    placements: list[Exception]
    unconfirmed = 0
    cancels: list[str]

    async def place_order(self, request: OrderRequest) -> Order:
        if request.close_position and self.placements:
            raise self.placements.pop(0)
        return await super().place_order(request)

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        self.cancels.append(client_order_id)
        if self.unconfirmed > 0:
            self.unconfirmed -= 1
            raise OrderStateUnknown(client_order_id, "cancel not confirmed: timed out")
        await super().cancel_conditional_order(symbol, client_order_id)


async def holding_8(closes: list[float]) -> tuple[PositionKeeper, Faulty, ManualClock]:
    """24 INJ of ours, 16 sold by hand: 8 held under a minimum of 10, its close-all stop on."""
    keeper, paper, clock, _ = await inj_keeper(bars(closes), MonitorSettings(), Faulty)
    paper.placements, paper.cancels = [], []
    await keeper.enter(entry(Decimal(24)), clock.now())
    clock.advance(60)
    await keeper.tick(clock.now(), rest=True)
    await paper.place_order(sell_by_hand("web_by_hand_1", 16))
    clock.advance(60)
    await keeper.tick(clock.now(), rest=True)
    [stop] = await stops(paper)
    assert stop.close_position
    return keeper, paper, clock


def sell_by_hand(client_order_id: str, quantity: int) -> OrderRequest:
    return OrderRequest(
        client_order_id, INJ, OrderSide.SELL, OrderKind.MARKET, Decimal(quantity),
        reduce_only=True,
    )  # fmt: skip


async def stops(paper: PaperExchange) -> list[Order]:
    listed = await paper.fetch_open_conditional_orders(INJ)
    return [o for o in listed if o.kind is OrderKind.STOP_MARKET]


async def ticks(
    keeper: PositionKeeper, clock: ManualClock, count: int, seconds: int = 5
) -> Sequence[Mapping[str, Any]]:
    with capture_logs() as logs:
        for _ in range(count):
            clock.advance(seconds)
            await keeper.tick(clock.now(), rest=True)
    return logs


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_a_close_all_order_not_ours_on_the_side_is_said_once_and_never_closed_against() -> (
    None
):
    keeper, paper, clock, _ = await inj_keeper(bars([20.0] * 300), MonitorSettings(), Faulty)
    paper.placements, paper.cancels = [], []
    alerts: list[ProtectionAlert] = []
    keeper.alert_listeners.append(alerts.append)
    await keeper.enter(entry(Decimal(24)), clock.now())
    clock.advance(60)
    await keeper.tick(clock.now(), rest=True)
    # The person sets a stop "for the entire position" in Binance's app, then sells 16.
    theirs = OrderRequest(
        "web_sl_1", INJ, OrderSide.SELL, OrderKind.STOP_MARKET, ZERO,
        trigger_price=Decimal(15), reduce_only=True, close_position=True,
    )  # fmt: skip
    await paper.place_order(theirs)
    await paper.place_order(sell_by_hand("web_by_hand_1", 16))

    logs = await ticks(keeper, clock, 36)  # three minutes

    refused = events(logs, "protective_stop_failed")
    assert len(refused) == 1  # said once (was: every tick, each an alert)
    assert "holds this side" in refused[0]["detail"]
    assert [a.event for a in alerts] == ["protective_stop_failed"]
    assert events(logs, "exit_rejected") == []  # no close at market (was: every tick)
    assert len(events(logs, "protective_stop_still_refused")) == 2  # tried again each minute
    [held] = await paper.fetch_positions()
    assert held.quantity == Decimal(8)
    assert {o.client_order_id for o in await stops(paper)} >= {"web_sl_1"}


async def test_a_close_all_stop_not_confirmed_cancelled_is_not_placed_beside() -> None:
    keeper, paper, clock = await holding_8(RISING)
    paper.unconfirmed = 1  # the move's cancel times out once

    logs = await ticks(keeper, clock, 40, seconds=60)

    assert len(events(logs, "protective_stop_move_deferred")) == 1
    assert unexpected_errors(logs) == []  # no -4130 refusal, no close at market
    [moved] = await stops(paper)
    assert moved.close_position
    assert moved.trigger_price is not None
    assert moved.trigger_price > Decimal("19.4")  # moved on a later tick
    assert await paper.fetch_positions() != []


async def test_a_failed_replacement_puts_the_cancelled_close_all_stop_back() -> None:
    keeper, paper, clock = await holding_8(RISING)
    refusal = OrderRejected(ReasonCode.ORDER_REJECTED, "Order would immediately trigger. (-2021)")
    paper.placements = [refusal]

    with capture_logs() as logs:
        for _ in range(6):
            clock.advance(300)
            await keeper.tick(clock.now(), rest=True)
            assert len(await stops(paper)) == 1  # protected after every tick

    [put_back] = events(logs, "protective_stop_put_back")
    assert put_back["trigger"] == "19.400"
    assert events(logs, "exit_rejected") == []  # no close at market


async def test_a_replacement_and_its_put_back_both_failing_is_an_alert() -> None:
    keeper, paper, clock = await holding_8(RISING)
    alerts: list[ProtectionAlert] = []
    keeper.alert_listeners.append(alerts.append)
    paper.placements = [RateLimited("HTTP 429", 120.0), RateLimited("HTTP 429", 120.0)]

    logs = await ticks(keeper, clock, 6, seconds=300)

    assert [a.event for a in alerts][:1] == ["protective_stop_failed"]
    assert "could not go back" in alerts[0].detail
    [moved] = await stops(paper)  # the next tick's placement went through
    assert moved.close_position
    assert unexpected_errors(logs)[0]["event"] == "protective_stop_failed"


async def test_a_move_cancels_the_old_close_all_stop_once() -> None:
    keeper, paper, clock = await holding_8(RISING)

    await ticks(keeper, clock, 40, seconds=60)

    assert paper.cancels
    assert len(paper.cancels) == len(set(paper.cancels))  # was: each one twice


async def test_a_close_all_stop_binance_ends_with_a_close_by_hand_is_not_a_stop_gone() -> None:
    keeper, paper, clock = await holding_8([20.0] * 300)
    more = OrderRequest("web_by_hand_2", INJ, OrderSide.BUY, OrderKind.MARKET, Decimal(12))
    await paper.place_order(more)
    await ticks(keeper, clock, 1)
    await paper.place_order(sell_by_hand("web_by_hand_3", 20))  # the close-all ends with it

    logs = await ticks(keeper, clock, 3)

    assert events(logs, "protective_stop_gone") == []
    assert await stops(paper) == []
    assert INJ not in keeper.positions


async def test_a_close_all_refused_for_want_of_a_position_is_no_alert_and_no_close() -> None:
    # -4509: the position closed before the stop went on (the next tick books what closed it).
    keeper, paper, clock = await holding_8(RISING)
    alerts: list[ProtectionAlert] = []
    keeper.alert_listeners.append(alerts.append)
    gone = "Time in Force (TIF) GTE can only be used with open positions. (-4509)"
    paper.placements = [OrderRejected(ReasonCode.NO_POSITION_FOR_CLOSE_ALL, gone)]

    logs = await ticks(keeper, clock, 6, seconds=300)

    assert len(events(logs, "protective_stop_not_needed")) == 1
    assert alerts == []
    assert unexpected_errors(logs) == []
