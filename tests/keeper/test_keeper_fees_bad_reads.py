"""Fees read later (keeper/fees.py) when the reads answer badly: a userTrades answer the
adapter cannot read (MarketDataError), an answer listing no trades for an order that executed,
and a `fees_unread` state entry that cannot be restored. Each gives a clear line; none stops
the keeper's tick or its start, nor amends a trade by a fee it did not read."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs
from test_keeper_fees_unread import (
    BTC,
    closed_with_the_exit_fills_unread,
    entered,
    fee_of,
    sent,
    stop_reached,
)
from test_keeper_properties import KEEPER, Harness, sized

from quantum_trader.domain import ExitReason, Side
from quantum_trader.keeper.fees import FEES_UNREAD
from quantum_trader.keeper.ids import Purpose


async def test_a_malformed_trades_answer_for_an_unread_fee_is_a_failed_read_not_a_failed_tick() -> (
    None
):
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    exchange.fills_malformed = 1
    with capture_logs() as logs:
        assert await harness.tick()

    assert await harness.repository.closed_trades() == [booked]
    assert set(harness.keeper.book.fees_unread) == {exit_}
    [said] = [e for e in logs if e["event"] == "fills_read_failed"]
    assert "'commission' is not finite" in said["error"]
    await harness.tick()  # answered as it should now: amended once
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == booked.fees_usdt + fee_of(exchange, exit_)
    assert harness.keeper.book.fees_unread == {}


async def test_an_entry_with_malformed_trades_is_booked_protected_and_its_fee_read_later() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.answers_without_fees = True
    exchange.fills_malformed = 1
    with capture_logs() as logs:
        await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)

    [entry] = sent(exchange, Purpose.ENTRY)
    position = harness.keeper.positions[BTC]
    assert position.stop_order_id is not None  # protected in the same call
    assert position.fees_usdt == 0
    assert set(harness.keeper.book.fees_unread) == {entry}
    [said] = [e for e in logs if e["event"] == "fills_read_failed"]
    assert said["log_level"] == "warning"
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_of(exchange, entry)


async def test_a_fee_whose_trades_stay_malformed_is_given_up_at_the_bound() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, _, booked = await closed_with_the_exit_fills_unread(harness)
    exchange.fills_malformed = 10_000
    with capture_logs() as logs:
        for _ in range(int(KEEPER.fees_unread_give_up_s / 5) + 3):
            assert await harness.tick()

    assert [e["event"] for e in logs if e["event"] == "fees_unread_given_up"] == [
        "fees_unread_given_up"
    ]
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.book.fees_unread == {}


async def test_a_trades_answer_listing_none_of_an_executed_order_is_no_read_of_its_fee() -> None:
    """Binance's userTrades may not list an order's trades yet (or no longer): an empty answer
    for an order that executed is not a fee of 0, so the trade is not amended by 0 and its
    order forgotten; the read goes on, and the trade is amended once the trades are listed."""
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    listed = exchange.fills[exit_]
    exchange.fills[exit_] = []
    with capture_logs() as logs:
        await harness.tick()
        await harness.tick()

    assert [e for e in logs if e["event"].startswith("trade_fees_amended")] == []
    assert await harness.repository.closed_trades() == [booked]
    assert set(harness.keeper.book.fees_unread) == {exit_}
    exchange.fills[exit_] = listed
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == booked.fees_usdt + fee_of(exchange, exit_)
    assert harness.keeper.book.fees_unread == {}


async def test_an_executed_order_whose_trades_stay_unlisted_is_given_up_at_the_bound() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    exchange.fills[exit_] = []
    with capture_logs() as logs:
        for _ in range(int(KEEPER.fees_unread_give_up_s / 5) + 3):
            await harness.tick()

    [given_up] = [e for e in logs if e["event"] == "fees_unread_given_up"]
    assert exit_ in given_up["detail"]
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.book.fees_unread == {}


async def test_an_open_positions_fee_listed_late_is_added_once_listed() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=1)
    listed = exchange.fills[entry]
    exchange.fills[entry] = []
    with capture_logs() as logs:
        await harness.tick()
    assert "fees_read" not in [e["event"] for e in logs]
    assert set(harness.keeper.book.fees_unread) == {entry}
    exchange.fills[entry] = listed
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_of(exchange, entry)
    assert harness.keeper.book.fees_unread == {}


async def test_a_close_that_finds_none_of_an_orders_trades_listed_books_it_as_unread() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=1)
    listed = exchange.fills[entry]
    exchange.fills[entry] = []
    with capture_logs() as logs:
        await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    [exit_] = sent(exchange, Purpose.EXIT)
    [booked] = await harness.repository.closed_trades()
    assert booked.fees_usdt == fee_of(exchange, exit_)
    [incomplete] = [e for e in logs if e["event"] == "trade_fees_incomplete"]
    assert incomplete["orders"] == [entry]
    exchange.fills[entry] = listed
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, exit_) + fee_of(exchange, entry)


@pytest.mark.parametrize(
    "saved",
    [
        {"since": "garbage", "booked_fee_usdt": "0"},
        {"booked_fee_usdt": "0"},
        {"since": "2025-06-01T00:00:00+00:00", "booked_fee_usdt": "zero"},
        {"since": "2025-06-01T00:00:00+00:00", "booked_fee_usdt": "0", "trade": {"symbol": BTC}},
        {"since": 12, "booked_fee_usdt": "0", "fee_read": [1]},
        {"since": "2025-06-01T00:00:00+00:00", "booked_fee_usdt": "NaN"},
        {"since": "2025-06-01T00:00:00+00:00", "booked_fee_usdt": "0", "fee_read": "Infinity"},
    ],
)
async def test_a_fees_unread_entry_that_cannot_be_restored_is_said_and_dropped(
    saved: dict[str, object],
) -> None:
    """One warning naming the order and what was saved; the keeper starts and ticks."""
    harness = await Harness.start()
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    await harness.repository.save_state(FEES_UNREAD, exit_, saved)
    with capture_logs() as logs:
        await harness.restart()
        assert await harness.tick()

    [said] = [e for e in logs if e["event"] == "fees_unread_unreadable"]
    assert said["log_level"] == "warning"
    assert said["client_order_id"] == exit_
    assert said["saved"] == saved
    assert harness.keeper.book.fees_unread == {}
    assert await harness.repository.load_state(FEES_UNREAD) == {}
    assert await harness.repository.closed_trades() == [booked]


async def test_a_fees_unread_entry_whose_order_is_not_stored_is_said_and_dropped() -> None:
    harness = await Harness.start()
    saved = {"since": "2025-06-01T00:00:00+00:00", "booked_fee_usdt": "0"}
    await harness.repository.save_state(FEES_UNREAD, "qt-e-BTC-gone-1.1", saved)
    with capture_logs() as logs:
        await harness.restart()

    [said] = [e for e in logs if e["event"] == "fees_unread_order_missing"]
    assert (said["log_level"], said["client_order_id"]) == ("warning", "qt-e-BTC-gone-1.1")
    assert await harness.repository.load_state(FEES_UNREAD) == {}


async def test_an_entry_saved_before_trades_were_amended_goes_to_its_open_position() -> None:
    """An older run's entry has no `trade`: it belonged to an open position, as all then did."""
    harness = await Harness.start()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=1)
    [saved] = (await harness.repository.load_state(FEES_UNREAD)).values()
    assert set(saved) == {"since", "booked_fee_usdt"}  # what an older run wrote too
    await harness.restart()
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_of(exchange, entry)


