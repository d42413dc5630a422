"""A position a person opened and flipped, or opened, closed and opened again, between two of
the keeper's looks on a symbol the books held nothing on: the first look finds only what is
held now. The trades since the last look that read the symbol flat are replayed from flat
(keeper/round_trip.py `replay_from_flat`): each position opened and closed in between is a
trade of its own, the one held now adopted with its own trades' fees. Without a look that
ever read the symbol flat (a daemon's very first), nothing bounds the trades: adopted as
before (across a restart: test_keeper_flat_reads_saved.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid, opened
from test_keeper_orders_unread import SymbolReadsFail
from test_keeper_properties import PRICES, RULES, T0, Harness, keeper_on, sized
from test_keeper_round_trip import stops_of_ours, trade

from quantum_trader.domain import ClosedTrade, ExitReason, OrderSide, OrderStatus, Position, Side
from quantum_trader.storage.memory import InMemoryRepository

QUANTITY = Decimal("0.01")


async def opened_and_flipped(harness: Harness) -> None:
    """Bought 0.01 at 100, sold 0.02 at 102 (a short 0.01 opened), the mark 101 then."""
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    harness.exchange.move(BTC, Decimal(101))


async def the_longs_round_trip_booked(harness: Harness) -> tuple[ClosedTrade, Position]:
    """After `opened_and_flipped`: the long 100 → 102 booked MANUAL, the short held adopted
    at 102, every fee booked once; the two."""
    [long] = await harness.repository.closed_trades()
    assert (long.side, long.quantity, long.entry_price, long.exit_price) == (
        Side.LONG,
        QUANTITY,
        Decimal(100),
        Decimal(102),
    )
    assert long.exit_reason is ExitReason.MANUAL
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        QUANTITY,
        Decimal(102),
    )
    paid = fee_paid(harness, "web_open_1") + fee_paid(harness, "web_flip_1")
    assert long.fees_usdt + position.fees_usdt == paid
    return long, position


async def test_an_open_and_flip_by_hand_within_one_look_books_the_first_round_trip() -> None:
    """Was: the short adopted, the long 100 → 102 never booked (hand-trading seed 30002)."""
    harness = await Harness.start()
    await harness.tick()  # reads BTC flat
    await opened_and_flipped(harness)
    with capture_logs() as logs:
        await harness.tick()

    long, position = await the_longs_round_trip_booked(harness)
    assert long.pnl_usdt == 2 * QUANTITY - long.fees_usdt - long.funding_usdt
    assert position.fees_usdt == fee_paid(harness, "web_flip_1") / 2
    events = [e["event"] for e in logs]
    assert "position_adopted" in events
    assert "position_closed_externally" in events

    with capture_logs() as logs:  # booked once
        await harness.tick()
        await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1
    assert not [e for e in logs if e["event"] == "position_closed_externally"]


async def test_an_open_close_and_reopen_by_hand_books_the_first_and_adopts_the_second() -> None:
    harness = await Harness.start()
    await harness.tick()
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_close_1", OrderSide.SELL, QUANTITY)
    harness.exchange.move(BTC, Decimal(103))
    await trade(harness, "web_open_2", OrderSide.BUY, QUANTITY)
    await harness.tick()

    [first] = await harness.repository.closed_trades()
    assert (first.side, first.entry_price, first.exit_price) == (
        Side.LONG,
        Decimal(100),
        Decimal(99),
    )
    assert first.fees_usdt == fee_paid(harness, "web_open_1") + fee_paid(harness, "web_close_1")
    position = harness.keeper.positions[BTC]
    assert (position.side, position.entry_price) == (Side.LONG, Decimal(103))
    assert position.fees_usdt == fee_paid(harness, "web_open_2")


async def test_the_first_look_of_a_new_database_adopts_what_is_held_without_a_replay() -> None:
    """No look ever read the symbol flat (a new database): the trades before the start are
    not bounded (a position of an earlier run, booked then), so nothing is replayed and
    none is read."""
    harness = await Harness.start()
    await opened_and_flipped(harness)
    await harness.tick()

    assert await harness.repository.closed_trades() == []
    position = harness.keeper.positions[BTC]
    assert (position.side, position.entry_price) == (Side.SHORT, Decimal(102))
    assert harness.exchange.account_fills_asked == []


async def test_trades_that_do_not_show_it_adopt_what_is_held_and_say_so() -> None:
    """The open's trade not listed yet: the trades since the flat look do not take flat to
    the short held at its entry; the short adopted at once (never left unprotected), the
    note saying the round trip could not be booked."""
    harness = await Harness.start()
    await harness.tick()
    await opened_and_flipped(harness)
    harness.exchange.fills["web_open_1"] = []  # not listed yet
    with capture_logs() as logs:
        await harness.tick()

    assert await harness.repository.closed_trades() == []
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.SHORT, QUANTITY)
    assert position.stop_price > 0
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert "do not show" in str(adopted["detail"])


async def our_old_stop_closing_a_reopen(harness: Harness, bought: Decimal) -> tuple[str, Decimal]:
    """Our long at 100 (its stop at 97) closed by hand at 101 and booked, the cancel of our
    stop failing once (it rests); then within one look a person buys `bought` × its
    quantity at 99 and the mark falls to 96.5: our old stop fires on the person's long. The
    stop's id and the quantity."""
    exchange = harness.exchange
    quantity = await opened(harness)
    [old_stop] = stops_of_ours(harness)
    exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    exchange.cancels_malformed = 1  # the stop outlives the close (a 503 on its cancel)
    await harness.tick()
    assert BTC not in harness.keeper.positions
    assert exchange.orders[old_stop].status is OrderStatus.OPEN
    exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_2", OrderSide.BUY, bought * quantity)
    exchange.move(BTC, Decimal("96.5"))
    return old_stop, quantity


