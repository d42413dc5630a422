"""A position no stop of its quantity can cover gets a close-all stop (Binance's closePosition).

Binance refuses a stop below the symbol's minimum quantity, so a position left below it (a
person's reduction, a minimum raised) had its stop refused on every tick and stayed open
without one (an outside probe, 2026-12-06: INJ with step 1 and minimum 10, 8 held). A
close-all stop carries no quantity, so no lot filter applies: it closes whatever is held.
Binance keeps one per symbol and side (-4130), so moving it cancels the old one first. On the
paper exchange, which refuses both a stop below the minimum and a second close-all as Binance
does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from position_builders import position, protected, stop_order
from structlog.testing import capture_logs
from test_keeper_partial_minimum import INJ, RULES, T0, entry, inj_keeper

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import (
    ZERO,
    Bars,
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    ReasonCode,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.protect import StopWhy, check_protection, fits_quantity_stop
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import replace
from quantum_trader.storage.memory import InMemoryRepository

BALANCE = Decimal(100_000)


def bars(closes: list[float]) -> Bars:
    """5 m bars at `closes`, the last one held for a day."""
    close = np.array(closes + [closes[-1]] * 288)
    return Bars(
        symbol=INJ,
        timeframe_ms=300_000,
        time_ms=ms_from_utc(T0) + 300_000 * np.arange(len(close), dtype=np.int64),
        open=close,
        high=close,
        low=close,
        close=close,
        volume=np.ones(len(close)),
    )


async def keeper_holding(
    closes: list[float],
    held: int,
    sold_by_hand: int,
    exchange: type[PaperExchange] = PaperExchange,
) -> tuple[PositionKeeper, PaperExchange, ManualClock, InMemoryRepository]:
    """The keeper's long of `held` INJ at 20 (stop 19.4), of which a person then sold
    `sold_by_hand` on the exchange, ticked once after the sale."""
    keeper, paper, clock, repository = await inj_keeper(bars(closes), MonitorSettings(), exchange)
    await keeper.enter(entry(Decimal(held)), clock.now())
    clock.advance(60)
    await keeper.tick(clock.now(), rest=True)
    sale = OrderRequest(
        "web_by_hand_1", INJ, OrderSide.SELL, OrderKind.MARKET, Decimal(sold_by_hand),
        reduce_only=True,
    )  # fmt: skip
    await paper.place_order(sale)
    clock.advance(60)
    await keeper.tick(clock.now(), rest=True)
    return keeper, paper, clock, repository


def unexpected_errors(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Error lines: none is expected of a position below the minimum (its stop is a close-all
    one, its market exits the smallest market order that fits above it)."""
    return [e for e in logs if e["log_level"] == "error"]


async def closed_in_ten_ticks(
    keeper: PositionKeeper, paper: PaperExchange, clock: ManualClock
) -> None:
    """Ten ticks five minutes apart, no error line among them, and nothing held after."""
    with capture_logs() as logs:
        for _ in range(10):
            clock.advance(300)
            await keeper.tick(clock.now(), rest=True)
    assert unexpected_errors(logs) == []
    assert await paper.fetch_positions() == []


async def exits_sent(repository: InMemoryRepository) -> list[Order]:
    orders = await repository.orders(INJ)
    return [o for o in orders if purpose_of(o.client_order_id) is Purpose.EXIT]


async def our_stops(paper: PaperExchange) -> list[Order]:
    return [
        o for o in await paper.fetch_open_conditional_orders(INJ) if o.kind is OrderKind.STOP_MARKET
    ]


async def test_a_position_below_the_minimum_gets_a_close_all_stop_that_closes_it() -> None:
    # Flat at 20 for half an hour, then 19 (below the stop at 19.4).
    keeper, paper, clock, _ = await keeper_holding([20.0] * 6 + [19.0], 24, 16)

    [stop] = await our_stops(paper)
    assert stop.close_position
    assert stop.reduce_only
    assert stop.quantity == ZERO
    assert stop.trigger_price == Decimal("19.400")
    assert keeper.positions[INJ].quantity == Decimal(8)
    await closed_in_ten_ticks(keeper, paper, clock)
    assert INJ not in keeper.positions
    assert await our_stops(paper) == []


