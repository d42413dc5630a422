"""The trading core end to end on the bundled market: entries, protection, exits, failures."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from foundation_builders import Rig, build_rig

from quantum_trader.domain import (
    ExitReason,
    GateName,
    OrderKind,
    OrderStatus,
    ReasonCode,
    Side,
    SizedOrder,
)
from quantum_trader.errors import OrderRejected

STEP = timedelta(minutes=5)


async def step(rig: Rig, *, cycle: bool = True) -> None:
    rig.clock.advance(STEP.total_seconds())
    now = rig.clock.now()
    await rig.core.keeper.tick(now)
    if cycle:
        await rig.core.executor.run_cycle(now)


async def until_open(rig: Rig, limit: int = 600) -> None:
    for _ in range(limit):
        await step(rig)
        if rig.core.keeper.positions:
            return
    raise AssertionError("no position opened within the window")


async def test_every_order_is_recorded_as_pending_before_it_is_sent(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    await until_open(rig)
    assert rig.exchange.seen_pending
    assert all(rig.exchange.seen_pending)


async def test_an_entry_is_protected_by_reduce_only_stop_and_take_profit(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    await until_open(rig)
    open_orders = {o.client_order_id: o for o in await rig.exchange.fetch_open_conditional_orders()}
    for position in rig.core.keeper.positions.values():
        stop = open_orders[position.stop_order_id or ""]
        target = open_orders[position.take_profit_order_id or ""]
        assert stop.kind is OrderKind.STOP_MARKET
        assert stop.reduce_only
        assert target.kind is OrderKind.TAKE_PROFIT_MARKET
        assert target.reduce_only
        assert stop.quantity == position.quantity
        assert stop.trigger_price is not None
        assert (position.entry_price - stop.trigger_price) * position.side.sign > 0


async def test_a_stop_that_cannot_be_placed_closes_the_position_at_once(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    rig.exchange.fail_kinds = {OrderKind.STOP_MARKET}
    for _ in range(600):
        await step(rig)
        if await rig.repository.closed_trades():
            break
    trades = await rig.repository.closed_trades()
    assert trades, "an entry should have been tried"
    assert {t.exit_reason for t in trades} == {ExitReason.PROTECTION_FAILED}
    assert rig.core.keeper.positions == {}
    assert (await rig.exchange.fetch_positions()) == []


async def test_a_lost_answer_is_resolved_by_client_order_id_and_never_resent(
    tmp_path: Path,
) -> None:
    rig = await build_rig(tmp_path)
    rig.exchange.lose_next_answer = True
    await until_open(rig)
    entries = [o for o in await rig.repository.orders() if o.client_order_id.startswith("qt-e-")]
    assert len(entries) == 1
    assert entries[0].status is OrderStatus.FILLED
    held = await rig.exchange.fetch_positions()
    assert [p.quantity for p in held] == [entries[0].filled_quantity]


async def test_exits_made_by_the_exchange_are_booked_with_their_reason(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    await until_open(rig)
    symbol = next(iter(rig.core.keeper.positions))
    for _ in range(2000):
        await step(rig, cycle=False)
        if symbol not in rig.core.keeper.positions:
            break
    trades = [t for t in await rig.repository.closed_trades() if t.symbol == symbol]
    assert len(trades) == 1
    assert trades[0].exit_reason in {
        ExitReason.SL_HIT,
        ExitReason.TP_HIT,
        ExitReason.TRAILING_HIT,
        ExitReason.BREAK_EVEN,
        ExitReason.TIME_EXIT,
        ExitReason.PARTIAL_TP,
    }
    leftovers = await rig.exchange.fetch_open_conditional_orders(symbol)
    assert [o for o in leftovers if o.client_order_id.startswith("qt-")] == []


async def test_a_stop_cancelled_by_hand_is_replaced_on_the_next_tick(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    await until_open(rig)
    position = next(iter(rig.core.keeper.positions.values()))
    assert position.stop_order_id is not None
    await rig.exchange.inner.cancel_conditional_order(position.symbol, position.stop_order_id)
    await rig.core.keeper.tick(rig.clock.now())
    stops = [
        o
        for o in await rig.exchange.fetch_open_conditional_orders(position.symbol)
        if o.kind is OrderKind.STOP_MARKET
    ]
    assert len(stops) == 1
    assert stops[0].quantity == rig.core.keeper.positions[position.symbol].quantity


async def test_the_monitor_asks_for_all_prices_in_one_request_per_tick(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    for _ in range(600):
        await step(rig)
        if len(rig.core.keeper.positions) >= 2:
            break
    assert len(rig.core.keeper.positions) >= 2
    before = rig.exchange.calls.get("fetch_mark_prices", 0)
    await rig.core.keeper.tick(rig.clock.now())
    assert rig.exchange.calls["fetch_mark_prices"] == before + 1


async def test_every_verdict_of_a_cycle_is_recorded(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    summaries = []
    for _ in range(48):
        rig.clock.advance(STEP.total_seconds())
        summaries.append(await rig.core.executor.run_cycle(rig.clock.now()))
    recorded = sum(len(s.decisions) for s in summaries)
    counts = await rig.repository.decision_counts()
    assert recorded > 0
    assert sum(counts.values()) == recorded
    gates = {gate for gate, _ in counts}
    assert GateName.ORCHESTRATOR.value in gates


async def test_an_emergency_shutdown_flattens_and_refuses_new_exposure(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path, governor={"max_decline_from_start": 0.00001})
    await until_open(rig)
    await step(rig)  # the entry's fee is a decline from the start: the breaker trips
    assert rig.core.governor.governor.emergency_shutdown_requested
    assert rig.core.keeper.positions == {}
    assert {t.exit_reason for t in await rig.repository.closed_trades()} == {ExitReason.EMERGENCY}
    entry = SizedOrder(
        symbol="BTC/USDT:USDT",
        side=Side.LONG,
        quantity=Decimal("0.01"),
        entry_price=Decimal(100_000),
        stop_price=Decimal(97_000),
        take_profit_price=Decimal(106_000),
        leverage=3,
        notional_usdt=Decimal(1_000),
        margin_usdt=Decimal(333),
        expected_loss_usdt=Decimal(30),
        expected_profit_usdt=Decimal(60),
        costs_usdt=Decimal(0),
        atr_pct=0.02,
        confidence=1.0,
    )
    with pytest.raises(OrderRejected) as refused:
        await rig.core.keeper.enter(entry, rig.clock.now())
    assert refused.value.reason is ReasonCode.REDUCING_ONLY
    entries_before = len([o for o in await rig.repository.orders() if "-e-" in o.client_order_id])
    for _ in range(24):
        await step(rig)
    entries_after = len([o for o in await rig.repository.orders() if "-e-" in o.client_order_id])
    assert entries_after == entries_before
