"""A position on the other side of an entry of ours in flight is not that entry's; nor one on
its side while the entry's lookup finds nothing.

The hand-trading campaign, seed 32932: our long's entry went unanswered (a 503; it never
reached the exchange), and a person opened a short on the symbol meanwhile. The look took
the short for our entry's position — booked with the long's plan, its target "passed" — and
exited it at market at once: the person's short closed by us, booked FILL_OFF_PLAN, and
booked again MANUAL at the mark when the mirror caught up. A buy does not open a short: the
short is adopted as a person's (default stop), our entry settled on its own.

The restart campaign, seed 40947: the same on the entry's own side. Our short's entry was
answered 503 and never executed; a person sold by hand just after, and the look booked that
short as our entry's fill ("kept as filled" at 1.6 times the plan), the person's fee in no
booking.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs
from test_keeper_properties import SYMBOLS, Harness, sized
from test_keeper_round_trip import stops_of_ours
from test_keeper_scenarios import ours

from quantum_trader.domain import OrderKind, OrderRequest, OrderSide, Side
from quantum_trader.keeper.ids import Purpose

BTC = SYMBOLS[0]


async def test_a_short_opened_by_hand_while_our_long_entry_is_unanswered_is_adopted() -> None:
    """While our entry is unsettled the short is only covered by a stop (it may be what a
    person made of our fill: keeper/unseen_entry.py); once the entry is settled as never
    accepted, the short is adopted as a person's, with that stop."""
    harness = await Harness.start()
    exchange, keeper = harness.exchange, harness.keeper
    await keeper.tick(harness.now, rest=True)
    exchange.drop_next = True  # our long's entry never reaches the exchange
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    exchange.by_hand(BTC, OrderSide.SELL, Decimal(2))
    with capture_logs() as waiting:
        await keeper.tick(harness.now, rest=True)
    assert ("adoption_awaits_entry", BTC) in events_of(waiting)
    assert BTC not in keeper.positions
    stops = stops_of_ours(harness)  # our long's blind stop, and the short's
    [cover] = [c for c in stops if exchange.orders[c].side is OrderSide.BUY]

    with capture_logs() as logs:
        for _ in range(8):  # past `unknown_order_final_s` (30 s)
            await harness.tick()

    events = events_of(logs)
    assert ("position_adopted", BTC) in events
    assert ("position_opened", BTC) not in events
    position = keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.SHORT, Decimal(2))
    assert not position.entry_order_id.startswith("qt-")
    assert position.stop_order_id == cover
    assert position.stop_price > exchange.marks[BTC]  # a short's stop, above
    assert ours(exchange, Purpose.EXIT) == []  # the person's short left to the person
    assert exchange.held[BTC][:2] == (Side.SHORT, Decimal(2))


async def test_a_long_opened_by_hand_while_our_long_entry_is_not_found_is_a_persons() -> None:
    """The lookups follow the positions' read, so a position read before a lookup that
    finds nothing is not our entry's fill: covered by a stop while the entry may still be
    accepted, then adopted as a person's, the fee of the person's trade in it."""
    harness = await Harness.start()
    exchange, keeper = harness.exchange, harness.keeper
    await keeper.tick(harness.now, rest=True)
    exchange.drop_next = True  # our long's entry never reaches the exchange
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    await exchange.place_order(OrderRequest("web_1", BTC, OrderSide.BUY, OrderKind.MARKET, THREE))
    [(trade, *_)] = [f for f in exchange.fills.values() if f[0].client_order_id == "web_1"]
    with capture_logs() as waiting:
        await keeper.tick(harness.now, rest=True)
    assert ("adoption_awaits_entry", BTC) in events_of(waiting)
    assert BTC not in keeper.positions
    [cover] = [c for c in stops_of_ours(harness) if exchange.orders[c].quantity == THREE]

    with capture_logs() as logs:
        for _ in range(8):  # past `unknown_order_final_s` (30 s)
            await harness.tick()

    events = events_of(logs)
    assert ("position_adopted", BTC) in events
    assert ("position_opened", BTC) not in events
    assert ("entry_risk_above_plan", BTC) not in events
    position = keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.LONG, THREE)
    assert not position.entry_order_id.startswith("qt-")
    assert position.fees_usdt == trade.fee_usdt  # the person's, booked
    assert position.stop_order_id == cover
    assert ours(exchange, Purpose.EXIT) == []
    assert exchange.held[BTC][:2] == (Side.LONG, THREE)


THREE = Decimal(3)


def events_of(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["event"], e.get("symbol")) for e in logs]
