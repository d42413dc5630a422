"""A round trip by hand between two of the keeper's looks — closed and reopened, or flipped and
flipped back — leaves the side and quantity as booked: only Binance's entry price moved
(keeper/round_trip.py). The keeper reads the account's trades and books what they show; our
own entry's several fills, its partial take-profit and its break-even never look like one."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid, opened
from test_keeper_fees_unread import sent
from test_keeper_properties import KEEPER, Harness, sized

from quantum_trader.domain import (
    ExitReason,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Side,
)
from quantum_trader.keeper.ids import Purpose, is_ours

ENTRY_EVENTS = ("entry_price_moved", "entry_price_moved_unexplained")


async def trade(harness: Harness, name: str, side: OrderSide, quantity: Decimal) -> None:
    """A market order a person sends that may open a position (not reduce-only)."""
    request = OrderRequest(name, BTC, side, OrderKind.MARKET, quantity)
    await harness.exchange.place_order(request)


def stops_of_ours(harness: Harness) -> list[str]:
    return [
        cid
        for cid, o in harness.exchange.orders.items()
        if is_ours(cid) and o.kind is OrderKind.STOP_MARKET and o.status is OrderStatus.OPEN
    ]


async def opened_with_its_stop(harness: Harness) -> tuple[Decimal, str, str]:
    """Our long at 100 (`opened`): its quantity, its entry's client id and its stop's."""
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    [stop] = stops_of_ours(harness)
    return quantity, entry, stop


async def closed_and_reopened(harness: Harness, mark: Decimal = Decimal(104)) -> Decimal:
    """Our long at 100, closed by hand at 102 and bought again at 105 between two looks (no
    event: the model has no stream), the mark `mark` then; its quantity."""
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    harness.exchange.move(BTC, Decimal(105))
    await trade(harness, "web_opened_1", OrderSide.BUY, quantity)
    harness.exchange.move(BTC, mark)
    return quantity


async def test_a_close_and_reopen_by_hand_is_booked_and_the_new_position_adopted() -> None:
    """Was: nothing booked — the close's PnL and fee missing, the books' entry 100 while
    Binance's is 105, our stop placed for the old entry kept."""
    harness = await Harness.start()
    quantity = await closed_and_reopened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    entry_fees = fee_paid(harness, entry)
    [old_stop] = stops_of_ours(harness)
    with capture_logs() as logs:
        await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.exit_reason, closed.exit_price) == (ExitReason.MANUAL, Decimal(102))
    assert closed.fees_usdt == entry_fees + fee_paid(harness, "web_closed_1")
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        quantity,
        Decimal(105),
    )
    assert position.entry_order_id != closed.entry_order_id
    assert position.fees_usdt == fee_paid(harness, "web_opened_1")
    assert position.realized_pnl_usdt == 0
    # As the other side of a flip by hand: the default stop from Binance's entry, placed;
    # our old one, placed for the old entry, cancelled.
    adopt = Decimal(repr(KEEPER.adopt_stop_pct))
    assert position.stop_price == (Decimal(105) * (1 - adopt)).quantize(Decimal("0.01"))
    [new_stop] = stops_of_ours(harness)
    assert new_stop != old_stop
    assert harness.exchange.orders[new_stop].trigger_price == position.stop_price
    assert harness.exchange.orders[old_stop].status is OrderStatus.CANCELED
    events = [e["event"] for e in logs]
    assert "position_closed_externally" in events
    assert "position_adopted" in events
    assert len(harness.exchange.account_fills_asked) == 1

    with capture_logs() as logs:  # booked once: the next looks find nothing to do
        await harness.tick()
        await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1
    assert not [e for e in logs if e["event"] in ENTRY_EVENTS]
    assert len(harness.exchange.account_fills_asked) == 1


