"""A stop of ours that fired is booked as ours (SL_HIT at its fills), not as a close by hand.

Found by the campaign with a person trading by hand (helper-49, 2026-12-03): (a) our stop
filled while its lookup by client id failed (HTTP 429): the same tick booked the position
closed outside the program, MANUAL — at the mark, or at the stop's own trade, which the
account's trades list under an order id not ours (seeds 30024, 30055, 30078, 30105; 30156,
30163, 30175); (b) our stop, larger than the position after a reduction by hand, fired in the
same tick as the reduction was seen: it executed what was held and ended EXPIRED, and the
close was booked MANUAL, the person's part booked last (seeds 30031, 30078, 30123, 30126,
30146). Time in keeper ticks (the model exchange; `Harness.tick` is 5 s)."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from model_exchange import ModelExchange
from position_builders import NOW, SETTINGS, position, protected
from structlog.testing import capture_logs
from test_keeper_external_exits import by_hand, fee_paid, opened, partial_taken
from test_keeper_fees_unread import BTC, sent
from test_keeper_properties import PRICES, RULES, T0, Harness, keeper_on, sized

from quantum_trader.domain import (
    ExchangePosition,
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    Side,
)
from quantum_trader.keeper.answer import answered
from quantum_trader.keeper.book import Book, Intent
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Context
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.storage.memory import InMemoryRepository


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_our_stop_filled_while_its_lookup_fails_awaits_the_lookup_and_books_sl_hit() -> None:
    """Our stop fires and fills at 97; its lookups fail for 3 ticks. The reduction awaits the
    lookup (`reduction_awaits_orders`), then is booked as the stop: SL_HIT at its trigger,
    its fee counted (was: MANUAL in the same tick, at the stop's own trade read from the
    account's trades, or at the mark when those could not be read)."""
    harness = await Harness.start()
    exchange = harness.exchange
    await opened(harness)
    position = harness.keeper.positions[BTC]
    assert position.stop_order_id is not None
    stop = exchange.orders[position.stop_order_id]
    assert stop.trigger_price is not None
    exchange.lookups_unreadable = 3
    exchange.move(BTC, stop.trigger_price - 1)
    assert exchange.orders[stop.client_order_id].status is OrderStatus.FILLED
    assert BTC not in exchange.held
    exchange.move(BTC, stop.trigger_price - 2)  # the mark moves on
    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()
    assert BTC in harness.keeper.positions  # awaiting the lookup
    assert len(_events(logs, "reduction_awaits_orders")) == 3
    assert not _events(logs, "position_closed_externally")
    assert await harness.repository.closed_trades() == []
    await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, stop.trigger_price)
    assert trade.fees_usdt == position.fees_usdt + fee_paid(harness, stop.client_order_id)
    assert sent(exchange, Purpose.EXIT) == []


