"""The streams' mirror lists a stop of ours firing (TRIGGERING, TRIGGERED) until it ends; GET
openAlgoOrders may not (Binance does not say). Such an order that only the mirror lists is no
difference between them (`mirror_difference`): no reseed from a read that leaves it out, so
the keeper does not take the stop executing for a missing one. Any other order only one side
lists still is."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from position_builders import NOW, position, protected, stop_order

from quantum_trader.domain import ExchangePosition, ExchangeSnapshot, Order, SnapshotSource
from quantum_trader.keeper.recheck import mirror_difference

HELD = protected(position(), "qt-s-BTC-abc-1")
RESTING = stop_order(HELD, "qt-s-BTC-abc-1")
FIRING = replace(RESTING, triggered_at=NOW - timedelta(seconds=1))
POSITIONS = {
    HELD.symbol: ExchangePosition(HELD.symbol, HELD.side, HELD.quantity, HELD.entry_price, 5)
}


def mirror(*orders: Order) -> ExchangeSnapshot:
    return ExchangeSnapshot(NOW, SnapshotSource.STREAM, POSITIONS, orders)


def rest(*orders: Order) -> ExchangeSnapshot:
    return ExchangeSnapshot(NOW, SnapshotSource.REST, POSITIONS, orders)


def test_a_firing_stop_rest_leaves_out_is_no_difference() -> None:
    assert mirror_difference(mirror(FIRING), rest()) == ""
    assert mirror_difference(mirror(FIRING), rest(FIRING)) == ""


def test_a_resting_stop_only_one_side_lists_still_differs() -> None:
    cid = RESTING.client_order_id
    assert mirror_difference(mirror(RESTING), rest()) == (
        f"open orders stream-only ['{cid}'] rest-only []"
    )
    assert mirror_difference(mirror(), rest(FIRING)) == (
        f"open orders stream-only [] rest-only ['{cid}']"
    )
