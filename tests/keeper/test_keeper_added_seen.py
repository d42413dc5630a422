"""An addition by hand the keeper saw and booked (the position grown to what the exchange
holds), then a close or a flip by hand: the addition's trade, not taken when the growth was
booked, made the account's trades show the position "added to by hand since it opened", so
the close was booked at the mark (the hand-trading campaign's seed 32221, 2026-12-04 night:
SHORT 0.181 flipped by hand at 3547.48 booked MANUAL at the mark 3549.29). A growth by hand
now reads the account's trades and takes those that made it, with their fee."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid, noted, opened
from test_keeper_fees_unread import sent
from test_keeper_properties import Harness
from test_keeper_round_trip import trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.keeper.ids import Purpose


async def grown_by_hand(harness: Harness) -> tuple[Decimal, str]:
    """Our long of 3 at 100; 10 min later 1 bought by hand at 101 and the growth booked by a
    tick. The quantity our entry opened, its id."""
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.advance(timedelta(minutes=10))
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_added_2", OrderSide.BUY, Decimal(1))
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == quantity + 1
    assert harness.exchange.force_orders_asked == []  # an addition is no liquidation
    return quantity, entry


async def test_a_close_by_hand_after_an_addition_seen_is_booked_at_its_trade() -> None:
    harness = await Harness.start()
    quantity, entry = await grown_by_hand(harness)
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, entry) + fee_paid(
        harness, "web_added_2"
    )
    await closed_by_hand_at_its_trade(harness, quantity + 1, (entry, "web_added_2"))


async def closed_by_hand_at_its_trade(
    harness: Harness, quantity: Decimal, paid_by: tuple[str, ...]
) -> None:
    """A person sells all of the long at 103 (the mark 104 by the next tick): booked MANUAL
    at 103 by its own trade, with the fees of the orders `paid_by` and of the close."""
    harness.exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_4", OrderSide.SELL, quantity)
    harness.exchange.move(BTC, Decimal(104))
    with capture_logs() as logs:
        await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.quantity, closed.exit_price, closed.exit_reason) == (
        quantity,
        Decimal(103),
        ExitReason.MANUAL,
    )
    assert closed.fees_usdt == sum(fee_paid(harness, c) for c in (*paid_by, "web_closed_4"))
    assert "the account's 1 trade(s) 103" in noted(logs)


async def test_a_flip_by_hand_after_an_addition_seen_is_booked_at_its_trade() -> None:
    harness = await Harness.start()
    quantity, _ = await grown_by_hand(harness)
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_flip_5", OrderSide.SELL, 2 * (quantity + 1))
    harness.exchange.move(BTC, Decimal("98.5"))
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.exit_price, closed.exit_reason) == (Decimal(99), ExitReason.MANUAL)
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        quantity + 1,
        Decimal(99),
    )


async def test_a_growth_whose_trades_cannot_be_read_is_booked_and_said() -> None:
    """The account's trades unreadable at the growth: grown all the same, the line says its
    fee is booked once they can be read (below)."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.advance(timedelta(minutes=10))
    await trade(harness, "web_added_3", OrderSide.BUY, Decimal(1))
    harness.exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions[BTC].quantity == quantity + 1
    [grew] = [e for e in logs if e["event"] == "position_grown"]
    assert "could not be read: its fee booked once they are" in grew["detail"]


async def grown_unread(harness: Harness) -> tuple[Decimal, str]:
    """Our long of 3 at 100; 10 min later 1 bought by hand at 101, the growth booked by a
    tick that could not read the account's trades. The quantity our entry opened, its id."""
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.advance(timedelta(minutes=10))
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_added_6", OrderSide.BUY, Decimal(1))
    harness.exchange.account_fills_unreadable = 1
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == quantity + 1
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, entry)
    return quantity, entry


async def test_a_growth_whose_trades_could_not_be_read_gets_its_fee_once_they_can_be() -> None:
    """Was: its fee never booked."""
    harness = await Harness.start()
    _, entry = await grown_unread(harness)
    with capture_logs() as logs:
        await harness.tick()

    paid = fee_paid(harness, entry) + fee_paid(harness, "web_added_6")
    assert harness.keeper.positions[BTC].fees_usdt == paid
    [read] = [e for e in logs if e["event"] == "position_grown_trades_read"]
    assert "by the account's 1 trade(s)" in read["detail"]
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == paid  # once