async def test_a_close_by_hand_while_our_stops_lookup_fails_is_booked_once_it_answers() -> None:
    """A person closes the position while our stop rests (not fired) and its lookup fails —
    the stop is cancelled by hand too, so it is gone from the open list: the reduction awaits
    the lookup, then, the stop found CANCELED, is booked MANUAL at the person's trade."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    position = harness.keeper.positions[BTC]
    assert position.stop_order_id is not None
    await exchange.cancel_conditional_order(BTC, position.stop_order_id)
    exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_51", OrderSide.SELL, quantity)
    exchange.move(BTC, Decimal(104))
    exchange.lookups_unreadable = 2
    for _ in range(2):
        await harness.tick()
    assert BTC in harness.keeper.positions
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, Decimal(102))
    assert trade.fees_usdt == position.fees_usdt + fee_paid(harness, "web_closed_51")


async def sold_then_stopped(harness: Harness, name: str) -> tuple[Position, Order, Decimal]:
    """Our long opened; a person sells a third at 99 (`name`), then the mark falls through
    our stop, for the whole long: it executes the two thirds held. The position as booked
    before, the stop as placed, the third."""
    exchange = harness.exchange
    quantity = await opened(harness)
    position = harness.keeper.positions[BTC]
    assert position.stop_order_id is not None
    stop = exchange.orders[position.stop_order_id]
    assert stop.trigger_price is not None
    exchange.move(BTC, Decimal(99))
    third = quantity / 3
    await by_hand(harness, name, OrderSide.SELL, third)
    exchange.move(BTC, stop.trigger_price - 1)
    return position, stop, third


async def booked_as_ours_after_theirs(
    harness: Harness, position: Position, stop: Order, name: str
) -> None:
    """`sold_then_stopped`'s one trade: SL_HIT at our stop's trigger, the person's third at
    99, both fees."""
    [trade] = await harness.repository.closed_trades()
    trigger, quantity, third = stop.trigger_price, position.quantity, position.quantity / 3
    assert trigger is not None
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, trigger)
    paid = fee_paid(harness, name) + fee_paid(harness, stop.client_order_id)
    assert trade.fees_usdt == position.fees_usdt + paid
    gross = (Decimal(99) - position.entry_price) * third
    gross += (trigger - position.entry_price) * (quantity - third)
    assert trade.pnl_usdt == gross - trade.fees_usdt - trade.funding_usdt


async def test_our_stop_larger_than_the_position_after_a_sell_by_hand_is_booked_as_ours() -> None:
    """A person sells a third of the long and, before the keeper's next tick, our stop (for
    the whole long: not resized yet) fires: reduce-only, it executes the two thirds held and
    ends EXPIRED. The tick books the person's third MANUAL at its trade and the rest as our
    stop, the trade SL_HIT at the stop's price (was: MANUAL at the person's price, the part
    not ours booked last; the campaign with a person trading by hand, seeds 30031, 30078,
    30123, 30126, 30146)."""
    harness = await Harness.start()
    exchange = harness.exchange
    position, stop, third = await sold_then_stopped(harness, "web_reduced_52")
    quantity, trigger = position.quantity, stop.trigger_price
    assert trigger is not None
    fired = exchange.orders[stop.client_order_id]
    assert (fired.status, fired.filled_quantity) == (OrderStatus.EXPIRED, quantity - third)
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions == {}
    await booked_as_ours_after_theirs(harness, position, stop, "web_reduced_52")
    [note] = _events(logs, "position_closed_externally")
    assert f"LONG {third} gone" in str(note["detail"])
    assert "the account's 1 trade(s) 99" in str(note["detail"])


async def test_our_stop_is_resized_down_at_once_after_a_reduction_by_hand() -> None:
    """KEEPER's "resized at once after a partial exit" holds for a reduction by hand too: the
    tick that books it places a stop for what is left and cancels the larger one, so our
    stop is larger than the position only until the keeper sees the reduction."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    old = harness.keeper.positions[BTC].stop_order_id
    assert old is not None
    third = quantity / 3
    await by_hand(harness, "web_reduced_53", OrderSide.SELL, third)
    await harness.tick()

    position = harness.keeper.positions[BTC]
    assert position.quantity == quantity - third
    assert position.stop_order_id not in (None, old)
    assert exchange.orders[old].status is OrderStatus.CANCELED
    assert exchange.orders[position.stop_order_id].quantity == quantity - third


@pytest.mark.parametrize(
    ("kind", "trigger", "reason"),
    [
        (OrderKind.STOP_MARKET, Decimal(87_300), ExitReason.SL_HIT),
        (OrderKind.TAKE_PROFIT_MARKET, Decimal(95_400), ExitReason.TP_HIT),
    ],
    ids=["stop", "take-profit"],
)
def test_a_stop_placed_and_filled_before_its_answer_is_booked_as_the_stop(
    kind: OrderKind, trigger: Decimal, reason: ExitReason
) -> None:
    """Our stop for what is left after reductions by hand was placed with the mark at it: its
    answer was lost, and the lookup made at once found it filled already. That answer books
    the close as the stop (its reason by where it stood), not MANUAL at the stop's own price
    (the campaign with a person trading by hand, seed 30126: `order_state_recovered`, then
    MANUAL at the stop's fill, with no close by hand)."""
    held = protected(position(), "qt-s-BTC-a-1")
    request = OrderRequest(
        "qt-s-BTC-a-2", BTC, OrderSide.SELL, kind, held.quantity, trigger, reduce_only=True
    )
    intent = Intent(Order.pending(request, NOW), NOW)
    book = Book({BTC: held}).with_intent(intent)
    filled = replace(
        intent.order,
        status=OrderStatus.FILLED,
        filled_quantity=held.quantity,
        average_price=trigger,
        updated_at=NOW,
    )
    context = Context({}, KeeperSettings(), SETTINGS)

    result = answered(book, intent, filled, [], NOW, context, echo=False)

    [draft] = result.trades
    assert (draft.reason, draft.exit_price) == (reason, trigger)


