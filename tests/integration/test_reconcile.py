"""Start-up and crash reconciliation (SPEC §9) on the paper exchange, in memory, on a manual
clock: the keeper's first tick after a restart is the same code as every later tick.

Each case builds the state a crash or a person would leave behind, restarts the keeper over
the same repository and exchange, runs one tick and checks the database, the books and the
exchange afterwards.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from integration_builders import BTC, ETH, Account, bars, paper_account
from structlog.testing import capture_logs

from quantum_trader.domain import (
    ExchangePosition,
    ExitMode,
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Side,
)
from quantum_trader.keeper.book import EntryPlan, Intent
from quantum_trader.keeper.booking import opened_position
from quantum_trader.keeper.orders import INTENTS
from quantum_trader.keeper.settings import KeeperSettings

FLAT = [100.0] * 40
GRACE = timedelta(seconds=KeeperSettings().unknown_order_final_s)


async def run(account: Account) -> tuple[Account, list[MutableMapping[str, Any]]]:
    """Restart over the same repository and exchange and run the first tick."""
    restarted = await account.restart()
    with capture_logs() as logs:
        await restarted.keeper.tick(restarted.now, rest=True)
    return restarted, logs


def events(logs: list[MutableMapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs]


async def open_stops(account: Account, symbol: str) -> list[Order]:
    return [
        o
        for o in await account.exchange.fetch_open_conditional_orders(symbol)
        if o.kind is OrderKind.STOP_MARKET
    ]


async def test_a_clean_account_needs_nothing_and_allows_entries() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    restarted, logs = await run(account)
    assert [e for e in logs if e["log_level"] in ("error", "warning")] == []
    assert "protective_stop_placed" not in events(logs)
    assert set(restarted.keeper.positions) == {BTC}
    assert restarted.keeper.view().blocked == {}


async def test_a_pending_entry_that_filled_is_adopted_with_its_plan() -> None:
    account = await paper_account(bars(BTC, FLAT))
    request = OrderRequest("qt-e-BTC-crash-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(2))
    plan = EntryPlan(Side.LONG, Decimal(96), Decimal(108), 3, 0.02, ExitMode.TREND_FOLLOW)
    intent = Intent(Order.pending(request, account.now), account.now, plan)
    await account.repository.save_state(INTENTS, request.client_order_id, intent.extra_to_dict())
    await account.repository.save_order(intent.order)
    await account.exchange.place_order(request)  # then the process died

    restarted, logs = await run(account)

    recorded = await restarted.repository.get_order("qt-e-BTC-crash-1")
    assert recorded is not None
    assert recorded.status is OrderStatus.FILLED
    assert len(await restarted.repository.fills(BTC)) == 1
    position = restarted.keeper.positions[BTC]
    assert position.entry_order_id == "qt-e-BTC-crash-1"
    assert (position.quantity, position.stop_price) == (Decimal(2), Decimal(96))
    assert (position.take_profit_price, position.exit_mode) == (Decimal(108), ExitMode.TREND_FOLLOW)
    assert position.fees_usdt > 0  # the entry's fee, from its fill
    [stop] = await open_stops(restarted, BTC)
    assert (stop.client_order_id, stop.trigger_price) == (position.stop_order_id, Decimal(96))
    assert "position_opened" in events(logs)
    assert restarted.keeper.view().blocked == {}
    assert (await restarted.repository.open_positions())[0].stop_order_id == stop.client_order_id
    assert await restarted.repository.load_state(INTENTS) == {}


async def test_a_pending_entry_of_an_earlier_version_is_adopted_with_the_default_stop() -> None:
    account = await paper_account(bars(BTC, FLAT))
    request = OrderRequest("qt-e-BTC-crash-2", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(2))
    await account.repository.save_order(Order.pending(request, account.now))  # no plan saved
    await account.exchange.place_order(request)

    restarted, _ = await run(account)

    position = restarted.keeper.positions[BTC]
    assert position.stop_price == Decimal("97.0")  # 3 % below the entry
    assert position.take_profit_price == Decimal("106.0")  # 2 R
    assert [s.client_order_id for s in await open_stops(restarted, BTC)] == [position.stop_order_id]


async def test_intents_the_exchange_never_got_block_entries_until_they_are_final() -> None:
    account = await paper_account(bars(BTC, FLAT))
    lost = OrderRequest("qt-e-BTC-lost-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(1))
    unknown = OrderRequest("qt-e-ETH-lost-2", ETH, OrderSide.SELL, OrderKind.MARKET, Decimal(1))
    await account.repository.save_order(Order.pending(lost, account.now))
    await account.repository.save_order(
        replace(Order.pending(unknown, account.now), status=OrderStatus.UNKNOWN)
    )

    restarted, _ = await run(account)
    assert set(restarted.keeper.view().blocked) == {BTC, ETH}  # may still arrive: wait

    account.clock.advance(GRACE.total_seconds())
    restarted, logs = await run(restarted)

    rejected = await restarted.repository.get_order("qt-e-BTC-lost-1")
    expired = await restarted.repository.get_order("qt-e-ETH-lost-2")
    assert rejected is not None
    assert rejected.status is OrderStatus.REJECTED
    assert expired is not None
    assert expired.status is OrderStatus.EXPIRED
    assert "not on the exchange" in rejected.detail
    assert events(logs).count("order_never_accepted") == 2
    assert restarted.keeper.positions == {}
    assert restarted.keeper.view().blocked == {}


async def test_an_unknown_exchange_position_is_adopted_and_protected() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.send("by-hand-1", ETH, OrderSide.SELL, "3")  # a short opened by a person

    restarted, logs = await run(account)

    position = restarted.keeper.positions[ETH]
    assert position.side is Side.SHORT
    assert position.quantity == Decimal(3)
    assert position.stop_price == Decimal("51.5")  # 3 % above the entry of a short
    assert position.take_profit_price == Decimal("47.0")
    [stop] = await open_stops(restarted, ETH)
    assert stop.side is OrderSide.BUY
    assert stop.reduce_only
    assert stop.client_order_id == position.stop_order_id
    [adopted] = [e for e in logs if e["event"] == "position_adopted"]
    assert (adopted["symbol"], adopted["log_level"]) == (ETH, "error")


async def test_an_adopted_position_keeps_its_stop_of_ours_instead_of_adding_one() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.send("qt-e-BTC-x-1", BTC, OrderSide.BUY, "1")
    await account.send(
        "qt-s-BTC-x-2", BTC, OrderSide.SELL, "1", OrderKind.STOP_MARKET, trigger="92"
    )  # entry and stop were sent; the crash came before the ledger write

    restarted, _ = await run(account)

    position = restarted.keeper.positions[BTC]
    assert position.stop_order_id == "qt-s-BTC-x-2"
    assert position.stop_price == position.initial_stop_price == Decimal(92)
    assert [o.client_order_id for o in await open_stops(restarted, BTC)] == ["qt-s-BTC-x-2"]


async def test_a_position_closed_by_hand_while_down_is_booked_at_its_own_price_and_fee() -> None:
    """Closed by hand at 100, the market at 104 when the daemon comes back an hour later: the
    trade is the person's (price and fee, from the account's trades), not the mark's."""
    account = await paper_account(bars(BTC, FLAT[:3] + [104.0] * 37))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    entry_fees = account.keeper.positions[BTC].fees_usdt
    await account.send("by-hand-2", BTC, OrderSide.SELL, "1", reduce_only=True)
    [by_hand] = await account.exchange.fetch_fills(BTC, "by-hand-2")
    account.minutes(70)

    restarted, logs = await run(account)

    assert (await restarted.exchange.fetch_mark_prices([BTC]))[BTC] == Decimal(104)
    assert restarted.keeper.positions == {}
    [trade] = await restarted.repository.closed_trades()
    assert trade.exit_reason is ExitReason.MANUAL
    assert trade.exit_price == by_hand.price == Decimal(100)
    assert trade.fees_usdt == entry_fees + by_hand.fee_usdt > entry_fees
    assert "position_closed_externally" in events(logs)
    assert await open_stops(restarted, BTC) == []  # its protective orders were cancelled