async def test_a_flip_and_flip_back_by_hand_books_both_closes_and_every_fee() -> None:
    """Sold twice the long at 102 (a short opened), bought twice it back at 98: our long
    closed at 102, the person's short 102 → 98 a trade of its own, the long held now adopted
    at 98; the fees booked add up to those paid."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    harness.exchange.move(BTC, Decimal(98))
    await trade(harness, "web_flip_2", OrderSide.BUY, 2 * quantity)
    harness.exchange.move(BTC, Decimal(99))
    await harness.tick()

    ours, short = sorted(await harness.repository.closed_trades(), key=lambda t: t.side.value)
    assert (ours.side, ours.exit_price, ours.exit_reason) == (
        Side.LONG,
        Decimal(102),
        ExitReason.MANUAL,
    )
    assert (short.side, short.quantity, short.entry_price, short.exit_price) == (
        Side.SHORT,
        quantity,
        Decimal(102),
        Decimal(98),
    )
    assert short.pnl_usdt == 4 * quantity - short.fees_usdt - short.funding_usdt
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        quantity,
        Decimal(98),
    )
    paid = sum(fee_paid(harness, cid) for cid in (entry, "web_flip_1", "web_flip_2"))
    assert ours.fees_usdt + short.fees_usdt + position.fees_usdt == paid


async def test_our_entry_in_several_fills_its_partial_take_profit_and_break_even_never_fire() -> (
    None
):
    """Our entry filled at two prices: the books' entry is their exact average, Binance's
    its own rounding of it (5 decimals here) — within half a tick. Neither a partial
    take-profit nor a stop moved changes Binance's entry: no trades are ever read."""
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.split_next, exchange.entry_quantum = Decimal("0.07"), Decimal("0.00001")
    with capture_logs() as logs:
        await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
        await harness.tick()
        booked = harness.keeper.positions[BTC].entry_price
        [reported] = await exchange.fetch_positions()
        assert booked != reported.entry_price  # the two averages differ in their last digits
        price = exchange.marks[BTC]
        while not sent(exchange, Purpose.EXIT):  # up until the partial take-profit
            price += Decimal("0.1")
            exchange.move(BTC, price)
            await harness.tick()
        for _ in range(3):
            await harness.tick()
    position = harness.keeper.positions[BTC]
    assert position.partial_taken
    assert position.stop_price > position.entry_price
    assert position.entry_price == booked
    assert not [e for e in logs if e["event"] in ENTRY_EVENTS]
    assert exchange.account_fills_asked == []


async def test_a_round_trip_the_trades_do_not_show_is_said_once_and_not_read_again() -> None:
    """Binance does not list the person's trades yet: one line, the position kept as booked,
    and the entry remembered — the next ticks read no trades for it."""
    harness = await Harness.start()
    quantity = await closed_and_reopened(harness, Decimal(101))  # short of a take-profit
    for name in ("web_closed_1", "web_opened_1"):
        harness.exchange.fills.pop(name)
    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()

    [said] = [e for e in logs if e["event"] in ENTRY_EVENTS]
    assert said["event"] == "entry_price_moved_unexplained"
    assert "at entry 105 on the exchange" in said["detail"]
    assert len(harness.exchange.account_fills_asked) == 1
    position = harness.keeper.positions[BTC]
    assert (position.quantity, position.entry_price) == (quantity, Decimal(100))
    assert await harness.repository.closed_trades() == []