async def test_an_entry_whose_trades_are_not_listed_yet_at_its_answer_has_its_fee_read_later() -> (
    None
):
    """userTrades read just after the answer may not list the order's trades yet: the fee is
    not 0, the order is remembered as unread (was: booked with no fee, never read again)."""
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.answers_without_fees = True
    exchange.fills_unlisted = 1
    with capture_logs() as logs:
        await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)

    [entry] = sent(exchange, Purpose.ENTRY)
    assert set(harness.keeper.book.fees_unread) == {entry}
    [said] = [e for e in logs if e["event"] == "fills_read_failed"]
    assert "no trades listed" in said["error"]
    assert said["log_level"] == "info"
    await harness.tick()
    assert harness.keeper.positions[BTC].fees_usdt == fee_of(exchange, entry)


async def test_an_exit_whose_trades_are_not_listed_at_its_answer_amends_its_trade_later() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.answers_without_fees = True
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    exchange.fills_unlisted = 2  # the answer's read and the close's
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    [exit_] = sent(exchange, Purpose.EXIT)
    [booked] = await harness.repository.closed_trades()
    assert booked.fees_usdt == fee_of(exchange, entry)
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, exit_)


async def test_a_stop_whose_trades_are_not_listed_yet_when_found_filled_amends_its_trade() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, entry, stop_id = await stop_reached(harness)
    exchange.fills_unlisted = 2  # the tick's read and the close's
    with capture_logs() as logs:
        await harness.tick()
    [booked] = await harness.repository.closed_trades()
    assert (booked.exit_reason, booked.fees_usdt) == (ExitReason.SL_HIT, fee_of(exchange, entry))
    [said] = [e for e in logs if e["event"] == "fills_read_failed"]
    # Binance lists a trade a while after it: an info line, not a warning after every fill
    # on a lagging exchange (an outside probe, 2026-12-06); a read that fails is a warning.
    assert (said["log_level"], said["client_order_id"]) == ("info", stop_id)
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, stop_id)