async def test_a_stop_that_fired_while_down_is_booked_as_a_stop_exit() -> None:
    closes = FLAT[:12] + [94.0] + [94.0] * 27  # the bar at 60 min falls through the stop
    account = await paper_account(bars(BTC, closes))
    position = await account.open(BTC, Side.LONG, "1", "95", "110")
    account.minutes(90)  # the daemon was down while the stop filled

    restarted, logs = await run(account)

    assert restarted.keeper.positions == {}
    [trade] = await restarted.repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT
    assert trade.exit_price == Decimal(95)
    stop = await restarted.repository.get_order(position.stop_order_id or "")
    assert stop is not None
    assert stop.status is OrderStatus.FILLED
    assert "position_closed_externally" not in events(logs)
    leftovers = await restarted.exchange.fetch_open_conditional_orders(BTC)
    assert [o.client_order_id for o in leftovers] == []  # its take-profit was cancelled


async def test_an_exit_of_ours_that_filled_before_the_crash_is_booked() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    exit_request = OrderRequest(
        "qt-x-BTC-crash-9", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal(1), reduce_only=True
    )
    await account.repository.save_order(Order.pending(exit_request, account.now))
    await account.exchange.place_order(exit_request)

    restarted, logs = await run(account)

    assert restarted.keeper.positions == {}
    [trade] = await restarted.repository.closed_trades()
    assert trade.exit_price == Decimal(100)
    assert trade.exit_reason is ExitReason.MANUAL  # the exit's reason was lost with the crash
    assert "position_closed_externally" not in events(logs)
    recorded = await restarted.repository.get_order("qt-x-BTC-crash-9")
    assert recorded is not None
    assert recorded.status is OrderStatus.FILLED