async def test_three_flips_by_hand_before_the_keeper_looked_book_every_round_trip() -> None:
    """Sold twice the long at 102, bought twice back at 98, sold twice again at 104, all
    before the keeper looked (the daemon stopped meanwhile: the hand-trading campaign with a
    restart, seed 40019): the newest sell alone adds up to the flip seen, so the long was
    booked closed at 104 and the round trips at 102 and 98 were lost. Replayed instead: the
    long closed at 102, the person's short 102 → 98 and long 98 → 104 trades of their own,
    the short held adopted at 104, every fee booked once."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    flips = [("web_flip_5", OrderSide.SELL, 102), ("web_flip_6", OrderSide.BUY, 98)]
    for second, (name, side, price) in enumerate([*flips, ("web_flip_7", OrderSide.SELL, 104)]):
        harness.exchange.now = harness.now + timedelta(seconds=second + 1)  # a second apart
        harness.exchange.move(BTC, Decimal(price))
        await trade(harness, name, side, 2 * quantity)
    harness.exchange.move(BTC, Decimal(103))
    await harness.restart()
    await harness.tick()

    closed = sorted(await harness.repository.closed_trades(), key=lambda t: t.entry_price)
    assert [(t.side, t.entry_price, t.exit_price, t.exit_reason) for t in closed] == [
        (Side.LONG, Decimal(98), Decimal(104), ExitReason.MANUAL),
        (Side.LONG, closed[1].entry_price, Decimal(102), ExitReason.MANUAL),  # ours
        (Side.SHORT, Decimal(102), Decimal(98), ExitReason.MANUAL),
    ]
    assert closed[1].entry_price == harness.exchange.orders[entry].average_price
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        quantity,
        Decimal(104),
    )
    names = (entry, "web_flip_5", "web_flip_6", "web_flip_7")
    paid = sum(fee_paid(harness, cid) for cid in names)
    assert sum(t.fees_usdt for t in closed) + position.fees_usdt == paid


async def test_a_close_by_hand_and_a_larger_reopen_are_not_taken_for_an_addition() -> None:
    """Our long sold by hand at 102, twice as much bought by hand at 99, before the keeper
    looked (the daemon stopped meanwhile: the hand-trading campaign with a restart, seed
    40039): the long held grew, and was booked as an addition whose trades did not show it,
    our close lost. Replayed: our long closed at 102, the person's long adopted at 99 with
    its fee."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.exchange.now = harness.now + timedelta(seconds=1)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_9", OrderSide.SELL, quantity)
    harness.exchange.now = harness.now + timedelta(seconds=2)
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_9", OrderSide.BUY, 2 * quantity)
    await harness.restart()
    await harness.tick()

    [ours] = await harness.repository.closed_trades()
    assert (ours.side, ours.exit_price, ours.exit_reason) == (
        Side.LONG,
        Decimal(102),
        ExitReason.MANUAL,
    )
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        2 * quantity,
        Decimal(99),
    )
    paid = sum(fee_paid(harness, cid) for cid in (entry, "web_closed_9", "web_open_9"))
    assert ours.fees_usdt + position.fees_usdt == paid


async def test_our_stop_filled_after_a_flip_and_flip_back_while_stopped_books_them_all() -> None:
    """While the daemon was stopped a person sold twice our long at 102 and bought twice
    back at 98, then our stop, resting for our long, fired on the person's long (the
    hand-trading campaign with a restart, seeds 40033 and 40041): booked as our long
    stopped out, the two closes by hand lost. Replayed with our stop's fill: our long
    closed by hand at 102, the person's short 102 → 98, the person's long closed by our
    stop (SL_HIT), every fee booked once."""
    harness = await Harness.start()
    quantity, entry, stop = await opened_with_its_stop(harness)
    harness.exchange.now = harness.now + timedelta(seconds=1)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_8", OrderSide.SELL, 2 * quantity)
    harness.exchange.now = harness.now + timedelta(seconds=2)
    harness.exchange.move(BTC, Decimal(98))
    await trade(harness, "web_flip_9", OrderSide.BUY, 2 * quantity)
    harness.exchange.now = harness.now + timedelta(seconds=3)
    harness.exchange.move(BTC, Decimal("96.5"))  # our stop at 97 fires
    assert harness.exchange.orders[stop].status is OrderStatus.FILLED
    await harness.restart()
    await harness.tick()  # reads the stop's fill, and the positions again (keeper/recheck.py)
    await harness.tick()

    closed = await harness.repository.closed_trades()
    assert sorted((t.side, t.entry_price, t.exit_reason) for t in closed) == [
        (Side.LONG, Decimal(98), ExitReason.SL_HIT),  # the person's, by our stop
        (Side.LONG, Decimal(100), ExitReason.MANUAL),  # ours, at the first flip
        (Side.SHORT, Decimal(102), ExitReason.MANUAL),  # the person's, 102 → 98
    ]
    assert sorted(t.exit_price for t in closed if t.exit_reason is ExitReason.MANUAL) == [
        Decimal(98),
        Decimal(102),
    ]
    assert harness.keeper.positions == {}
    names = (entry, "web_flip_8", "web_flip_9", stop)
    assert sum(t.fees_usdt for t in closed) == sum(fee_paid(harness, cid) for cid in names)


