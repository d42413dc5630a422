"""A position's take-profit that is missing is placed again (keeper/target.py).

Was: placed once, when the entry was booked; one cancelled by hand, expired, refused once or
never sent (a stop of the process between the entry's booking and its sending) was never
placed again, and while the daemon was down the exchange held no take-profit. Now each tick
places it again — after the stop, at the target on the tick grid, for the position's quantity —
unless its own is still listed or unsettled, one of ours executed, the mark has reached the
target, an exit closes all of it, or a refusal is being waited out (one warning an episode).

The pure planning function, the keeper's steady check, and the keeper on the model exchange.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from position_builders import NOW, SETTINGS, position, protected, stop_order
from structlog.testing import capture_logs
from test_keeper_properties import RULES, SYMBOLS, Harness
from test_keeper_scenarios import ours

from quantum_trader.domain import (
    ExitReason,
    MarketRules,
    OrderKind,
    OrderSide,
    OrderStatus,
    Position,
    Side,
)
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Context
from quantum_trader.keeper.protect import PlaceTarget, SendExit
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.keeper.steady import steady
from quantum_trader.keeper.target import target_again

TICK_GRID = MarketRules(
    "BTC/USDT:USDT", Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(1)
)
RETRY = timedelta(seconds=SETTINGS.take_profit_retry_s)
MARK = Decimal(90_500)  # between the SPEC position's entry 90,000 and target 95,400
BTC = SYMBOLS[0]


def again(
    held: Position,
    *,
    listed: Sequence[Any] = (),
    planned: Sequence[Any] = (),
    mark: Decimal | None = MARK,
    refused_at: Any = None,
    now: Any = NOW,
) -> list[PlaceTarget]:
    return target_again(held, listed, planned, mark, refused_at, now, SETTINGS, TICK_GRID)


def said(logs: Sequence[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == event]


# -- the planning function ---------------------------------------------------------------------


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_a_missing_take_profit_is_placed_at_the_target_on_the_tick_for_the_position(
    side: Side,
) -> None:
    off_grid = Decimal("95400.04") if side is Side.LONG else Decimal("84599.96")
    held = replace(position(side), take_profit_price=off_grid)
    mark = MARK if side is Side.LONG else Decimal(89_000)
    [place] = again(held, mark=mark)
    expected = Decimal("95400.0") if side is Side.LONG else Decimal("84600.0")
    assert place == PlaceTarget(held.symbol, side.exit_order_side, held.quantity, expected)


def test_none_while_the_position_names_its_own() -> None:
    """Listed, or gone from the list and not settled yet (the tick that settles it as ended
    unfilled forgets it), or one that executed (keeper/settle.py `took_profit`)."""
    held = replace(protected(position()), take_profit_order_id="qt-t-BTC-abc-2")
    own = stop_order(held, "qt-t-BTC-abc-2", kind=OrderKind.TAKE_PROFIT_MARKET)
    assert again(held, listed=[own]) == []
    assert again(held) == []


def test_none_while_a_take_profit_of_ours_is_executing() -> None:
    """One that met its trigger and is not done may be filling: wait for its end."""
    held = position()
    firing = replace(
        stop_order(held, "qt-t-BTC-abc-2", kind=OrderKind.TAKE_PROFIT_MARKET),
        triggered_at=NOW - timedelta(seconds=2),
    )
    assert again(held, listed=[firing]) == []
    done = replace(firing, status=OrderStatus.FILLED)
    assert len(again(held, listed=[done])) == 1  # a final one listed is no obstacle


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_none_when_the_mark_is_at_or_past_the_target_or_not_read(side: Side) -> None:
    """Binance refuses a take-profit the mark has reached (-2021); the stop maths exits at
    market on that tick. Without a mark the tick cannot tell: it waits for one."""
    held = position(side)
    target = held.take_profit_price
    step = Decimal(1) * side.sign
    assert again(held, mark=target) == []
    assert again(held, mark=target + step) == []
    assert again(held, mark=None) == []
    assert len(again(held, mark=target - step)) == 1


def test_none_when_an_exit_closes_all_of_it_and_the_whole_beside_a_part_exit() -> None:
    held = position()
    side = held.side.exit_order_side
    whole = SendExit(held.symbol, side, held.quantity, ExitReason.TIME_EXIT)
    assert again(held, planned=[whole]) == []
    part = SendExit(held.symbol, side, held.quantity / 2, ExitReason.PARTIAL_TP)
    [place] = again(held, planned=[part])
    assert place.quantity == held.quantity  # reduce-only: what is left caps it


def test_a_refusal_is_waited_out_for_the_retry_interval() -> None:
    held = position()
    assert again(held, refused_at=NOW, now=NOW + RETRY - timedelta(seconds=1)) == []
    assert len(again(held, refused_at=NOW, now=NOW + RETRY)) == 1


def test_none_without_a_target_or_for_a_position_adopted_from_the_exchange() -> None:
    assert again(replace(position(), take_profit_price=Decimal(0))) == []
    adopted = replace(position(), entry_order_id="adopted-BTC-1756728000000")
    assert again(adopted) == []


def test_a_steady_book_is_not_steady_while_a_take_profit_is_due() -> None:
    """A backtest's quiet-step check (keeper/steady.py) runs the tick that places it, and not
    one within the retry interval of a refusal."""
    held = protected(position(symbol=BTC), "qt-s-0-r1-1")
    stop = stop_order(held, "qt-s-0-r1-1")
    book = Book({BTC: held}, working={stop.client_order_id: stop})
    context = Context({BTC: TICK_GRID}, KeeperSettings(), SETTINGS)
    listed = {BTC: [stop]}
    assert steady(book, listed, {BTC: MARK}, NOW, context, ProtectionChecks()) is None
    refused = replace(book, targets_refused={BTC: NOW})
    later = NOW + RETRY / 2
    assert steady(refused, listed, {BTC: MARK}, later, context, ProtectionChecks()) is not None
    assert steady(refused, listed, {BTC: MARK}, NOW + RETRY, context, ProtectionChecks()) is None


# -- the keeper on the model exchange ----------------------------------------------------------


def open_targets(harness: Harness) -> list[tuple[str, Decimal, Decimal | None]]:
    return [
        (o.client_order_id, o.quantity, o.trigger_price)
        for o in harness.exchange.orders.values()
        if o.symbol == BTC
        and o.kind is OrderKind.TAKE_PROFIT_MARKET
        and o.status is OrderStatus.OPEN
    ]


async def entered() -> tuple[Harness, str]:
    """A keeper that entered BTC long at 100 (3 BTC, stop 97, target 106), its take-profit id."""
    harness = await Harness.start()
    await harness.tick()
    await harness.enter(BTC, Side.LONG)
    [(first, quantity, trigger)] = open_targets(harness)
    assert (quantity, trigger) == (Decimal("3.000"), Decimal("106.00"))
    return harness, first


async def cancel_by_hand(harness: Harness, client_order_id: str) -> None:
    await harness.exchange.cancel_conditional_order(BTC, client_order_id)


async def test_a_take_profit_cancelled_by_hand_is_placed_again_once_with_a_new_id() -> None:
    harness, first = await entered()
    await cancel_by_hand(harness, first)
    with capture_logs() as logs:
        for _ in range(5):
            await harness.tick()

    [(second, quantity, trigger)] = open_targets(harness)
    assert second != first
    assert (quantity, trigger) == (Decimal("3.000"), Decimal("106.00"))
    assert ours(harness.exchange, Purpose.TARGET) == [first, second]
    assert harness.keeper.positions[BTC].take_profit_order_id == second
    saved = {p.symbol: p for p in await harness.repository.open_positions()}
    assert saved[BTC].take_profit_order_id == second  # persisted as the entry's is
    [line] = said(logs, "take_profit_missing")
    assert line["log_level"] == "warning"
    assert len(ours(harness.exchange, Purpose.STOP)) == 1  # the stop untouched


async def test_a_take_profit_is_not_placed_again_while_its_end_is_unknown() -> None:
    """Cancelled by hand while its lookups fail: it may have filled, so nothing goes after it
    until a lookup tells how it ended."""
    harness, first = await entered()
    await cancel_by_hand(harness, first)
    harness.exchange.lookups_unreadable = 3
    for _ in range(3):
        await harness.tick()
    assert ours(harness.exchange, Purpose.TARGET) == [first]
    await harness.tick()
    assert len(ours(harness.exchange, Purpose.TARGET)) == 2


async def test_a_refused_take_profit_is_tried_again_after_the_interval_said_once() -> None:
    """Refused on its first try and on its retry: one warning for the episode, no try in
    between (not one a tick), the stop left alone; placed on the next retry."""
    harness, first = await entered()
    await cancel_by_hand(harness, first)
    ticks_per_retry = int(RETRY / timedelta(seconds=5))
    with capture_logs() as logs:
        harness.exchange.reject_next = True
        await harness.tick()
        assert len(ours(harness.exchange, Purpose.TARGET)) == 2  # refused
        for _ in range(ticks_per_retry - 1):
            await harness.tick()
        assert len(ours(harness.exchange, Purpose.TARGET)) == 2  # waited out
        harness.exchange.reject_next = True
        await harness.tick()
        assert len(ours(harness.exchange, Purpose.TARGET)) == 3  # refused again
        for _ in range(ticks_per_retry):
            await harness.tick()

    assert len(ours(harness.exchange, Purpose.TARGET)) == 4
    [(placed, _, _)] = open_targets(harness)
    assert harness.keeper.positions[BTC].take_profit_order_id == placed
    refusals = said(logs, "take_profit_order_failed")
    assert [e["log_level"] for e in refusals] == ["warning", "info"]
    assert len(said(logs, "take_profit_missing")) == 1
    assert len(ours(harness.exchange, Purpose.STOP)) == 1
    assert harness.keeper.book.targets_refused == {}


async def test_no_take_profit_after_one_of_ours_that_filled() -> None:
    """The position grew by hand past its take-profit's quantity; the take-profit filled and
    left the part added by hand, the mark back under the target: the rest is the stop's and
    the stop maths', no second take-profit."""
    harness, first = await entered()
    harness.exchange.by_hand(BTC, OrderSide.BUY, Decimal(1))
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == Decimal("4.000")
    harness.exchange.move(BTC, Decimal(106))  # the take-profit fires: 3 of 4 sold
    harness.exchange.move(BTC, Decimal(103))  # under the partial take-profit's +4 %
    for _ in range(5):
        await harness.tick()

    held = harness.keeper.positions[BTC]
    assert held.quantity == Decimal("1.000")
    assert held.take_profit_order_id == first
    assert ours(harness.exchange, Purpose.TARGET) == [first]
    assert harness.exchange.orders[first].status is OrderStatus.FILLED
    harness.exchange.move(BTC, Decimal(107))  # the stop maths sells the rest at the target
    with capture_logs() as logs:
        await harness.tick()
    assert BTC not in harness.keeper.positions
    assert said(logs, "cancel_not_needed") == []  # no cancel sent for the one that filled


async def test_a_restart_with_the_take_profit_cancelled_meanwhile_places_it_once() -> None:
    """Cancelled by hand while the daemon was down: the restart's tick places it, once."""
    harness, first = await entered()
    await cancel_by_hand(harness, first)
    await harness.restart()
    for _ in range(3):
        await harness.tick()
    assert len(ours(harness.exchange, Purpose.TARGET)) == 2
    assert len(open_targets(harness)) == 1


def test_rules_of_the_model_exchange_put_the_target_on_its_tick() -> None:
    assert RULES[BTC].round_price(Decimal("106.004")) == Decimal("106.00")
