"""A close outside the program seen on a tick that could not read the account's trades,
whether or not it read a mark (keeper/unpriced.py): the position is gone from the books at
once (no stop, nothing to protect, entries on the symbol blocked), and its trade waits for a
price — the trades that closed it when a later tick reads them, else,
`keeper.external_close_mark_after_s` after the close was seen, a mark read then, the line
saying so — booked once, also across a restart.

Was: with no mark either, booked at once at the position's stop price, a price no one may
have traded at (the campaign with a person trading by hand, seed 30066, 2026-12-03: a 429 on
both reads); with the mark read, booked at once at that mark, no traded price either (seed
30003: 1.5 % off the person's). The tests run both ways (`MARKS`)."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_added_seen import given_up_unlisted
from test_keeper_booking_one_write import keeper_on as sqlite_keeper_on
from test_keeper_external_exits import by_hand, fee_paid, noted, opened
from test_keeper_external_saved import reduce_by_hand
from test_keeper_fees_unread import BTC, entered, sent
from test_keeper_properties import KEEPER, PRICES, RULES, T0, TICK, Harness, sized

from quantum_trader.domain import (
    ZERO,
    ExitReason,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Side,
)
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.unpriced import UNPRICED
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.ops.operator_view import blocked_symbols
from quantum_trader.storage.sqlite import SqliteRepository

BOUND = timedelta(seconds=KEEPER.external_close_mark_after_s)
STUCK_AFTER = timedelta(seconds=MonitorSettings().stop_stuck_after_s)
# Whether the tick that sees the close reads the marks: the close waits for its trades either way.
MARKS = pytest.mark.parametrize("marks", [False, True], ids=["no_mark", "mark_read"])


def awaiting(logs: list[MutableMapping[str, Any]]) -> str:
    """The lines saying a reduction outside the program awaits its price."""
    return "\n".join(str(e["detail"]) for e in logs if e["event"] == "external_close_awaits_price")


async def closed_by_hand_unread(
    harness: Harness, name: str, quantity: Decimal, *, flip: bool = False, marks: bool = False
) -> str:
    """A person sells `quantity` at 102 (reduce-only unless `flip`); the tick that sees it
    (the mark then 103) cannot read the account's trades, nor the marks unless `marks`.
    Returns the lines saying what awaits a price."""
    exchange = harness.exchange
    exchange.move(BTC, Decimal(102))
    if flip:
        sell = OrderRequest(name, BTC, OrderSide.SELL, OrderKind.MARKET, quantity)
        await exchange.place_order(sell)
    else:
        await by_hand(harness, name, OrderSide.SELL, quantity)
    exchange.move(BTC, Decimal(103))
    exchange.account_fills_unreadable = 1
    exchange.marks_unreadable = 0 if marks else 1
    with capture_logs() as logs:
        await harness.tick()
    return awaiting(logs)


@MARKS
async def test_a_close_seen_with_its_trades_unread_is_booked_at_its_trade_once_read(
    marks: bool,
) -> None:
    """The account's trades cannot be read on the tick that sees the close, the mark (103)
    read or not: no trade booked (was: at the stop price with no mark, at the mark 103 with
    one), the position gone, no stop placed for it, entries blocked; the next tick reads the
    trades and books the close at 102 with the person's fee, MANUAL, closed when it was
    seen; never again."""
    harness = await Harness.start()
    quantity = await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    stops = len(sent(harness.exchange, Purpose.STOP))
    line = await closed_by_hand_unread(harness, "web_closed_40", quantity, marks=marks)
    seen_at = harness.now

    assert await harness.repository.closed_trades() == []
    assert harness.keeper.positions == {}
    assert "awaits its price" in harness.keeper.view().blocked[BTC]
    assert "could not be read" in line
    assert ("but the mark 103" if marks else ": no mark read") in line
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_price, trade.exit_reason) == (Decimal(102), ExitReason.MANUAL)
    assert trade.fees_usdt == entry_fees + fee_paid(harness, "web_closed_40")
    assert trade.closed_at == seen_at
    assert "the account's 1 trade(s) 102" in noted(logs)
    assert BTC not in harness.keeper.view().blocked
    for _ in range(5):
        await harness.tick()
    assert len(await harness.repository.closed_trades()) == 1
    assert len(sent(harness.exchange, Purpose.STOP)) == stops
    assert harness.keeper.book.idle


@MARKS
async def test_trades_never_read_book_the_close_at_the_mark_nearest_it_and_say_so(
    marks: bool,
) -> None:
    """The account's trades stay unreadable; marks read from the tick that sees the close
    (`marks`: 103), else from the next. The close waits `external_close_mark_after_s` for its
    trades, then is booked at the mark read when it was seen, where one was, else at the mark
    read then (105), with no fee of its own, the line naming that mark, when it was read and
    why. Was: the later mark in both cases, 2.5 % off the person's price after a 95 s outage
    of the trades in the hand-trading campaign's seed 34361."""
    harness = await Harness.start()
    quantity = await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    await closed_by_hand_unread(harness, "web_closed_41", quantity, marks=marks)
    seen_at = harness.now
    harness.exchange.account_fills_unreadable = 10_000
    harness.exchange.move(BTC, Decimal(105))
    while harness.now + TICK < seen_at + BOUND:
        await harness.tick()
    assert await harness.repository.closed_trades() == []
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    price = Decimal(103) if marks else Decimal(105)
    assert (trade.exit_price, trade.exit_reason) == (price, ExitReason.MANUAL)
    assert trade.fees_usdt == entry_fees
    assert trade.closed_at == seen_at
    detail = noted(logs)
    waited = int(BOUND.total_seconds())
    if marks:
        assert "booked at the mark 103 read when the close was seen" in detail
    else:
        assert f"booked at the mark 105 read {waited} s after the close was seen" in detail
    assert "could not be read" in detail
    assert BTC not in harness.keeper.view().blocked


