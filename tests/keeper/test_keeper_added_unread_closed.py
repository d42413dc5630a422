"""A growth by hand booked while the account's trades could not be read, whose position closed
before they were (keeper/added_unread.py): the addition stays remembered against the closed
trade, which is amended by its fee once the trades are read, once.

The restart campaign, seed 41774 (2026-12-06 night): a person added 0.205 ETH to our short of
0.844 while userTrades answered 429; our trailing stop closed the position (the daemon was
restarted in between) before a tick read the trades, and the remembered addition was dropped
with its position — the closed trade short of the addition's fee (0.2827 USDT) for good.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs
from test_keeper_added_seen import given_up_unlisted, grown_unread
from test_keeper_external_exits import BTC, by_hand, fee_paid
from test_keeper_fees_unread import sent, trade_ref
from test_keeper_properties import KEEPER, T0, Harness, sized
from test_keeper_round_trip import stops_of_ours, trade

from quantum_trader.domain import ClosedTrade, ExitReason, OrderSide, Side
from quantum_trader.keeper.added_unread import ADDED_UNREAD, UnreadAddition
from quantum_trader.keeper.book import Book, TradeFees
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.external_saved import EXTERNAL_BOOKED
from quantum_trader.keeper.fees import amendment
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.trade_ref import TradeRef

UNREADABLE = 10_000  # the account's trades answer 429 until the test says otherwise


def charged(harness: Harness) -> Decimal:
    """Every commission the exchange charged the account (the wallet's side)."""
    return sum((fee_paid(harness, cid) for cid in harness.exchange.fills), Decimal(0))


async def stopped_out(harness: Harness, *, stop_fills_unread: bool = False) -> str:
    """Our stop fires below its trigger while the account's trades stay unreadable (its own
    fills too, `stop_fills_unread`); the tick books the close. The stop's client id."""
    exchange = harness.exchange
    [stop] = stops_of_ours(harness)
    trigger = exchange.orders[stop].trigger_price
    assert trigger is not None
    exchange.account_fills_unreadable = UNREADABLE
    if stop_fills_unread:  # and its answer without a fee, as Binance's
        exchange.fills_unreadable = UNREADABLE
        exchange.answers_without_fees = True
    exchange.move(BTC, trigger - 1)
    await harness.tick()
    assert BTC not in harness.keeper.positions
    [closed] = await harness.repository.closed_trades()
    assert closed.exit_reason is not ExitReason.MANUAL  # our stop's
    return stop


async def readable(harness: Harness, ticks: int = 3) -> list[str]:
    """The trades readable again; `ticks` ticks; the events logged."""
    harness.exchange.account_fills_unreadable = 0
    harness.exchange.fills_unreadable = 0
    with capture_logs() as logs:
        for _ in range(ticks):
            await harness.tick()
    return [e["event"] for e in logs]


async def amended_once(harness: Harness, booked: ClosedTrade, events: list[str]) -> None:
    """The closed trade holds every fee the account was charged, the addition's too, once:
    amended once, nothing remembered after, and nothing more after another tick or a
    restart."""
    [trade] = await harness.repository.closed_trades()
    added = fee_paid(harness, "web_added_6")
    assert trade.fees_usdt == charged(harness) == booked.fees_usdt + added > booked.fees_usdt
    assert trade.pnl_usdt == booked.pnl_usdt - added
    assert events.count("trade_fees_amended") == 1
    assert harness.keeper.book.added_unread == {}
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(ADDED_UNREAD) == {}
    await harness.restart()
    assert "trade_fees_amended" not in await readable(harness)
    assert await harness.repository.closed_trades() == [trade]


@pytest.mark.parametrize(
    "restart",
    [None, "before the close", "after the close"],
    ids=["within a run", "restart before the close", "restart after the close"],
)
async def test_a_growth_unread_when_our_stop_closed_it_amends_the_trade_once_read(
    restart: str | None,
) -> None:
    """Was: the addition forgotten with its position, its fee in no booking."""
    harness = await Harness.start()
    await grown_unread(harness)
    harness.exchange.account_fills_unreadable = UNREADABLE
    await harness.tick()
    if restart == "before the close":
        await harness.restart()
    await stopped_out(harness)
    [booked] = await harness.repository.closed_trades()
    assert booked.fees_usdt == charged(harness) - fee_paid(harness, "web_added_6")
    await harness.tick()  # still unreadable
    if restart == "after the close":
        await harness.restart()

    events = await readable(harness)

    await amended_once(harness, booked, events)


async def test_a_growth_unread_at_its_close_is_remembered_against_the_trade_and_saved() -> None:
    harness = await Harness.start()
    await grown_unread(harness)
    with capture_logs() as logs:
        await stopped_out(harness)
    [booked] = await harness.repository.closed_trades()
    [said] = [e for e in logs if e["event"] == "trade_fees_incomplete"]
    assert said["orders"] == []
    assert "the fee of 1.000 added by hand: its trades were unread" in said["detail"]
    await harness.tick()

    waiting = harness.keeper.book.added_unread[BTC]
    assert waiting.quantity == Decimal(1)
    assert waiting.trade == trade_ref(booked)
    assert waiting.position is not None
    assert waiting.position.entry_order_id == booked.entry_order_id
    saved = await harness.repository.load_state(ADDED_UNREAD)
    assert UnreadAddition.from_dict(saved[BTC]) == waiting
    await harness.restart()
    assert harness.keeper.book.added_unread == {BTC: waiting}


async def test_an_amendment_written_before_the_growth_was_forgotten_is_not_made_again() -> None:
    """A stop between the trade's amendment and forgetting the growth: the next run reads its
    trades again and finds the trade amended already."""
    harness = await Harness.start()
    await grown_unread(harness)
    await stopped_out(harness)
    await harness.tick()
    saved = {n: await harness.repository.load_state(n) for n in (ADDED_UNREAD, EXTERNAL_BOOKED)}
    await readable(harness, ticks=1)
    [amended] = await harness.repository.closed_trades()
    for namespace, entries in saved.items():  # as the stop left them: written together
        await harness.repository.delete_state(namespace, BTC)
        for symbol, entry in entries.items():
            await harness.repository.save_state(namespace, symbol, entry)
    await harness.restart()

    events = await readable(harness, ticks=2)

    assert await harness.repository.closed_trades() == [amended]
    assert amended.fees_usdt == charged(harness)
    assert "trade_fees_amended" not in events
    assert "trade_fees_amended_already" in events
    assert await harness.repository.load_state(ADDED_UNREAD) == {}


async def test_a_growth_and_a_stop_both_unread_amend_the_trade_by_each_fee_once() -> None:
    """userTrades down for both reads, the stop's fills and the account's trades (one
    endpoint at Binance): the trade is amended by each fee once, as each is read (the
    order's does not wait for a person's trade, which may never be listed)."""
    harness = await Harness.start()
    await grown_unread(harness)
    stop = await stopped_out(harness, stop_fills_unread=True)
    [booked] = await harness.repository.closed_trades()
    missing = fee_paid(harness, "web_added_6") + fee_paid(harness, stop)
    assert booked.fees_usdt == charged(harness) - missing

    events = await readable(harness)

    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == charged(harness) == booked.fees_usdt + missing
    assert trade.pnl_usdt == booked.pnl_usdt - missing
    assert events.count("trade_fees_amended") == 2
    assert "trade_fees_not_amended" not in events
    assert harness.keeper.book.added_unread == {}
    assert harness.keeper.book.fees_unread == {}


def test_an_amendment_points_what_is_still_remembered_at_the_trade_as_stored() -> None:
    """Booked with fees of more than 8 decimals (a fee scaled to an order's quantity), the
    trade's row holds them to 8, and an amendment stores its sum to 8 again: the growth still
    remembered against the trade refers to those fees, which its own amendment then finds
    (keeper/fee_carry.py `amend`; rounding the unrounded sum instead gave 0.12345679, and the
    growth's fee was not amended: `trade_fees_not_amended`)."""
    ref = TradeRef(BTC, "qt-e-1", T0, Decimal("0.123456785"), Decimal(3))
    waiting = UnreadAddition(Decimal(1), T0, "qt-e-1", T0, trade=ref)
    book = Draft(Book(added_unread={BTC: waiting}))

    made = amendment(book, ref, Decimal("0.000000005"), ("qt-x-1",))

    assert made == TradeFees(ref, Decimal("0.000000005"), ("qt-x-1",))
    rebased = book.added_unread[BTC].trade
    assert rebased is not None
    assert rebased.fees_usdt == Decimal("0.12345678")  # 0.12345678 + 0.000000005, half even


async def test_a_growth_unread_whose_trades_read_again_as_our_stop_fills_is_in_its_trade() -> None:
    """The trades readable again on the tick that books our stop's fill: that tick reads them
    for the growth before it books the close, whose trade has every fee as booked, nothing
    to amend (was: not read, no close by hand to read them for, the growth dropped)."""
    harness = await Harness.start()
    await grown_unread(harness)
    [stop] = stops_of_ours(harness)
    trigger = harness.exchange.orders[stop].trigger_price
    assert trigger is not None
    harness.exchange.move(BTC, trigger - 1)
    with capture_logs() as logs:
        await harness.tick()
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == charged(harness)
    events = [e["event"] for e in logs]
    assert events.count("position_grown_trades_read") == 1
    assert "trade_fees_amended" not in events
    assert harness.keeper.book.added_unread == {}
    assert await harness.repository.load_state(ADDED_UNREAD) == {}


async def test_a_growth_unread_when_a_person_closed_it_at_the_mark_amends_the_trade() -> None:
    """A close by hand, its trades unreadable past `keeper.external_close_mark_after_s`:
    booked at the mark; the growth's fee amends that trade once the trades are read (its
    close's own fee is left out, as a close booked at the mark always is)."""
    harness = await Harness.start()
    quantity, _ = await grown_unread(harness)
    harness.exchange.account_fills_unreadable = UNREADABLE
    await by_hand(harness, "web_closed_7", OrderSide.SELL, quantity + 1)
    await harness.tick()
    harness.advance(timedelta(seconds=KEEPER.external_close_mark_after_s))
    await harness.tick()
    [booked] = await harness.repository.closed_trades()
    assert booked.exit_reason is ExitReason.MANUAL
    assert set(harness.keeper.book.added_unread) == {BTC}

    events = await readable(harness)

    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == booked.fees_usdt + fee_paid(harness, "web_added_6")
    assert events.count("trade_fees_amended") == 1


async def test_a_growth_unread_when_our_exit_answered_closed_it_amends_the_trade() -> None:
    """Closed by an exit of ours booked from its answer (`close_all`), in the tick that
    sends it: the growth is remembered against that trade too."""
    harness = await Harness.start()
    await grown_unread(harness)
    harness.exchange.account_fills_unreadable = UNREADABLE
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    [booked] = await harness.repository.closed_trades()
    assert booked.fees_usdt == charged(harness) - fee_paid(harness, "web_added_6")

    events = await readable(harness)

    await amended_once(harness, booked, events)


async def test_a_growth_unread_when_a_person_flipped_it_is_in_the_flip_s_trade() -> None:
    """A flip by hand while the trades are unreadable: the close awaits its price, the new
    side held beside it; once they read, the growth's fee goes to the close awaiting its
    price, booked at the flip's trade (was: dropped, the new side not its position)."""
    harness = await Harness.start()
    quantity, entry = await grown_unread(harness)
    harness.exchange.account_fills_unreadable = UNREADABLE
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_flip_8", OrderSide.SELL, 2 * (quantity + 1))
    await harness.tick()
    assert BTC in harness.keeper.book.unpriced

    await readable(harness)

    [closed] = await harness.repository.closed_trades()
    assert (closed.exit_price, closed.exit_reason) == (Decimal(99), ExitReason.MANUAL)
    paid = fee_paid(harness, entry) + fee_paid(harness, "web_added_6")
    assert closed.fees_usdt == paid + fee_paid(harness, "web_flip_8") / 2
    assert harness.keeper.book.added_unread == {}


async def test_a_growth_unread_past_the_bound_after_its_close_is_given_up_once() -> None:
    """Its trades never listed: read each tick until `keeper.fees_unread_give_up_s`, then
    one warning, the trade as booked, no more reads."""
    harness = await Harness.start()
    await grown_unread(harness)
    await stopped_out(harness)
    [booked] = await harness.repository.closed_trades()
    harness.exchange.account_fills_unreadable = 0
    given_up = await given_up_unlisted(harness, "web_added_6", "position_grown_trades_read")

    assert "left out of its closed trade's fees" in given_up["detail"]
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.book.added_unread == {}
    assert await harness.repository.load_state(ADDED_UNREAD) == {}


async def test_a_growth_unread_past_a_new_position_there_is_given_up_not_misbooked() -> None:
    """A limit: a new position of ours on the symbol before the trades read again, whose own
    window does not reach the growth's trades: given up after the bound, said once; the new
    position's bookings as without it."""
    harness = await Harness.start()
    await grown_unread(harness)
    await stopped_out(harness)
    [booked] = await harness.repository.closed_trades()
    mark = harness.exchange.marks[BTC]
    await harness.keeper.enter(sized(BTC, Side.LONG, mark), harness.now)
    [_, entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.exchange.account_fills_unreadable = 0
    with capture_logs() as logs:
        for _ in range(3):
            await harness.tick()
        harness.advance(timedelta(seconds=KEEPER.fees_unread_give_up_s))
        for _ in range(3):
            await harness.tick()

    [given_up] = [e for e in logs if e["event"] == "position_grown_trades_read"]
    assert given_up["log_level"] == "warning"
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, entry)
    assert harness.keeper.book.added_unread == {}
