"""A position's stop and take-profit left on the exchange after it closed — their release's
cancels not sent, an action before them on the symbol having failed — block an entry on the
symbol until they are released (`Book.blocked`).

Found by the campaign with a person trading by hand, seed 30764 (2026-12-04): a short closed
by hand; the tick that saw it sent the cancel of its stop, whose answer was lost (processed,
the client timed out: the symbol's actions end, keeper/carry_actions.py), so its
take-profit's cancel never went out. An entry of ours on the symbol followed before the next
release, and from then a position was held there: `release_orphans` cancels only on symbols
with no position, so the old position's take-profit stayed four minutes beside the new one's —
two take-profits of ours on one symbol, the old one ready to reduce a later position on its
side at a price no plan of ours set."""

from __future__ import annotations

from decimal import Decimal

from test_keeper_properties import Harness
from test_keeper_scenarios import ours
from test_keeper_target_again import BTC, entered, open_targets

from quantum_trader.domain import OrderKind, OrderSide, OrderStatus, Side
from quantum_trader.keeper.ids import Purpose


def open_of_ours(harness: Harness) -> list[tuple[str, OrderKind]]:
    return [
        (o.client_order_id, o.kind)
        for o in harness.exchange.orders.values()
        if o.symbol == BTC and o.kind.is_conditional and o.status is OrderStatus.OPEN
    ]


async def test_an_entry_waits_until_a_closed_positions_orders_are_released() -> None:
    harness, _ = await entered()
    harness.exchange.by_hand(BTC, OrderSide.SELL, Decimal("3.000"))  # closed by hand
    harness.exchange.cancels_malformed = 1  # the release's first cancel fails: no second
    await harness.tick()
    assert BTC not in harness.keeper.positions
    left = open_of_ours(harness)  # the stop (its cancel failed) and the take-profit
    assert sorted(kind for _, kind in left) == [OrderKind.STOP_MARKET, OrderKind.TAKE_PROFIT_MARKET]

    assert BTC in harness.keeper.view().blocked
    entries = len(ours(harness.exchange, Purpose.ENTRY))
    await harness.enter(BTC, Side.LONG)
    assert len(ours(harness.exchange, Purpose.ENTRY)) == entries  # not beside it

    await harness.tick()  # released
    assert open_of_ours(harness) == []
    assert BTC not in harness.keeper.view().blocked
    await harness.enter(BTC, Side.LONG)
    assert len(ours(harness.exchange, Purpose.ENTRY)) == entries + 1
    [_] = open_targets(harness)  # the new position's, alone