@MARKS
async def test_a_restart_while_the_close_awaits_its_price_books_it_once(marks: bool) -> None:
    """A restart after the tick that saw the close (the trades unread; the mark too, or
    not): the new run still knows the position gone and the symbol blocked (so does
    `status`, reading the database), books the close at its trade's price, once, and a
    restart after that books nothing again."""
    harness = await Harness.start()
    quantity = await opened(harness)
    await closed_by_hand_unread(harness, "web_closed_42", quantity, marks=marks)
    seen_at = harness.now
    await harness.restart()
    assert harness.keeper.positions == {}
    why = harness.keeper.view().blocked[BTC]
    assert await blocked_symbols(harness.repository) == {BTC: why}  # `status`, from the database
    await harness.tick()
    await harness.restart()
    for _ in range(3):
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_price, trade.exit_reason) == (Decimal(102), ExitReason.MANUAL)
    assert trade.closed_at == seen_at
    assert harness.keeper.book.idle


@MARKS
async def test_a_flip_by_hand_seen_unpriced_adopts_the_short_and_books_the_long_later(
    marks: bool,
) -> None:
    """A person sells twice the long, the trades unread (the mark too, or not): the short
    the exchange now holds is adopted and covered in the same tick; the long's close waits
    and is booked at 102 once the trades are read, the short's share of the fee added to the
    short."""
    harness = await Harness.start()
    quantity = await opened(harness)
    await closed_by_hand_unread(harness, "web_flipped_40", quantity * 2, flip=True, marks=marks)
    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity) == (Side.SHORT, quantity)
    assert await harness.repository.closed_trades() == []
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)
    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity) == (Side.SHORT, quantity)
    assert short.fees_usdt == fee_paid(harness, "web_flipped_40") / 2
    stops = [o for o in harness.exchange.orders.values() if o.kind is OrderKind.STOP_MARKET]
    assert any(o.side is OrderSide.BUY and o.status is OrderStatus.OPEN for o in stops)


async def test_a_part_sold_by_hand_unpriced_waits_and_is_booked_at_its_trade() -> None:
    """A person sells half while neither read answers: the reduction waits (the position
    booked as it was, its stop still covering it) and the next tick books it at 102."""
    harness = await Harness.start()
    quantity = await opened(harness)
    half = quantity / 2
    await closed_by_hand_unread(harness, "web_reduced_40", half)
    assert harness.keeper.positions[BTC].quantity == quantity
    await harness.tick()

    position = harness.keeper.positions[BTC]
    assert position.quantity == quantity - half
    assert position.realized_pnl_usdt == (Decimal(102) - position.entry_price) * half
    bought = OrderRequest("web_closed_43", BTC, OrderSide.SELL, OrderKind.MARKET, quantity - half)
    await harness.exchange.place_order(bought)
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.MANUAL