@dataclass
class _FiresAfterPositions(ModelExchange):
    """Moves the mark to `fire_at` (once) right after a read of the positions: our stop fires
    between the tick's read of the positions and that of the open orders."""

    fire_at: Decimal | None = None

    async def fetch_positions(self) -> list[ExchangePosition]:
        read = await super().fetch_positions()
        if self.fire_at is not None:
            self.move(BTC, self.fire_at)
            self.fire_at = None
        return read


async def test_our_stop_that_ran_out_after_the_positions_were_read_is_booked_whole() -> None:
    """A person sells a third of the long; the tick reads the positions (two thirds held),
    then our stop for the whole long fires, executes the two thirds and ends EXPIRED, then
    the open orders are read (no stop). The positions show the person's third gone, not the
    stop's fill: it is planned again from a fresh read (`exit_fill_checked_by_rest`), the
    stop booked whole, the person's third MANUAL at its trade, the trade SL_HIT (was: the
    stop booked for the third the positions showed gone, the rest at the mark a tick later,
    MANUAL; the campaign with a person trading by hand, seed 30078)."""
    exchange = _FiresAfterPositions(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    quantity = await opened(harness)
    position = harness.keeper.positions[BTC]
    assert position.stop_order_id is not None
    stop = exchange.orders[position.stop_order_id]
    assert stop.trigger_price is not None
    exchange.move(BTC, Decimal(99))
    third = quantity / 3
    await by_hand(harness, "web_reduced_54", OrderSide.SELL, third)
    exchange.fire_at = stop.trigger_price - 1
    with capture_logs() as logs:
        await harness.tick()

    assert exchange.orders[stop.client_order_id].status is OrderStatus.EXPIRED
    assert "exit_fill_checked_by_rest" in [e["event"] for e in logs]
    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, stop.trigger_price)
    paid = fee_paid(harness, "web_reduced_54") + fee_paid(harness, stop.client_order_id)
    assert trade.fees_usdt == position.fees_usdt + paid


@dataclass
class _SoldAfterPositions(ModelExchange):
    """A person sells `sell` at the mark right after a read of the positions, then the mark
    moves to `then`: the tick plans for what it read, and our exit meets less."""

    sell: Decimal | None = None
    then: Decimal = Decimal(98)
    lose_our_answer: bool = False  # our exit's, sent next

    async def fetch_positions(self) -> list[ExchangePosition]:
        read = await super().fetch_positions()
        if self.sell is not None:
            request = OrderRequest(
                "web_sold_55", BTC, OrderSide.SELL, OrderKind.MARKET, self.sell, reduce_only=True
            )
            self.sell = None
            await self.place_order(request)
            self.move(BTC, self.then)
            self.lose_next_exit = self.lose_our_answer
        return read


async def _at_the_time_exit(*, lose_our_answer: bool = False) -> tuple[Harness, Decimal]:
    """A long on BTC at 100, the mark at 99 and its 48 h time exit due at the next tick, before
    whose exit a person sells two thirds (`_SoldAfterPositions`); the harness, the quantity."""
    exchange = _SoldAfterPositions(RULES, dict(PRICES), T0, lose_our_answer=lose_our_answer)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(99))
    harness.advance(timedelta(hours=48))
    exchange.sell = quantity - quantity / 3
    return harness, quantity


