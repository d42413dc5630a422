"""Our stop filled, then a person opened a long and flipped it, before the keeper's next look,
through the ccxt adapter and BinanceStreams on the stand-in, in its simulated time (the rig
of test_missed_events_on_standin.py).

The restart campaign, seed 40365 (all while the daemon was stopped there): our close booked,
the short adopted "(default)", the person's long — the open and the flip's first half —
never booked. Now an exit of ours that filled for all of the position with something held
after it is replayed from the position as booked (keeper/exit_replay_settle.py
`_filled_for_all`; with the model exchange: tests/keeper/test_keeper_adopted_after_our_exit.py).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from loopback.fixtures import advance
from standin_keeper import BTC_MARKET
from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_missed_events_on_standin import KEEPER, keeper_on_streams, our_stops, ticks_in

from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide, Side


@pytest.mark.parametrize("apart_s", [1, 0], ids=["a second apart", "in one millisecond"])
async def test_an_open_and_flip_by_hand_after_our_stop_filled_books_the_persons_long(
    apart_s: int,
) -> None:
    """Our long (its SELL stop below) stopped out; a person buys the same quantity 1,000
    under our entry and sells twice it at 2,000 under. Booked: ours SL_HIT at the stop's
    fill, the person's long MANUAL between their two trades, the short adopted at the
    flip's price with our stop on it; every commission the stand-in charged once. The
    trades `apart_s` apart: in one millisecond, Binance's trade ids order them (was: our
    fill taken for the last, the person's long closed with no order of ours)."""
    async with keeper_on_streams() as rig:
        server, marks = rig.server, rig.server.state.marks
        before = await rig.rest()
        held, [stop] = before.positions[BTC], our_stops(before)
        quantity = held.quantity
        assert stop.trigger_price is not None
        marks[BTC_MARKET] = stop.trigger_price - 500
        assert BTC not in (await rig.rest()).positions  # the stop fired
        algo_id = server.state.algo_orders[stop.client_order_id]["algoId"]
        stop_fill = server.state.orders[f"algo-{algo_id}"]
        assert stop_fill["status"] == "FILLED"

        await advance(server, apart_s)
        marks[BTC_MARKET] = bought = held.entry_price - 1_000
        buy = OrderRequest("web_open_1", BTC, OrderSide.BUY, OrderKind.MARKET, quantity)
        await rig.exchange.place_order(buy)
        await advance(server, apart_s)
        marks[BTC_MARKET] = sold = held.entry_price - 2_000
        flip = OrderRequest("web_flip_1", BTC, OrderSide.SELL, OrderKind.MARKET, 2 * quantity)
        await rig.exchange.place_order(flip)

        with capture_logs() as logs:
            for _ in range(ticks_in(KEEPER.rest_check_interval_s)):
                await rig.tick()
                position = rig.keeper.positions.get(BTC)
                if position is not None and len(await rig.repository.closed_trades()) == 2:
                    break

        booked = sorted(await rig.repository.closed_trades(), key=lambda t: t.entry_price)
        rows = [(t.side, t.quantity, t.entry_price, t.exit_price, t.exit_reason) for t in booked]
        assert rows == [
            (Side.LONG, quantity, bought, sold, ExitReason.MANUAL),
            (
                Side.LONG,
                quantity,
                held.entry_price,
                Decimal(stop_fill["avgPrice"]),
                ExitReason.SL_HIT,
            ),
        ]
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity, position.entry_price) == (
            Side.SHORT,
            quantity,
            sold,
        )
        [cover] = our_stops(await rig.rest())
        assert (cover.side, cover.quantity) == (OrderSide.BUY, quantity)
        charged = server.state.trades  # our entry, the stop's fill, the open, the flip
        assert len(charged) == 4
        paid = sum(Decimal(t["commission"]) for t in charged)
        assert sum(t.fees_usdt for t in booked) + position.fees_usdt == paid
        [said] = [e for e in logs if e["event"] == "exit_filled_then_opened_by_hand"]
        assert "replayed" in said["detail"]
