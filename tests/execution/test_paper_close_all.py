"""Close-all stops (Binance's closePosition) on the paper exchange, as Binance takes them: no
quantity and so no lot filter, one per symbol and side (-4130), whatever is held closed when one
fires, and kept across a restart of the paper account."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from paper_builders import BTC, at, conditional, flat_rows, make_bars, make_exchange, market

from quantum_trader.clock import ManualClock
from quantum_trader.domain import (
    ZERO,
    Bars,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    ReasonCode,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.record import replace

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def close_all(client_order_id: str, trigger: str) -> OrderRequest:
    stop = conditional(client_order_id, OrderKind.STOP_MARKET, SELL, "0", trigger)
    return replace(stop, close_position=True)


def falling_bars() -> dict[str, Bars]:
    """BTC at 20,000 for an hour, then 19,000."""
    return {BTC: make_bars(BTC, flat_rows(20000.0, 12) + flat_rows(19000.0, 12))}


async def test_a_close_all_stop_below_the_minimum_closes_whatever_is_held() -> None:
    clock = ManualClock(at(1))
    paper = make_exchange(clock, falling_bars())
    await paper.place_order(market("e1", BUY, "0.005"))
    await paper.place_order(market("by-hand", SELL, "0.004", reduce_only=True))  # 0.001 left
    with pytest.raises(OrderRejected, match="below minimum"):  # a quantity stop: refused
        await paper.place_order(conditional("s0", OrderKind.STOP_MARKET, SELL, "0.001", "19500"))
    stop = await paper.place_order(close_all("s1", "19500"))
    assert stop.close_position
    assert stop.quantity == ZERO
    with pytest.raises(OrderRejected, match="-4130"):
        await paper.place_order(close_all("s2", "19400"))

    clock.set(at(90))
    assert await paper.fetch_positions() == []
    fired = await paper.fetch_order(BTC, "s1")
    assert fired is not None
    assert fired.status is OrderStatus.FILLED
    assert fired.filled_quantity == Decimal("0.001")


async def test_a_close_all_stop_is_kept_across_a_restart(tmp_path: Path) -> None:
    clock, path = ManualClock(at(1)), tmp_path / "paper.json"
    paper = make_exchange(clock, falling_bars(), state_path=path)
    await paper.place_order(market("e1", BUY, "0.005"))
    await paper.place_order(close_all("s1", "19500"))

    reopened = make_exchange(clock, falling_bars(), state_path=path)
    [listed] = await reopened.fetch_open_conditional_orders(BTC)
    assert listed.close_position
    clock.set(at(90))
    assert await reopened.fetch_positions() == []


async def test_a_close_all_stop_needs_a_position_and_ends_with_it() -> None:
    # Binance ties a close-all order to the open position (time in force GTE_GTC): -4509
    # without one, and it ends when the position does (else it would close a later one).
    clock = ManualClock(at(1))
    paper = make_exchange(clock, falling_bars())
    with pytest.raises(OrderRejected, match="-4509") as refused:
        await paper.place_order(close_all("s0", "19500"))
    assert refused.value.reason is ReasonCode.NO_POSITION_FOR_CLOSE_ALL
    await paper.place_order(market("e1", BUY, "0.005"))
    await paper.place_order(close_all("s1", "19500"))
    await paper.place_order(market("by-hand", SELL, "0.005", reduce_only=True))

    assert await paper.fetch_open_conditional_orders(BTC) == []
    ended = await paper.fetch_order(BTC, "s1")
    assert ended is not None
    assert ended.status is OrderStatus.EXPIRED
    await paper.place_order(market("e2", BUY, "0.005"))  # a new long later
    clock.set(at(90))
    assert len(await paper.fetch_positions()) == 1  # not closed by the old order