async def test_a_part_sold_by_hand_with_its_trades_unread_is_booked_at_the_mark_at_once(
) -> None:  # fmt: skip
    """A person sells half; the tick that sees it cannot read the account's trades but reads
    the mark (103): a part does not wait for its trades (the position is held and managed):
    it is booked at the mark in that tick, the line saying why, and nothing awaits a price
    (its trades amend it once read: below)."""
    harness = await Harness.start()
    quantity = await opened(harness)
    half = quantity / 2
    exchange = harness.exchange
    exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_reduced_41", OrderSide.SELL, half)
    exchange.move(BTC, Decimal(103))
    exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()
    assert awaiting(logs) == ""

    position = harness.keeper.positions[BTC]
    assert position.quantity == quantity - half
    assert position.realized_pnl_usdt == (Decimal(103) - position.entry_price) * half
    assert "booked at the mark 103 (the account's trades could not be read)" in noted(logs)
    assert harness.keeper.book.unpriced == {}
    assert BTC not in harness.keeper.view().blocked


async def test_the_close_awaiting_its_price_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    """On a real SQLite file: the waiting close is saved with the position's deletion, read
    back by the next run (the symbol blocked), booked at its trade and then forgotten."""
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    now = exchange.now = T0 + TICK
    repository = await SqliteRepository.open(path)
    try:
        keeper = await sqlite_keeper_on(exchange, repository, T0)
        await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
        quantity = keeper.positions[BTC].quantity
        await reduce_by_hand(exchange, "web_closed_44", quantity)
        exchange.account_fills_unreadable = exchange.marks_unreadable = 1
        now = exchange.now = now + TICK
        await keeper.tick(now)
        assert list(await repository.load_state(UNPRICED)) == [BTC]
        assert await repository.open_positions() == []
    finally:
        await repository.close()

    repository = await SqliteRepository.open(path)
    try:
        keeper = await sqlite_keeper_on(exchange, repository, now)
        assert BTC in keeper.view().blocked
        now = exchange.now = now + TICK
        await keeper.tick(now)
        [trade] = await repository.closed_trades()
        assert trade.exit_price == exchange.fills["web_closed_44"][0].price
        assert await repository.load_state(UNPRICED) == {}
        assert keeper.book.idle
    finally:
        await repository.close()


async def test_a_saved_close_that_cannot_be_read_back_is_said_once_and_dropped() -> None:
    harness = await Harness.start()
    await harness.repository.save_state(UNPRICED, BTC, {"position": [], "since": "x"})
    with capture_logs() as logs:
        await harness.restart()
    [said] = [e for e in logs if e["event"] == "external_unpriced_unreadable"]
    assert said["symbol"] == BTC
    assert "will not be booked" in said["detail"]
    assert await harness.repository.load_state(UNPRICED) == {}
    assert harness.keeper.view().blocked == {}


async def test_an_entry_fee_read_while_the_close_awaits_its_price_goes_into_its_trade() -> None:
    """The entry's fills were unread; the close by hand is seen with nothing to price it;
    the entry's fee is read on the next tick (the trades still unreadable) and kept with the
    waiting close, across a restart; the trade, booked at the person's price, has both fees,
    each once."""
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=2)  # the answer's read and the next tick's
    quantity = harness.keeper.positions[BTC].quantity
    await closed_by_hand_unread(harness, "web_closed_45", quantity)
    exchange.account_fills_unreadable = 1
    await harness.tick()  # the entry's fills read, the account's trades not
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.closed_trades() == []
    await harness.restart()
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)
    assert trade.fees_usdt == fee_paid(harness, entry) + fee_paid(harness, "web_closed_45")


async def test_a_flips_other_side_closed_while_the_first_close_awaits_its_price_is_kept() -> None:
    """A flip by hand seen with nothing to price it (the long waits, the short adopted), then
    the short bought back by hand, seen with nothing to price it either: the short stays
    booked (one close awaits a price on a symbol), the long's close is not lost; once the
    reads answer, both are booked once, each at its own trade."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    await closed_by_hand_unread(harness, "web_flipped_41", quantity * 2, flip=True)
    exchange.move(BTC, Decimal(101))
    buy = OrderRequest("web_closed_46", BTC, OrderSide.BUY, OrderKind.MARKET, quantity)
    await exchange.place_order(buy)
    exchange.account_fills_unreadable = exchange.marks_unreadable = 1
    await harness.tick()
    assert harness.keeper.positions[BTC].side is Side.SHORT
    for _ in range(3):
        await harness.tick()

    trades = sorted(await harness.repository.closed_trades(), key=lambda t: t.side)
    assert [(t.side, t.exit_price) for t in trades] == [
        (Side.LONG, Decimal(102)),
        (Side.SHORT, Decimal(101)),
    ]
    assert harness.keeper.book.idle


async def part_booked_at_the_mark(harness: Harness, name: str) -> Decimal:
    """Our long at 100; a person sells half at 102, seen by a tick that cannot read the
    account's trades but reads the mark 103: booked at the mark. The half."""
    quantity = await opened(harness)
    half = quantity / 2
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, name, OrderSide.SELL, half)
    harness.exchange.move(BTC, Decimal(103))
    harness.exchange.account_fills_unreadable = 1
    await harness.tick()
    position = harness.keeper.positions[BTC]
    assert position.realized_pnl_usdt == (Decimal(103) - position.entry_price) * half
    return half