async def test_our_old_stop_closing_a_position_opened_by_hand_within_one_look_is_booked() -> None:
    """Was: the stop recorded, `order_settled_unreflected`, the person's long 99 → 97 never
    booked (session 54's left item)."""
    harness = await Harness.start()
    old_stop, quantity = await our_old_stop_closing_a_reopen(harness, Decimal(1))
    await harness.tick()

    ours, theirs = sorted(await harness.repository.closed_trades(), key=lambda t: t.closed_at)
    assert ours.exit_price == Decimal(101)
    assert (theirs.side, theirs.quantity, theirs.entry_price, theirs.exit_price) == (
        Side.LONG,
        quantity,
        Decimal(99),
        Decimal(97),
    )
    assert theirs.exit_reason is ExitReason.SL_HIT
    assert theirs.fees_usdt == fee_paid(harness, "web_open_2") + fee_paid(harness, old_stop)
    assert BTC not in harness.keeper.positions
    assert harness.exchange.orders[old_stop].status is OrderStatus.FILLED
    await harness.tick()
    assert len(await harness.repository.closed_trades()) == 2


async def test_our_old_stop_closing_part_of_a_position_opened_by_hand_adopts_the_rest() -> None:
    """The person bought three times as much: our stop sold a third of it; the rest is
    adopted with that reduction's PnL and both trades' fees, no trade of its own."""
    harness = await Harness.start()
    old_stop, quantity = await our_old_stop_closing_a_reopen(harness, Decimal(3))
    await harness.tick()

    [ours] = await harness.repository.closed_trades()
    assert ours.exit_price == Decimal(101)
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        2 * quantity,
        Decimal(99),
    )
    assert (position.initial_quantity, position.realized_pnl_usdt) == (
        3 * quantity,
        (Decimal(97) - Decimal(99)) * quantity,
    )
    assert position.fees_usdt == fee_paid(harness, "web_open_2") + fee_paid(harness, old_stop)
    assert harness.exchange.orders[old_stop].status is OrderStatus.FILLED
    with capture_logs() as logs:  # settled once: nothing booked against the adopted rest
        await harness.tick()
        await harness.tick()
    assert harness.keeper.positions[BTC].quantity == 2 * quantity
    assert len(await harness.repository.closed_trades()) == 1
    assert not [e for e in logs if e.get("log_level") in ("error", "warning")]


async def test_a_read_that_lagged_the_open_takes_in_the_trade_before_it() -> None:
    """The look that read BTC flat lagged the exchange (the streams' mirror an event behind):
    the person's open is stamped 2 s before it. The trades since do not show the short; the
    fewest before it that do are taken in: the long booked as before."""
    harness = await Harness.start()
    await harness.tick()  # reads BTC flat at harness.now
    harness.exchange.now = harness.now - timedelta(seconds=2)
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    harness.exchange.now = harness.now + timedelta(seconds=1)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    await harness.tick()

    [long] = await harness.repository.closed_trades()
    assert (long.side, long.entry_price, long.exit_price) == (Side.LONG, Decimal(100), Decimal(102))
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, "web_flip_1") / 2