async def test_a_close_all_stop_is_moved_by_cancelling_it_first() -> None:
    # 20, then 21 (+5 %: break-even and then a trailing stop move it up), then 20.5.
    closes = [20.0] * 3 + [21.0] * 30 + [20.5]
    keeper, paper, clock, repository = await keeper_holding(closes, 24, 16)
    [first] = await our_stops(paper)
    assert first.close_position
    with capture_logs() as logs:
        for _ in range(40):
            clock.advance(300)
            await keeper.tick(clock.now(), rest=True)
            assert len(await our_stops(paper)) <= 1

    assert unexpected_errors(logs) == []
    moved = [e for e in logs if e["event"] == "protective_stop_placed"]
    assert moved
    assert all(e["close_all"] for e in moved)
    assert await paper.fetch_positions() == []  # the moved stop closed it at 20.5
    trades = await repository.closed_trades()
    trade = trades[-1]  # after the part the person sold
    assert trade.exit_reason is not ExitReason.PROTECTION_FAILED
    assert trade.exit_price > Decimal(20)


async def test_a_position_the_person_grew_back_above_the_minimum_keeps_its_close_all_stop() -> None:
    keeper, paper, clock, _ = await keeper_holding([20.0] * 300, 24, 16)
    purchase = OrderRequest("web_by_hand_2", INJ, OrderSide.BUY, OrderKind.MARKET, Decimal(12))
    await paper.place_order(purchase)
    with capture_logs() as logs:
        for _ in range(4):
            clock.advance(300)
            await keeper.tick(clock.now(), rest=True)

    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["position_grown"]
    [stop] = await our_stops(paper)
    assert stop.close_position  # it covers the 20 held: nothing to resize
    [held] = await paper.fetch_positions()
    assert held.quantity == Decimal(20)


@pytest.mark.parametrize(
    ("quantity", "fits"),
    [("10", True), ("24", True), ("9", False), ("10.5", False), ("0", False)],
)
def test_a_quantity_stop_fits_only_on_the_step_and_at_least_the_minimum(
    quantity: str, fits: bool
) -> None:
    assert fits_quantity_stop(Decimal(quantity), RULES) is fits
    assert fits_quantity_stop(Decimal(quantity), None)  # rules unknown: as before


def test_a_close_all_stop_of_ours_covers_any_quantity_and_is_never_resized() -> None:
    held = protected(position(quantity=Decimal("0.0007")))  # below BTC's minimum of 0.001
    close_all = replace(stop_order(held, held.stop_order_id or ""), quantity=ZERO)
    check = check_protection(held, [replace(close_all, close_position=True)], Decimal("0.1"))
    assert check.current is not None
    assert check.needs is None
    assert not check.moved
    # The same order without the flag is a stop of no quantity: resized at once.
    assert check_protection(held, [close_all], Decimal("0.1")).needs is StopWhy.RESIZED


async def test_a_position_below_the_minimum_leaves_at_its_target_by_an_order_that_fits() -> None:
    # Flat at 20 for half an hour, then 24 (past the target at 23). The stop maths' exit of
    # the 8 held, refused below the minimum, goes out again as the smallest market order that
    # fits (10), reduce-only, so what is held is closed (was: refused on every tick).
    keeper, paper, clock, repository = await keeper_holding([20.0] * 6 + [24.0], 24, 16)
    await closed_in_ten_ticks(keeper, paper, clock)
    assert INJ not in keeper.positions
    assert await our_stops(paper) == []
    [trade] = await repository.closed_trades()  # the 24 entered: 16 sold by hand, 8 ours
    assert trade.exit_reason is ExitReason.TP_HIT
    assert trade.exit_price > Decimal(23)
    exits = await exits_sent(repository)
    # Its own 8 first, refused below the minimum here, then the 10 that fits.
    assert [(o.quantity, o.status, o.reduce_only) for o in exits] == [
        (Decimal(8), OrderStatus.REJECTED, True),
        (Decimal(10), OrderStatus.FILLED, True),
    ]