async def test_a_part_booked_at_the_mark_is_amended_after_a_restart() -> None:
    """Saved with the position's bookings: the next run's first tick that reads the trades
    amends it as this run's would have; once read, its saved entry is deleted."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_44")
    assert set(await harness.repository.load_state("parts_unread")) == {BTC}
    await harness.restart()
    await harness.tick()

    position = harness.keeper.positions[BTC]
    assert position.realized_pnl_usdt == (Decimal(102) - position.entry_price) * half
    assert await harness.repository.load_state("parts_unread") == {}


async def test_a_saved_part_that_cannot_be_read_back_is_said_and_dropped() -> None:
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_45")
    saved = await harness.repository.load_state("parts_unread")
    broken = {"parts": [{**saved[BTC]["parts"][0], "mark": "NaN"}]}
    await harness.repository.save_state("parts_unread", BTC, broken)
    with capture_logs() as logs:
        await harness.restart()

    [said] = [e for e in logs if e["event"] == "parts_unread_unreadable"]
    assert "the mark's terms kept" in said["detail"]
    assert await harness.repository.load_state("parts_unread") == {}
    position = harness.keeper.positions[BTC]  # the position kept as held, at the mark's terms
    assert position.realized_pnl_usdt == (Decimal(103) - position.entry_price) * half


async def test_a_part_booked_at_the_mark_is_amended_to_its_trade_once_it_is_read() -> None:
    """Was: left at the mark's terms, the person's fee in no booking (the restart campaign
    with round trips, 2026-12-06: in 10 of 180 seeds). The next tick that reads the
    trades moves its PnL to the person's 102 and books the fee, once; the close after it
    keeps both."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_42")
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    with capture_logs() as logs:
        await harness.tick()

    position = harness.keeper.positions[BTC]
    assert position.realized_pnl_usdt == (Decimal(102) - position.entry_price) * half
    paid = fee_paid(harness, entry) + fee_paid(harness, "web_reduced_42")
    assert position.fees_usdt == paid
    [read] = [e for e in logs if e["event"] == "position_reduced_trades_read"]
    assert "by the account's 1 trade(s) at 102" in read["detail"]
    assert harness.keeper.book.parts_unread == {}
    await harness.tick()
    assert harness.keeper.positions[BTC] == position  # once

    harness.exchange.move(BTC, Decimal(104))
    await by_hand(harness, "web_closed_42", OrderSide.SELL, position.quantity)
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(104)  # the close's own trade, not the part's
    assert trade.fees_usdt == paid + fee_paid(harness, "web_closed_42")
    gross = (Decimal(102) + Decimal(104) - 2 * position.entry_price) * half
    assert trade.pnl_usdt == gross - trade.fees_usdt