async def test_a_reduction_then_a_flip_and_flip_back_before_the_keeper_looked_books_all() -> None:
    """A third of our long sold by hand at 101, then the rest flipped at 102 and flipped
    back at 99, before the keeper looked (the daemon stopped meanwhile: the hand-trading
    campaign with a restart, seed 40084): the quantity held is the reduction's, so the
    reduction alone was booked and the flip and flip back after it were lost. Replayed:
    our long closed at 102 with its reduction, the person's short 102 → 99 a trade of its
    own, the long held adopted at 99, every fee once."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    third = quantity / 3
    rest = quantity - third
    steps = [
        ("web_reduced_12", OrderSide.SELL, 101, third),
        ("web_flip_10", OrderSide.SELL, 102, 2 * rest),
        ("web_flip_11", OrderSide.BUY, 99, 2 * rest),
    ]
    for second, (name, side, price, size) in enumerate(steps):
        harness.exchange.now = harness.now + timedelta(seconds=second + 1)
        harness.exchange.move(BTC, Decimal(price))
        await trade(harness, name, side, size)
    await harness.restart()
    await harness.tick()

    closed = await harness.repository.closed_trades()
    assert sorted((t.side, t.entry_price, t.exit_reason) for t in closed) == [
        (Side.LONG, Decimal(100), ExitReason.MANUAL),
        (Side.SHORT, Decimal(102), ExitReason.MANUAL),
    ]
    [short] = [t for t in closed if t.side is Side.SHORT]
    assert (short.quantity, short.exit_price) == (rest, Decimal(99))
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        rest,
        Decimal(99),
    )
    names = (entry, "web_reduced_12", "web_flip_10", "web_flip_11")
    paid = sum(fee_paid(harness, cid) for cid in names)
    assert sum(t.fees_usdt for t in closed) + position.fees_usdt == paid


async def test_a_round_trip_before_a_restart_is_booked_after_it() -> None:
    """The daemon was down across the round trip: the first look after the restart books
    it (the trades read since the position opened)."""
    harness = await Harness.start()
    await closed_and_reopened(harness)
    await harness.restart()
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert closed.exit_price == Decimal(102)
    assert harness.keeper.positions[BTC].entry_price == Decimal(105)


async def test_a_flip_then_a_reduction_by_hand_before_the_keeper_looked_is_replayed() -> None:
    """A flip by hand (sold twice the long at 102), then a third of the short bought back at
    101, both before the keeper looked: the trades do not add up to the close (the newest
    reducing ones are the flip's 2 × quantity, the short held is smaller), so it was booked
    at the mark (hand-trading campaign, seed 30102). Replayed, the long closed at 102 and the
    short held now adopted at Binance's entry with its reduction's PnL."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_3", OrderSide.SELL, 2 * quantity)
    harness.exchange.move(BTC, Decimal(101))
    third = quantity / 3
    await by_hand(harness, "web_reduced_1", OrderSide.BUY, third)
    harness.exchange.move(BTC, Decimal("101.5"))
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.side, closed.exit_price, closed.exit_reason) == (
        Side.LONG,
        Decimal(102),
        ExitReason.MANUAL,
    )
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        quantity - third,
        Decimal(102),
    )
    assert position.realized_pnl_usdt == (Decimal(102) - Decimal(101)) * third
    paid = sum(fee_paid(harness, cid) for cid in (entry, "web_flip_3", "web_reduced_1"))
    assert closed.fees_usdt + position.fees_usdt == paid