async def test_our_market_exit_capped_after_a_sell_by_hand_closes_the_trade_as_ours() -> None:
    """The long reaches its 48 h time exit; between the tick's read of the positions and our
    market exit a person sells two thirds at 99. Ours, reduce-only, executes the third left
    at 98: it is booked from its answer that tick, the person's two thirds the next (found
    gone then). The trade's exit is ours — TIME_EXIT at 98, our trade the later one — not
    the person's MANUAL at 99 booked last (the campaign with a person trading by hand, seed
    30721: a break-even exit so capped, booked MANUAL). Both trades are at one instant here:
    Binance's trade ids, which grow, tell their order."""
    harness, quantity = await _at_the_time_exit()
    exchange = harness.exchange
    position = harness.keeper.positions[BTC]
    await harness.tick()
    [exit_] = sent(exchange, Purpose.EXIT)
    ours = exchange.orders[exit_]
    assert ours.filled_quantity == quantity / 3
    assert BTC in harness.keeper.positions  # the person's part is seen next tick
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.TIME_EXIT, Decimal(98))
    paid = fee_paid(harness, "web_sold_55") + fee_paid(harness, exit_)
    assert trade.fees_usdt == position.fees_usdt + paid
    gross = (Decimal(99) - position.entry_price) * (quantity - quantity / 3)
    gross += (Decimal(98) - position.entry_price) * (quantity / 3)
    assert trade.pnl_usdt == gross - trade.fees_usdt - trade.funding_usdt
    assert f"before our {exit_}" in str(_events(logs, "position_closed_externally")[0]["detail"])


async def test_our_capped_exit_closes_the_trade_as_ours_across_a_restart() -> None:
    """As above with the daemon restarted between the two ticks: our exit's terms are kept
    with the trades booked for the position (keeper/external_saved.py)."""
    harness, _ = await _at_the_time_exit()
    await harness.tick()
    await harness.restart()
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.TIME_EXIT, Decimal(98))


async def test_a_close_by_hand_after_our_partial_exit_stays_the_persons() -> None:
    """Our partial take-profit is booked a tick before; a person then sells the rest by hand
    at 103, a later trade than ours: the trade is MANUAL at 103, the person's close."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    await partial_taken(harness)
    await harness.tick()
    exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_56", OrderSide.SELL, harness.keeper.positions[BTC].quantity)
    exchange.move(BTC, Decimal(102))
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, Decimal(103))


async def test_our_capped_exit_settled_by_a_lookup_with_the_sell_by_hand_closes_as_ours() -> None:
    """As the capped time exit above, our exit's answer lost and its first lookup failing:
    the next tick looks it up and sees the person's two thirds gone, both at once. Ours, its
    trade the later, closes the trade: TIME_EXIT at 98, not MANUAL at 99 booked after it."""
    harness, _ = await _at_the_time_exit(lose_our_answer=True)
    harness.exchange.lookups_unreadable = 1  # the lookup right after the lost answer
    await harness.tick()
    [exit_] = sent(harness.exchange, Purpose.EXIT)
    assert exit_ in harness.keeper.book.intents  # its outcome unknown
    await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.TIME_EXIT, Decimal(98))


@pytest.mark.parametrize("restart", [False, True], ids=["same_run", "restarted"])
async def test_a_sell_by_hand_then_our_stop_with_the_trades_unread_awaits_the_persons_price(
    restart: bool,
) -> None:
    """The same, the account's trades unreadable on that tick (the mark read): the trade
    waits for the person's price as a close by hand does (keeper/unpriced.py), then is booked
    SL_HIT at our stop's price with the person's third at 99 and its fee, also after a
    restart in between (was: booked at once, the third at the mark, its fee in no booking —
    the restart campaign with round trips, seed 40797, 2026-12-06)."""
    harness = await Harness.start()
    exchange = harness.exchange
    position, stop, third = await sold_then_stopped(harness, "web_reduced_53")
    exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()
    assert harness.keeper.positions == {}
    assert await harness.repository.closed_trades() == []
    [waits] = _events(logs, "external_close_awaits_price")
    assert f"LONG {third} gone" in str(waits["detail"])
    assert f"our {stop.client_order_id} closed the rest" in str(waits["detail"])
    if restart:
        await harness.restart()
    with capture_logs() as logs:
        await harness.tick()

    await booked_as_ours_after_theirs(harness, position, stop, "web_reduced_53")
    [note] = _events(logs, "position_closed_externally")
    assert "the account's 1 trade(s) 99" in str(note["detail"])
    assert f"before our {stop.client_order_id}, which closed the rest" in str(note["detail"])
    assert harness.keeper.book.idle