@pytest.mark.parametrize("restart", [False, True], ids=["within a run", "across a restart"])
async def test_a_close_by_hand_after_a_growth_read_later_is_booked_at_its_trade(
    restart: bool,
) -> None:
    """The restart campaign, seed 40304: the growth booked while the account's trades could
    not be read, then a close by hand (while the daemon was stopped): the trades showed an
    addition the books never took, and the close was booked at the mark. Now the growth's
    trades are taken first — its quantity remembered, saved across a restart — and the
    close is booked at its own trade, every fee once."""
    harness = await Harness.start()
    quantity, entry = await grown_unread(harness)
    if restart:
        await harness.restart()
    await closed_by_hand_at_its_trade(harness, quantity + 1, (entry, "web_added_6"))


async def given_up_unlisted(harness: Harness, name: str, event: str) -> MutableMapping[str, Any]:
    """The trade of `name` listed nowhere: read each tick until `keeper.fees_unread_give_up_s`
    (an hour on), then one warning line `event` and no more reads; the line."""
    harness.exchange.fills.pop(name)  # Binance lists it nowhere
    with capture_logs() as logs:
        await harness.tick()
        harness.advance(timedelta(hours=1))
        await harness.tick()
        asked = len(harness.exchange.account_fills_asked)
        await harness.tick()
    assert len(harness.exchange.account_fills_asked) == asked  # no more reads
    [given_up] = [e for e in logs if e["event"] == event]
    assert given_up["log_level"] == "warning"
    return given_up


async def test_a_growth_whose_trades_never_show_is_given_up_once() -> None:
    """Its trades never listed: read each tick until `keeper.fees_unread_give_up_s`, then
    one warning, the fee not booked, no more reads."""
    harness = await Harness.start()
    _, entry = await grown_unread(harness)
    given_up = await given_up_unlisted(harness, "web_added_6", "position_grown_trades_read")

    assert "its fee not booked" in given_up["detail"]
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, entry)
    assert await harness.repository.load_state("added_unread") == {}


async def test_a_saved_growth_that_cannot_be_read_back_is_said_and_dropped() -> None:
    harness = await Harness.start()
    await grown_unread(harness)
    saved = await harness.repository.load_state("added_unread")
    assert set(saved) == {BTC}
    await harness.repository.save_state("added_unread", BTC, {**saved[BTC], "quantity": "NaN"})
    with capture_logs() as logs:
        await harness.restart()

    [said] = [e for e in logs if e["event"] == "added_unread_unreadable"]
    assert "its fee will not be booked" in said["detail"]
    assert await harness.repository.load_state("added_unread") == {}
    assert harness.keeper.positions[BTC].quantity == 4  # the position kept as held


async def test_a_growth_remembered_is_dropped_with_a_flip_by_hand() -> None:
    """Flipped before its trades were read again: the growth's trades taken first, the flip
    booked at its own trade with the growth's fee, nothing remembered after."""
    harness = await Harness.start()
    quantity, entry = await grown_unread(harness)
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_flip_8", OrderSide.SELL, 2 * (quantity + 1))
    await harness.tick()
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.exit_price, closed.exit_reason) == (Decimal(99), ExitReason.MANUAL)
    flip = fee_paid(harness, "web_flip_8")
    assert closed.fees_usdt == fee_paid(harness, entry) + fee_paid(harness, "web_added_6") + (
        flip / 2
    )
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.SHORT, quantity + 1)
    assert await harness.repository.load_state("added_unread") == {}


@pytest.mark.parametrize("unread", [False, True], ids=["the second read at once", "both unread"])
async def test_a_second_growth_and_the_first_unread_each_take_their_own_trades(
    unread: bool,
) -> None:
    """The first growth's trades unread, a second growth 10 min later, its trades read at
    once or unread too: each trade taken once, every fee once."""
    harness = await Harness.start()
    quantity, entry = await grown_unread(harness)
    harness.advance(timedelta(minutes=10))
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_added_9", OrderSide.BUY, Decimal(2))
    if unread:
        harness.exchange.account_fills_unreadable = 1
        await harness.tick()
    with capture_logs() as logs:
        await harness.tick()

    position = harness.keeper.positions[BTC]
    assert position.quantity == quantity + 3
    fees = [fee_paid(harness, c) for c in (entry, "web_added_6", "web_added_9")]
    assert position.fees_usdt == sum(fees)
    [read] = [e for e in logs if e["event"] == "position_grown_trades_read"]
    added, trades, fee = ("3.000", 2, fees[1] + fees[2]) if unread else ("1.000", 1, fees[1])
    assert read["detail"].startswith(f"{added} added by hand")
    assert f"by the account's {trades} trade(s), fee {fee} booked" in read["detail"]