class ExactCloses(PaperExchange):
    """Binance as one reading of its documents has it: a reduce-only market order below the
    minimum taken when it closes no more than is held, one larger than the position refused
    (-2022, its FAQ "Summary of Failed Orders in Binance Futures" read without the exemption
    of market orders that its German version states)."""

    async def place_order(self, request: OrderRequest) -> Order:
        if request.reduce_only and request.kind is OrderKind.MARKET:
            [held] = [p for p in await self.fetch_positions() if p.symbol == request.symbol]
            if request.quantity > held.quantity:
                raise OrderRejected(ReasonCode.ORDER_REJECTED, "ReduceOnly Order is rejected.")
            if request.quantity < RULES.min_quantity:
                self._rules[INJ] = replace(RULES, min_quantity=request.quantity)  # the ledger's
                try:
                    return await super().place_order(request)
                finally:
                    self._rules[INJ] = RULES
        return await super().place_order(request)


async def test_a_close_below_the_minimum_the_exchange_takes_as_it_is_is_sent_once() -> None:
    keeper, paper, clock, repository = await keeper_holding(
        [20.0] * 6 + [24.0], 24, 16, ExactCloses
    )
    await closed_in_ten_ticks(keeper, paper, clock)
    exits = await exits_sent(repository)
    assert [(o.quantity, o.status) for o in exits] == [(Decimal(8), OrderStatus.FILLED)]
    [trade] = await repository.closed_trades()
    assert trade.exit_reason is ExitReason.TP_HIT


class StrictCloses(PaperExchange):
    """Binance refusing both forms: a reduce-only market order larger than the position
    (-2022: its FAQ "Summary of Failed Orders in Binance Futures" read without its exemption
    of market orders; any refusal of the second form alike), and one below the minimum (-4004,
    the paper exchange's own), so a position below the minimum has no market order that
    closes it."""

    async def place_order(self, request: OrderRequest) -> Order:
        if request.reduce_only and request.kind is OrderKind.MARKET:
            [held] = [p for p in await self.fetch_positions() if p.symbol == request.symbol]
            if request.quantity > held.quantity:
                raise OrderRejected(ReasonCode.ORDER_REJECTED, "ReduceOnly Order is rejected.")
        return await super().place_order(request)


async def test_a_close_below_the_minimum_taken_in_neither_form_is_said_once_and_tried_each_minute() -> (  # noqa: E501
    None
):
    """Past its target, the 8 INJ held (minimum 10) on an exchange that refuses both its own
    quantity and the 10 that fits: one error line, the close tried again once a minute (both
    forms, each refused), the close-all stop kept. Was: both sent and an error line on every
    tick, for as long as the exit was due."""
    keeper, paper, clock, repository = await keeper_holding(
        [20.0] * 6 + [24.0], 24, 16, StrictCloses
    )
    clock.advance(30 * 60)  # the mark at 24, past the target at 23
    with capture_logs() as logs:
        for _ in range(25):  # two minutes of the monitor's 5 s ticks
            clock.advance(5)
            await keeper.tick(clock.now(), rest=True)

    assert [e["event"] for e in unexpected_errors(logs)] == ["exit_rejected"]
    exits = await exits_sent(repository)
    assert [(o.quantity, o.status) for o in exits] == [
        (Decimal(8), OrderStatus.REJECTED),
        (Decimal(10), OrderStatus.REJECTED),
    ] * 3  # at the first tick past the target, a minute later and two minutes later
    [held] = await paper.fetch_positions()
    assert held.quantity == Decimal(8)
    [stop] = await our_stops(paper)
    assert stop.close_position
