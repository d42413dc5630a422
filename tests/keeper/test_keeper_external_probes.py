"""Outside-style probes of closes by hand beside an exit of ours (keeper/external.py),
2026-12-03: our exit's request or answer lost while a person closes the position, the
account's trades unreadable on the tick that books it, a restart in between, a close by hand
of a position opened just after another closed, a second sell by hand racing a tick's reads.
Those that found a defect say so; the others held and are kept as regressions."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_external_exits import by_hand, fee_paid, noted, opened
from test_keeper_fees_unread import BTC, sent
from test_keeper_properties import KEEPER, PRICES, RULES, T0, Harness, keeper_on

from quantum_trader.domain import (
    ExitReason,
    Fill,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    Side,
)
from quantum_trader.keeper.external import ACCOUNT_TRADES_SLACK, external_execution
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.storage.memory import InMemoryRepository

ONE = Decimal(1)


async def test_a_close_by_hand_seen_after_minutes_awaiting_our_exit_is_booked_at_its_trade(
) -> None:  # fmt: skip
    """Our exit's request was lost and a person closed the position at 102; the exit's
    lookups then failed for 400 s, so every tick awaited it (`reduction_awaits_orders`).
    Once the exit is known never to have arrived, the close is booked from the account's
    trades since the last tick that saw the position held as booked (was: since the last
    tick, 5 s before; the person's trade, older than its 5 min slack, was left out and the
    close booked at the mark 104 with no fee)."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    exchange.move(BTC, Decimal(102))
    exchange.drop_next = True  # our exit never arrives
    exchange.lookups_unreadable = 10_000
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    await by_hand(harness, "web_closed_20", OrderSide.SELL, quantity)
    exchange.move(BTC, Decimal(104))
    for _ in range(80):
        await harness.tick()
    assert harness.keeper.positions[BTC].quantity == quantity  # still awaiting our exit
    exchange.lookups_unreadable = 0
    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_price, trade.exit_reason) == (Decimal(102), ExitReason.MANUAL)
    assert trade.fees_usdt == entry_fees + fee_paid(harness, "web_closed_20")
    assert "the account's 1 trade(s) 102" in noted(logs)
    assert len(sent(exchange, Purpose.EXIT)) == 1


async def test_our_exit_executed_answer_lost_then_a_sell_by_hand_books_ours_and_adopts() -> None:
    """Our exit filled at 102 (answer lost); a person then sold as much again, opening a
    short; a restart; the account's trades unreadable. Ours is booked at its own price, the
    short adopted, no second exit sent."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(102))
    exchange.lose_next = True
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    exchange.move(BTC, Decimal(101))
    sell = OrderRequest("web_opened_20", BTC, OrderSide.SELL, OrderKind.MARKET, quantity)
    await exchange.place_order(sell)
    await harness.restart()
    exchange.account_fills_unreadable = 3
    for _ in range(3):
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)
    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity) == (Side.SHORT, quantity)
    assert len(sent(exchange, Purpose.EXIT)) == 1


async def test_our_exit_lost_a_close_by_hand_a_restart_and_trades_unreadable_book_once() -> None:
    """Our exit's request lost, a person closed the position, the daemon restarted, and the
    account's trades could not be read on the tick that sees the close: it awaits them (the
    line says why) and is booked once, at the person's trade (was: at the mark, the account's
    trades unread), no exit sent again."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(102))
    exchange.drop_next = True
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    await by_hand(harness, "web_closed_21", OrderSide.SELL, quantity)
    exchange.move(BTC, Decimal(104))
    await harness.tick()
    await harness.restart()
    await harness.tick()
    await harness.tick()  # reads the flat symbols' trades (what happened while stopped)
    exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        for _ in range(8):
            await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)
    [waits] = [e for e in logs if e["event"] == "external_close_awaits_price"]
    assert "could not be read" in waits["detail"]
    assert "the account's 1 trade(s) 102" in noted(logs)
    assert len(sent(exchange, Purpose.EXIT)) == 1
    assert harness.keeper.positions == {}


