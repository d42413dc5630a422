"""Startup and crash reconciliation (SPEC §9) on the paper exchange, in memory, on a manual clock.

Each case builds the state a crash or a person would leave behind, runs `reconcile` on a fresh
ledger (a restart) and checks the database, the ledger and the exchange afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from integration_builders import BTC, ETH, Account, bars, paper_account

from quantum_trader.domain import (
    ExchangePosition,
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Side,
)
from quantum_trader.execution.reconcile import (
    ReconcileStep,
    ReconciliationReport,
    adopted_position,
    reconcile,
)
from quantum_trader.execution.settings import ReconcileSettings

FLAT = [100.0] * 40


async def run(account: Account) -> tuple[Account, ReconciliationReport]:
    restarted = await account.restart()
    report = await reconcile(
        restarted.exchange, restarted.repository, restarted.trader, restarted.now
    )
    return restarted, report


async def open_stops(account: Account, symbol: str) -> list[Order]:
    return [
        o
        for o in await account.exchange.fetch_open_conditional_orders(symbol)
        if o.kind is OrderKind.STOP_MARKET
    ]


async def test_a_clean_account_needs_nothing_and_allows_entries() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    restarted, report = await run(account)
    assert report.actions == ()
    assert not report.blocks_entries
    assert set(restarted.trader.ledger.positions) == {BTC}


async def test_a_pending_entry_that_filled_is_recorded_and_adopted_with_a_default_stop() -> None:
    account = await paper_account(bars(BTC, FLAT))
    request = OrderRequest("qt-e-BTC-crash-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(2))
    await account.repository.save_order(Order.pending(request, account.now))
    await account.exchange.place_order(request)  # then the process died

    restarted, report = await run(account)

    recorded = await restarted.repository.get_order("qt-e-BTC-crash-1")
    assert recorded is not None
    assert recorded.status is OrderStatus.FILLED
    assert len(await restarted.repository.fills(BTC)) == 1
    position = restarted.trader.ledger.positions[BTC]
    assert position.entry_order_id == "qt-e-BTC-crash-1"
    assert position.quantity == Decimal(2)
    assert position.stop_price == Decimal("97.0")  # 3 % below the entry
    assert position.take_profit_price == Decimal("106.0")  # 2 R
    [stop] = await open_stops(restarted, BTC)
    assert stop.client_order_id == position.stop_order_id
    assert stop.trigger_price == Decimal("97.0")
    assert [a.step for a in report.actions] == [
        ReconcileStep.ORDER_RECOVERED,
        ReconcileStep.POSITION_ADOPTED,
    ]
    assert not report.blocks_entries
    assert (await restarted.repository.open_positions())[0].stop_order_id == stop.client_order_id


async def test_intents_the_exchange_never_got_are_closed_with_a_detail() -> None:
    account = await paper_account(bars(BTC, FLAT))
    lost = OrderRequest("qt-e-BTC-lost-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(1))
    unknown = OrderRequest("qt-e-ETH-lost-2", ETH, OrderSide.SELL, OrderKind.MARKET, Decimal(1))
    await account.repository.save_order(Order.pending(lost, account.now))
    await account.repository.save_order(
        replace(Order.pending(unknown, account.now), status=OrderStatus.UNKNOWN)
    )

    restarted, report = await run(account)

    rejected = await restarted.repository.get_order("qt-e-BTC-lost-1")
    expired = await restarted.repository.get_order("qt-e-ETH-lost-2")
    assert rejected is not None
    assert rejected.status is OrderStatus.REJECTED
    assert expired is not None
    assert expired.status is OrderStatus.EXPIRED
    assert "not on the exchange" in rejected.detail
    assert len(report.steps(ReconcileStep.ORDER_NOT_FOUND)) == 2
    assert restarted.trader.ledger.positions == {}
    assert not report.blocks_entries


async def test_an_unknown_exchange_position_is_adopted_and_protected() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.send("by-hand-1", ETH, OrderSide.SELL, "3")  # a short opened by a person

    restarted, report = await run(account)

    position = restarted.trader.ledger.positions[ETH]
    assert position.side is Side.SHORT
    assert position.quantity == Decimal(3)
    assert position.stop_price == Decimal("51.5")  # 3 % above the entry of a short
    assert position.take_profit_price == Decimal("47.0")
    [stop] = await open_stops(restarted, ETH)
    assert stop.side is OrderSide.BUY
    assert stop.reduce_only
    assert stop.client_order_id == position.stop_order_id
    assert position.take_profit_order_id is not None
    assert report.steps(ReconcileStep.POSITION_ADOPTED)[0].symbol == ETH


async def test_an_adopted_position_keeps_its_stop_of_ours_instead_of_adding_one() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.send("qt-e-BTC-x-1", BTC, OrderSide.BUY, "1")
    await account.send(
        "qt-s-BTC-x-2", BTC, OrderSide.SELL, "1", OrderKind.STOP_MARKET, trigger="92"
    )  # entry and stop were sent; the crash came before the ledger write

    restarted, report = await run(account)

    position = restarted.trader.ledger.positions[BTC]
    assert position.stop_order_id == "qt-s-BTC-x-2"
    assert position.stop_price == position.initial_stop_price == Decimal(92)
    assert [o.client_order_id for o in await open_stops(restarted, BTC)] == ["qt-s-BTC-x-2"]
    assert not report.blocks_entries


async def test_a_position_closed_by_hand_is_booked_as_manual_at_the_mark() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    await account.send("by-hand-2", BTC, OrderSide.SELL, "1", reduce_only=True)

    restarted, report = await run(account)

    assert restarted.trader.ledger.positions == {}
    [trade] = await restarted.repository.closed_trades()
    assert trade.exit_reason is ExitReason.MANUAL
    assert trade.exit_price == Decimal(100)
    assert report.steps(ReconcileStep.EXTERNAL_EXIT_BOOKED)
    assert await open_stops(restarted, BTC) == []  # its protective orders were cancelled
    assert not report.blocks_entries


async def test_a_stop_that_fired_while_down_is_booked_as_a_stop_exit() -> None:
    closes = FLAT[:12] + [94.0] + [94.0] * 27  # the bar at 60 min falls through the stop
    account = await paper_account(bars(BTC, closes))
    position = await account.open(BTC, Side.LONG, "1", "95", "110")
    account.minutes(90)  # the daemon was down while the stop filled

    restarted, report = await run(account)

    assert restarted.trader.ledger.positions == {}
    [trade] = await restarted.repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT
    assert trade.exit_price == Decimal(95)
    stop = await restarted.repository.get_order(position.stop_order_id or "")
    assert stop is not None
    assert stop.status is OrderStatus.FILLED
    assert [a.step for a in report.actions] == [ReconcileStep.EXIT_BOOKED]


async def test_an_exit_of_ours_that_filled_before_the_crash_is_booked() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    exit_request = OrderRequest(
        "qt-x-BTC-crash-9", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal(1), reduce_only=True
    )
    await account.repository.save_order(Order.pending(exit_request, account.now))
    await account.exchange.place_order(exit_request)

    restarted, report = await run(account)

    assert restarted.trader.ledger.positions == {}
    [trade] = await restarted.repository.closed_trades()
    assert trade.exit_price == Decimal(100)
    assert report.steps(ReconcileStep.EXIT_BOOKED)[0].client_order_id == "qt-x-BTC-crash-9"
    assert not report.steps(ReconcileStep.EXTERNAL_EXIT_BOOKED)


async def test_more_on_the_exchange_than_in_the_ledger_halts_new_entries() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    await account.send("by-hand-3", BTC, OrderSide.BUY, "0.5")

    restarted, report = await run(account)

    assert report.blocks_entries
    assert report.halt_reason is not None
    assert "BTC/USDT:USDT" in report.halt_reason
    assert restarted.trader.ledger.positions[BTC].quantity == Decimal(1)  # left for a person


async def test_a_reduction_no_order_explains_halts_new_entries() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.open(BTC, Side.LONG, "1", "95", "110")
    await account.send("by-hand-4", BTC, OrderSide.SELL, "0.4", reduce_only=True)

    _, report = await run(account)

    assert report.blocks_entries
    assert report.steps(ReconcileStep.MISMATCH)[0].symbol == BTC


async def test_reconciling_twice_changes_nothing_the_second_time() -> None:
    account = await paper_account(bars(BTC, FLAT))
    await account.send("by-hand-5", ETH, OrderSide.BUY, "2")
    restarted, first = await run(account)
    again, second = await run(restarted)
    assert first.actions
    assert second.actions == ()
    assert again.trader.ledger.positions == restarted.trader.ledger.positions


def test_adopted_position_defaults_follow_the_settings() -> None:
    held = ExchangePosition(BTC, Side.LONG, Decimal(2), Decimal(200), 5)
    now = datetime(2025, 3, 1, tzinfo=UTC)
    position = adopted_position(held, None, now, ReconcileSettings(adopt_stop_pct=0.05))
    assert position.stop_price == Decimal("190.00")
    assert position.take_profit_price == Decimal("220.00")
    assert position.leverage == 5
    assert position.opened_at == now
    assert abs(position.atr_pct - 0.05 / 1.5) < 1e-12