async def test_more_on_the_exchange_than_in_the_ledger_is_adopted_and_protected() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    await account.send("by-hand-3", BTC, OrderSide.BUY, "0.5")

    restarted, logs = await run(account)

    position = restarted.keeper.positions[BTC]
    assert position.quantity == Decimal("1.5")
    [stop] = await open_stops(restarted, BTC)
    assert stop.quantity == Decimal("1.5")
    [grown] = [e for e in logs if e["event"] == "position_grown"]
    assert grown["log_level"] == "error"  # no order of ours explains it


async def test_a_reduction_no_order_explains_is_booked_and_the_stop_resized() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    await account.send("by-hand-4", BTC, OrderSide.SELL, "0.4", reduce_only=True)

    restarted, logs = await run(account)

    assert restarted.keeper.positions[BTC].quantity == Decimal("0.6")
    [stop] = await open_stops(restarted, BTC)
    assert stop.quantity == Decimal("0.6")
    assert "position_closed_externally" in events(logs)
    assert await restarted.repository.closed_trades() == []  # a part, not the round trip


async def test_reconciling_twice_changes_nothing_the_second_time() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.send("by-hand-5", ETH, OrderSide.BUY, "2")
    restarted, first = await run(account)
    again, second = await run(restarted)
    assert "position_adopted" in events(first)
    assert [e for e in second if e["log_level"] in ("info", "warning", "error")] == []
    assert again.keeper.positions == restarted.keeper.positions


def test_adopted_position_defaults_follow_the_settings() -> None:
    held = ExchangePosition(BTC, Side.LONG, Decimal(2), Decimal(200), 5)
    now = datetime(2025, 3, 1, tzinfo=UTC)
    settings = KeeperSettings(adopt_stop_pct=0.05)
    position = opened_position(held, None, None, now, Decimal(0), settings)
    assert position.stop_price == Decimal("190.00")
    assert position.take_profit_price == Decimal("220.00")
    assert position.leverage == 5
    assert position.opened_at == now
    assert abs(position.atr_pct - 0.05 / 1.5) < 1e-12