async def test_the_last_positions_exit_is_not_taken_for_a_close_by_hand_of_the_next() -> None:
    """Our time exit closed a long at 103; a long of the same size opened a minute later,
    which a person closes by hand while Binance does not list that trade yet. The window
    reaches 5 min before the new position opened: the old exit's trade added up and was
    booked for the person's close (found by an outside-style probe, 2026-12-03). Only trades
    after the position's own entry are taken."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(103))
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    assert harness.keeper.positions == {}
    harness.advance(timedelta(minutes=1))
    exchange.move(BTC, Decimal(100))
    assert await opened(harness) == quantity
    exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_closed_22", OrderSide.SELL, quantity)
    lagging = exchange.fills.pop("web_closed_22")  # not listed yet
    exchange.move(BTC, Decimal("100.5"))
    with capture_logs() as logs:
        await harness.tick()
    exchange.fills["web_closed_22"] = lagging

    assert f"booked at the mark 100.5 (the account's trades do not add up to {quantity})" in (
        noted(logs)
    )


def test_a_sell_after_the_positions_were_read_is_left_out_of_the_close_before_it() -> None:
    """A person sold 1.49 and, 15 s later, 1.04; the tick read the positions between the two
    (it saw 1.49 gone) and the account's trades after both. The newest trades (1.04, then
    both) do not add up to 1.49, so the close was booked at the mark (found by the fault
    campaign with a person closing by hand, 2026-12-03); the trades up to the instant before
    do: the 1.49 is booked at its own price, the 1.04 left for the next tick."""
    position = Position(
        symbol=BTC,
        side=Side.LONG,
        quantity=Decimal("4.98"),
        entry_price=Decimal(608),
        leverage=3,
        stop_price=Decimal(575),
        take_profit_price=Decimal(650),
        opened_at=T0,
        entry_order_id="qt-e-1",
        initial_stop_price=Decimal(575),
        initial_quantity=Decimal("4.98"),
    )
    first = Fill("11", "order-1", BTC, OrderSide.SELL, Decimal("1.49"), Decimal(597), ONE, T0)
    later = T0 + timedelta(seconds=15)
    second = Fill("12", "order-2", BTC, OrderSide.SELL, Decimal("1.04"), Decimal(594), ONE, later)

    found = external_execution(position, Decimal("1.49"), [first, second], set())
    assert found is not None
    assert (found.price, found.fee_usdt, found.trade_ids) == (Decimal(597), ONE, frozenset({"11"}))
    both = external_execution(position, Decimal("2.53"), [first, second], set())
    assert both is not None
    assert both.trade_ids == frozenset({"11", "12"})
    assert external_execution(position, Decimal("1.04"), [first, second], set()) is not None
    assert external_execution(position, Decimal("0.5"), [first, second], set()) is None


async def test_a_flip_by_hand_books_the_fee_of_what_it_opened_with_the_adopted_side() -> None:
    """One sell of twice the long: half its fee closed ours, the other half opened the short
    the keeper adopts. That half was booked nowhere (found by the fault campaign with a person
    flipping positions by hand, 2026-12-03: the trades' PnL exceeded the account's cash flow
    by it); it is the adopted position's fee now."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    flip = OrderRequest("web_flip_20", BTC, OrderSide.SELL, OrderKind.MARKET, quantity * 2)
    await harness.exchange.place_order(flip)
    await harness.tick()

    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity) == (Side.SHORT, quantity)
    assert short.fees_usdt == fee_paid(harness, "web_flip_20") / 2
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt + short.fees_usdt == sum(
        (f.fee_usdt for fills in harness.exchange.fills.values() for f in fills), Decimal(0)
    )


def _our_open_stops(harness: Harness) -> list[tuple[OrderSide, Decimal]]:
    """Our reduce-only stops open on BTC: (side, quantity left)."""
    return [
        (o.side, o.quantity - o.filled_quantity)
        for o in harness.exchange.orders.values()
        if o.symbol == BTC
        and o.kind is OrderKind.STOP_MARKET
        and o.status is OrderStatus.OPEN
        and o.reduce_only
        and purpose_of(o.client_order_id) is not None
    ]