async def test_our_entry_booked_since_the_flat_look_and_flipped_by_hand_is_no_replay() -> None:
    """Our entry, booked from its answer after the look that read BTC flat, flipped by hand:
    a flip of a position of ours (its close at the person's trade, the other side adopted
    with that trade's other half of the fee), not a replay from flat."""
    harness = await Harness.start()
    await harness.tick()
    exchange = harness.exchange
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    quantity = harness.keeper.positions[BTC].quantity  # booked from its answer (hand-trading
    harness.exchange.move(BTC, Decimal(103))  # seed 32584: "do not show" said of the flip)
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    with capture_logs() as logs:
        await harness.tick()

    [ours] = await harness.repository.closed_trades()
    assert (ours.exit_price, ours.exit_reason) == (Decimal(103), ExitReason.MANUAL)
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, "web_flip_1") / 2
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert "read flat" not in str(adopted["detail"])


async def test_a_look_that_read_the_position_but_not_its_orders_keeps_the_flat_read() -> None:
    """Hand-trading seed 30002 again (1 of 10 runs): the look after the person's open read
    the long but not BTC's orders (a 503: nothing planned there), and its end took BTC for
    no longer read flat; the next adopted the short with nothing replayed. The flat read
    stands until the books hold something there."""
    exchange = SymbolReadsFail(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    await harness.tick()  # reads BTC flat
    exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    exchange.unreadable.add(BTC)
    await harness.tick()  # reads the long, plans nothing on BTC
    assert BTC not in harness.keeper.positions
    exchange.unreadable.clear()
    exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    await harness.tick()

    [long] = await repository.closed_trades()
    assert (long.side, long.entry_price, long.exit_price) == (Side.LONG, Decimal(100), Decimal(102))
    assert harness.keeper.positions[BTC].side is Side.SHORT


async def test_a_round_trip_unseen_before_the_flat_read_is_not_taken_into_the_adopted_one() -> None:
    """The restart campaign, seed 40398: a short opened and closed by hand that no look saw
    (the stream never reported it), a look that read the symbol flat after it, then a long
    opened by hand, adopted from that read, and flipped. The flip's replay from the long as
    booked took in the unseen round trip's trades (within the 5 min its window reaches back
    before the adoption): the long booked closed at the round trip's sell, the round trip's
    buy as an addition to it. The trades before the flat read that the adoption's replay did
    not take are not the adopted position's: left out of its later reads."""
    harness = await Harness.start()
    await harness.tick()  # reads BTC flat
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_short_1", OrderSide.SELL, QUANTITY)
    await trade(harness, "web_cover_1", OrderSide.BUY, QUANTITY)
    await harness.tick()  # reads BTC flat again: the round trip between, unseen
    harness.exchange.move(BTC, Decimal(103))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    await harness.tick()
    assert harness.keeper.positions[BTC].entry_price == Decimal(103)
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    await harness.tick()

    [long] = await harness.repository.closed_trades()
    assert (long.side, long.quantity, long.entry_price, long.exit_price) == (
        Side.LONG,
        QUANTITY,
        Decimal(103),
        Decimal(101),
    )
    flip_fee = fee_paid(harness, "web_flip_1")
    assert long.fees_usdt == fee_paid(harness, "web_open_1") + flip_fee / 2
    position = harness.keeper.positions[BTC]
    assert (position.side, position.entry_price, position.fees_usdt) == (
        Side.SHORT,
        Decimal(101),
        flip_fee / 2,
    )


async def test_an_open_by_hand_adopted_while_the_trades_are_unreadable_gets_its_fee_later() -> None:
    """A person's open on a symbol read flat, adopted by a tick whose read of the account's
    trades failed (the restart campaign with round trips, seed 40645: a 429): adopted with no
    fee, and the fee was never booked. Now remembered as a growth from flat whose trades are
    unread (keeper/added_unread.py): the next tick that reads them books the open's fee, once."""
    harness = await Harness.start()
    await harness.tick()  # reads BTC flat
    harness.exchange.move(BTC, Decimal(100))
    await trade(harness, "web_open_7", OrderSide.BUY, QUANTITY)
    harness.exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert "could not be read" in adopted["detail"]
    assert "its fee booked once they are" in adopted["detail"]
    assert harness.keeper.positions[BTC].fees_usdt == 0

    with capture_logs() as logs:
        await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, "web_open_7")
    [read] = [e for e in logs if e["event"] == "position_grown_trades_read"]
    assert "by the account's 1 trade(s)" in read["detail"]
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, "web_open_7")  # once
    assert await harness.repository.load_state("added_unread") == {}