async def test_a_flip_then_a_close_by_hand_before_the_keeper_looked_books_both() -> None:
    """A flip by hand at 102, its short closed by hand at 99 before the keeper looked:
    nothing held, the long closed at 102 and the short a trade of its own (was: the long at
    the mark, the short not at all)."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_4", OrderSide.SELL, 2 * quantity)
    harness.exchange.move(BTC, Decimal(99))
    await by_hand(harness, "web_closed_2", OrderSide.BUY, quantity)
    harness.exchange.move(BTC, Decimal(98))
    await harness.tick()

    ours, short = sorted(await harness.repository.closed_trades(), key=lambda t: t.side.value)
    assert (ours.side, ours.exit_price) == (Side.LONG, Decimal(102))
    assert (short.side, short.entry_price, short.exit_price) == (
        Side.SHORT,
        Decimal(102),
        Decimal(99),
    )
    assert harness.keeper.positions == {}


async def test_a_position_added_to_and_closed_by_hand_between_two_looks_is_booked_whole() -> None:
    """1 bought by hand at 101 beside our 3 at 100, then all 4 sold at 103: the trades do
    not add up to the 3 booked (was: booked at the mark). Replayed: one trade of 4 at the
    average entry 100.25, closed at 103, with every fee."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_added_1", OrderSide.BUY, Decimal(1))
    harness.exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_3", OrderSide.SELL, quantity + 1)
    harness.exchange.move(BTC, Decimal(104))
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.quantity, closed.entry_price, closed.exit_price) == (
        quantity + 1,
        (quantity * 100 + 101) / (quantity + 1),
        Decimal(103),
    )
    paid = sum(fee_paid(harness, cid) for cid in (entry, "web_added_1", "web_closed_3"))
    assert closed.fees_usdt == paid
    assert closed.pnl_usdt == quantity * 3 + 2 - paid


async def test_our_stop_between_an_addition_and_a_close_by_hand_while_stopped() -> None:
    """While the daemon was stopped a person bought 1 beside our long of 3 at 100, our stop
    (resting for 3) fired, and the person sold the 1 left (the restart campaign with round
    trips, seed 40625). Replayed as one position of 4, which it was — but booked closed at
    the average of our stop's fill and the person's sale, a price no close had: a daemon
    that saw each step books our stop's reduction, then the close by hand at its own price.
    The close is booked so: at the person's sale, MANUAL, the PnL and fees of all of it."""
    harness = await Harness.start()
    quantity, entry, stop = await opened_with_its_stop(harness)
    harness.exchange.now = harness.now + timedelta(seconds=1)
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_added_4", OrderSide.BUY, Decimal(1))
    harness.exchange.now = harness.now + timedelta(seconds=2)
    harness.exchange.move(BTC, Decimal("96.5"))  # our stop at 97 fires, for our 3
    assert harness.exchange.orders[stop].status is OrderStatus.FILLED
    harness.exchange.now = harness.now + timedelta(seconds=3)
    harness.exchange.move(BTC, Decimal(95))
    await by_hand(harness, "web_closed_4", OrderSide.SELL, Decimal(1))
    await harness.restart()
    await harness.tick()
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.quantity, closed.exit_reason) == (quantity + 1, ExitReason.MANUAL)
    assert closed.entry_price == (quantity * 100 + 101) / (quantity + 1)
    assert closed.exit_price == Decimal(95)
    names = (entry, "web_added_4", stop, "web_closed_4")
    paid = sum(fee_paid(harness, cid) for cid in names)
    assert closed.fees_usdt == paid
    [stop_fill] = harness.exchange.fills[stop]
    realized = quantity * (stop_fill.price - closed.entry_price) + (95 - closed.entry_price)
    assert closed.pnl_usdt == realized - paid
    assert harness.keeper.positions == {}