async def test_a_part_whose_trade_is_never_listed_keeps_the_marks_terms_said_once() -> None:
    """Its trade listed nowhere: read each tick until `keeper.fees_unread_give_up_s`, then one
    warning, the mark's terms kept, no more reads for it."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_43")
    event = "position_reduced_trades_read"
    given_up = await given_up_unlisted(harness, "web_reduced_43", event)

    assert "the mark's terms kept, its fee not booked" in given_up["detail"]
    position = harness.keeper.positions[BTC]
    assert position.realized_pnl_usdt == (Decimal(103) - position.entry_price) * half


@pytest.mark.parametrize("restart", [False, True], ids=["same_run", "restarted"])
async def test_a_part_at_the_mark_then_the_close_awaiting_its_price_both_book_their_trades(
    restart: bool,
) -> None:
    """The trades unreadable from the part to the close by hand (a read outage): the close
    awaits its price, and the part is amended in it when the trades are read, before the
    close is booked — the trade at the person's 102 for the part and 104 for the rest, every
    fee once; also when the daemon restarted in between (both saved). Was: the part
    forgotten with the position, its closed trade at the mark's terms (103) and without the
    part's fee."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_46")
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    entry_price = harness.keeper.positions[BTC].entry_price
    harness.exchange.move(BTC, Decimal(104))
    await by_hand(harness, "web_closed_46", OrderSide.SELL, half)
    harness.exchange.account_fills_unreadable = 1
    await harness.tick()
    assert harness.keeper.positions == {}
    assert await harness.repository.closed_trades() == []
    assert set(await harness.repository.load_state("parts_unread")) == {BTC}
    if restart:
        await harness.restart()
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(104)  # the close's own trade, not the part's
    paid = sum(fee_paid(harness, name) for name in (entry, "web_reduced_46", "web_closed_46"))
    assert trade.fees_usdt == paid
    gross = (Decimal(102) + Decimal(104) - 2 * entry_price) * half
    assert trade.pnl_usdt == gross - paid
    [read] = [e for e in logs if e["event"] == "position_reduced_trades_read"]
    assert "by the account's 1 trade(s) at 102" in read["detail"]
    assert harness.keeper.book.parts_unread == {}
    assert await harness.repository.load_state("parts_unread") == {}
    for _ in range(3):
        await harness.tick()
    assert await harness.repository.closed_trades() == [trade]
    assert harness.keeper.book.idle