async def test_a_flip_by_hand_while_our_exit_is_unsettled_covers_the_side_the_exchange_holds(
) -> None:  # fmt: skip
    """Our exit's request was lost (its lookups failing) and a person sold twice the long:
    the exchange holds a short. The reduction awaits our exit (`reduction_awaits_orders`);
    the stop placed meanwhile covered only the ledger's long, so the short had no stop until
    the exit was known never to have arrived (found by the fault campaign with a person
    flipping by hand, seed 31211, 2026-12-03: 3-4 ticks). By the end of the next tick a
    reduce-only buy stop of ours covers the short, at the level the keeper adopts it with;
    once the exit settles the short is adopted with that stop, none placed twice."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(102))
    exchange.drop_next = True  # our exit never arrives
    exchange.lookups_unreadable = 10_000
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    flip = OrderRequest("web_flip_21", BTC, OrderSide.SELL, OrderKind.MARKET, quantity * 2)
    await exchange.place_order(flip)
    assert exchange.held[BTC][:2] == (Side.SHORT, quantity)
    await harness.tick()

    assert (OrderSide.BUY, quantity) in _our_open_stops(harness)
    [cover] = [o for o in exchange.orders.values() if o.side is OrderSide.BUY and o.reduce_only]
    adopt = Decimal(repr(KEEPER.adopt_stop_pct))
    assert cover.trigger_price == Decimal(102) * (1 + adopt)  # the short's adopted level
    exchange.lookups_unreadable = 0
    for _ in range(10):
        await harness.tick()

    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity) == (Side.SHORT, quantity)
    assert short.stop_order_id == cover.client_order_id
    assert _our_open_stops(harness) == [(OrderSide.BUY, quantity)]
    buy_stops = [r for r in exchange.received if r.side is OrderSide.BUY and r.kind.is_conditional]
    assert len(buy_stops) == 1
    [trade] = await harness.repository.closed_trades()
    assert trade.quantity == quantity
    assert len(sent(exchange, Purpose.EXIT)) == 1


class BuyingBetweenReads(ModelExchange):
    """The model exchange where a person's order lands between the tick's read of the
    positions and its read of the account's trades (`between`, once)."""

    between: OrderRequest | None = None

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        if self.between is not None:
            request, self.between = self.between, None
            await self.place_order(request)
        return await super().fetch_account_fills(symbol, start, end)


async def test_a_buy_reducing_a_flips_short_after_the_positions_were_read_is_not_an_addition() -> (
    None
):
    """A person flips our long (a sell of twice it), then buys back part of the short, the
    buy landing between the tick's read of the positions and of the account's trades. The buy
    was taken for an addition to the long by hand, so the flip was booked at the mark with
    that reason (hand-trading campaign, seed 30186); it belongs to the short: the long is
    booked at the flip's own trade, and the short adopted."""
    exchange = BuyingBetweenReads(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    quantity = await opened(harness)
    harness.advance(ACCOUNT_TRADES_SLACK * 2)  # an addition that soon after is not looked for
    await harness.tick()
    exchange.move(BTC, Decimal(102))
    flip = OrderRequest("web_flip_30186", BTC, OrderSide.SELL, OrderKind.MARKET, quantity * 2)
    await exchange.place_order(flip)
    part = (quantity / 2).quantize(Decimal("0.001"))
    exchange.between = OrderRequest("web_buy_30186", BTC, OrderSide.BUY, OrderKind.MARKET, part)

    with capture_logs() as logs:
        await harness.tick()

    [trade] = await repository.closed_trades()
    [flip_fill] = exchange.fills["web_flip_30186"]
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, flip_fill.price)
    assert "added to by hand" not in noted(logs)
    assert "the mark" not in noted(logs)
    assert harness.keeper.positions[BTC].side is Side.SHORT
