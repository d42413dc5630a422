"""A round trip by hand — a flip and a flip back — whose user-data events were all lost, seen
by the keeper reading the streams' mirror: through the ccxt adapter and BinanceStreams on the
stand-in, in its simulated time (the rig of test_missed_events_on_standin.py).

The side and quantity end as booked; only Binance's entry price moved (keeper/round_trip.py).
Seeds 30019 and 30108 of the campaign with a person trading by hand: neither close was
booked, and the keeper went on with the old entry. It is now found by the check of the
mirror's positions (their entry price is part of it) and booked from the account's trades.
"""

from __future__ import annotations

from decimal import Decimal

from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_missed_events_on_standin import (
    KEEPER,
    keeper_on_streams,
    our_stops,
    ticks_in,
)

from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide, Side


async def test_a_flip_and_flip_back_by_hand_the_stream_did_not_show_is_booked() -> None:
    async with keeper_on_streams() as rig:
        held = (await rig.rest()).positions[BTC]
        assert held.side is Side.LONG
        marks, quantity = rig.server.state.marks, held.quantity
        marks["BTCUSDT"] = there = held.entry_price + 100
        flip = OrderRequest("web_flip_1", BTC, OrderSide.SELL, OrderKind.MARKET, 2 * quantity)
        await rig.unseen(rig.exchange.place_order(flip))
        marks["BTCUSDT"] = back = held.entry_price + 50
        flip_back = OrderRequest("web_flip_2", BTC, OrderSide.BUY, OrderKind.MARKET, 2 * quantity)
        await rig.unseen(rig.exchange.place_order(flip_back))
        now = (await rig.rest()).positions[BTC]
        assert (now.side, now.quantity, now.entry_price) == (Side.LONG, quantity, back)
        mirrored = rig.streams.snapshot(rig.now())
        assert mirrored is not None
        assert mirrored.positions[BTC].entry_price == held.entry_price  # nothing streamed

        with capture_logs() as logs:
            ticks = 0
            while rig.keeper.positions[BTC].entry_price != back:
                assert ticks < ticks_in(KEEPER.rest_check_interval_s), "never seen"
                await rig.tick()
                ticks += 1

        assert ticks <= ticks_in(KEEPER.rest_position_check_s)  # the positions' check found it
        closed = [e for e in logs if e["event"] == "position_closed"]
        assert [(e["side"], e["exit_reason"], Decimal(e["exit_price"])) for e in closed] == [
            (Side.LONG, ExitReason.MANUAL, there),
            (Side.SHORT, ExitReason.MANUAL, back),
        ]
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity) == (Side.LONG, quantity)
        [stop] = our_stops(await rig.rest())  # the old stop replaced by one for the new entry
        assert stop.side is OrderSide.SELL
        assert stop.trigger_price == position.stop_price