async def test_a_part_at_the_mark_then_a_flip_awaiting_its_price_amends_the_long_not_the_short(
) -> None:  # fmt: skip
    """The same outage, the rest flipped by hand (sold twice over at 104): the short held is
    adopted at once, the long's close awaits its price; once the trades are read the part is
    amended in the long's close (not taken for the short's, the position the symbol holds),
    the flip's sale left to the close."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_47")
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    entry_price = harness.keeper.positions[BTC].entry_price
    harness.exchange.move(BTC, Decimal(104))
    flip = OrderRequest("web_flipped_47", BTC, OrderSide.SELL, OrderKind.MARKET, half * 2)
    await harness.exchange.place_order(flip)
    harness.exchange.account_fills_unreadable = 1
    await harness.tick()
    assert harness.keeper.positions[BTC].side is Side.SHORT
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.side, trade.exit_price) == (Side.LONG, Decimal(104))
    paid = fee_paid(harness, entry) + fee_paid(harness, "web_reduced_47")
    assert trade.fees_usdt == paid + fee_paid(harness, "web_flipped_47") / 2
    gross = (Decimal(102) + Decimal(104) - 2 * entry_price) * half
    assert trade.pnl_usdt == gross - trade.fees_usdt
    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity, short.realized_pnl_usdt) == (Side.SHORT, half, ZERO)
    assert short.fees_usdt == fee_paid(harness, "web_flipped_47") / 2
    assert harness.keeper.book.parts_unread == {}


@pytest.mark.parametrize("restart", [False, True], ids=["same_run", "restarted"])
async def test_a_part_at_the_mark_then_our_stop_waits_for_the_parts_trades(
    restart: bool,
) -> None:
    """The trades unreadable from the part to our stop's fill for the rest: the trade is not
    booked at once (its part still at the mark's terms) but waits, the symbol blocked, until
    a tick reads the person's trade — the part amended to 102 and its fee — and is then
    booked at our stop's own terms; also across a restart. Was: booked at once, the
    part forgotten at the mark's terms, its fee in no booking."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_48")
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    position = harness.keeper.positions[BTC]
    stop = harness.exchange.orders[position.stop_order_id or ""]
    assert stop.trigger_price is not None
    harness.exchange.move(BTC, stop.trigger_price - 1)  # our stop fills the rest
    harness.exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()
    assert harness.keeper.positions == {}
    assert await harness.repository.closed_trades() == []
    assert BTC in harness.keeper.view().blocked
    [waits] = [e for e in logs if e["event"] == "close_awaits_parts"]
    assert "awaits the account's trades for what a person reduced" in waits["detail"]
    if restart:
        await harness.restart()
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    trailed = (ExitReason.TRAILING_HIT, stop.trigger_price)  # the stop trailed the mark's 103
    assert (trade.exit_reason, trade.exit_price) == trailed
    paid = sum(fee_paid(harness, name) for name in (entry, "web_reduced_48", stop.client_order_id))
    assert trade.fees_usdt == paid
    entry_price = position.entry_price
    gross = (Decimal(102) - entry_price + stop.trigger_price - entry_price) * half
    assert trade.pnl_usdt == gross - paid
    assert harness.keeper.book.parts_unread == {}
    assert BTC not in harness.keeper.view().blocked
    assert await harness.repository.load_state("parts_unread") == {}
    assert await harness.repository.load_state(UNPRICED) == {}


async def test_our_stop_waiting_for_a_parts_trades_is_booked_at_the_bound_without_them() -> None:
    """The trades never read: `keeper.external_close_mark_after_s` after our stop's fill the
    trade is booked at its own terms with the part's mark, one warning, the symbol free."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_49")
    position = harness.keeper.positions[BTC]
    stop = harness.exchange.orders[position.stop_order_id or ""]
    assert stop.trigger_price is not None
    harness.exchange.move(BTC, stop.trigger_price - 1)
    harness.exchange.account_fills_unreadable = 1_000
    await harness.tick()
    filled_at = harness.now
    with capture_logs() as logs:
        while harness.now - filled_at < BOUND:
            assert await harness.repository.closed_trades() == []
            await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == stop.trigger_price
    entry_price = position.entry_price
    gross = (Decimal(103) - entry_price + stop.trigger_price - entry_price) * half  # the mark
    assert trade.pnl_usdt == gross - trade.fees_usdt
    [said] = [e for e in logs if e["event"] == "position_reduced_trades_read"]
    assert "the mark's terms kept for it, its fee not booked" in said["detail"]
    assert BTC not in harness.keeper.view().blocked


async def until_stuck(harness: Harness) -> None:
    """The ticks while our stop, which met its trigger and is left firing for good, is not
    stuck yet (`monitor.stop_stuck_after_s`): it is executing, so the keeper sends no exit
    beside it; the next tick finds it stuck."""
    fired = harness.now
    while harness.now + TICK - fired < STUCK_AFTER:
        await harness.tick()
        assert sent(harness.exchange, Purpose.EXIT) == []


async def test_a_part_at_the_mark_then_our_market_exit_answered_waits_for_the_parts_trades(
) -> None:  # fmt: skip
    """The same wait where the close is our own market exit booked from its answer (our stop
    stuck firing, the keeper exits at market): booked once the part's trade is read."""
    harness = await Harness.start()
    half = await part_booked_at_the_mark(harness, "web_reduced_50")
    position = harness.keeper.positions[BTC]
    exchange = harness.exchange
    exchange.stall_next = True
    exchange.move(BTC, position.stop_price - 1)
    exchange.account_fills_unreadable = 1_000  # the part's trade unread while the stop fires
    await until_stuck(harness)
    exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()
    [exit_] = sent(exchange, Purpose.EXIT)
    assert harness.keeper.positions == {}
    assert await harness.repository.closed_trades() == []
    assert [e["event"] for e in logs if e["event"] == "close_awaits_parts"] == [
        "close_awaits_parts"
    ]
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    exit_price = exchange.orders[exit_].average_price
    assert exit_price is not None
    assert trade.exit_price == exit_price
    gross = (Decimal(102) - position.entry_price + exit_price - position.entry_price) * half
    assert trade.pnl_usdt == gross - trade.fees_usdt
    paid = fee_paid(harness, "web_reduced_50") + fee_paid(harness, exit_)
    assert trade.fees_usdt == position.fees_usdt + paid


@pytest.mark.parametrize(
    "change",
    [
        {"ours": True},  # a close of ours without its terms
        {"closed_by": {"order": "qt-s-1", "price": "NaN", "reason": "SL_HIT"}},
        {"closed_by": {"order": "qt-s-1", "price": "0", "reason": "SL_HIT"}},
        {"closed_by": {"order": "qt-s-1", "price": "101", "reason": "SOMETHING"}},
        {"closed_by": {"order": "qt-s-1", "price": "101"}},
    ],
)
async def test_a_saved_close_with_terms_that_do_not_read_back_is_dropped(
    change: dict[str, Any],
) -> None:
    """The terms of an exit of ours saved with a waiting close are checked as the rest of it:
    one that does not read back is said once and the entry dropped, as any unreadable one."""
    harness = await Harness.start()
    quantity = await opened(harness)
    await closed_by_hand_unread(harness, "web_closed_49", quantity)
    [saved] = (await harness.repository.load_state(UNPRICED)).values()
    await harness.repository.save_state(UNPRICED, BTC, {**saved, **change})
    with capture_logs() as logs:
        await harness.restart()
    assert [e["event"] for e in logs].count("external_unpriced_unreadable") == 1
    assert await harness.repository.load_state(UNPRICED) == {}
