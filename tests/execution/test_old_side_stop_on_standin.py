"""Our old side's stop, filled after a person flipped the position and flipped it back, through
the ccxt adapter and BinanceStreams on the stand-in, in its simulated time (the rig of
test_missed_events_on_standin.py).

The hand-trading campaign's seed 31013 (2026-12-04): the keeper adopted the side a flip by
hand opened while our old side's stop still rested (its cancel, sent once the new stop was
placed, met a 503); the person flipped back and that stop, reduce-only, closed the position
they had just opened. It was booked against the adopted position, at the stop's price and
reason; the person's close of it and the position our stop closed were missing, and a fee
with them. Now replayed from the account's trades with our stop's fill among them
(keeper/exit_replay_settle.py `_other_side_exits`; with the model exchange:
tests/keeper/test_keeper_old_side_stop.py).
"""

from __future__ import annotations

from decimal import Decimal

from loopback import Fault
from standin_keeper import ALGO_ORDER, BTC_MARKET
from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_missed_events_on_standin import KEEPER, keeper_on_streams, our_stops, ticks_in

from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide, Side

UNAVAILABLE = Fault(ALGO_ORDER, method="DELETE", status=503, body="Service Unavailable")


async def test_our_old_stop_filled_after_a_flip_and_flip_back_closes_the_long_the_person_opened(
) -> None:  # fmt: skip
    """Our long at 100,000 (its SELL stop at 97,000) flipped by hand at 101,000 and adopted
    as a short, the old stop's cancel answered 503; bought back by hand at 99,000, then the
    mark at 96,500 fires the old stop. Booked: our long MANUAL at 101,000, the adopted short
    MANUAL at 99,000, the person's long SL_HIT at the stop's fill, every commission the
    stand-in charged once; nothing held, nothing of ours working (was: the short closed
    SL_HIT at the stop's fill, the long and the buy's fee missing)."""
    async with keeper_on_streams() as rig:
        server, marks = rig.server, rig.server.state.marks
        before = await rig.rest()
        held, [old_stop] = before.positions[BTC], our_stops(before)
        assert (held.side, old_stop.side) == (Side.LONG, OrderSide.SELL)
        quantity = held.quantity

        marks[BTC_MARKET] = there = held.entry_price + 1_000
        flip = OrderRequest("web_flip_1", BTC, OrderSide.SELL, OrderKind.MARKET, 2 * quantity)
        await rig.exchange.place_order(flip)
        server.inject(UNAVAILABLE)  # the next cancel (31013: a 503)
        await rig.tick()
        assert rig.keeper.positions[BTC].side is Side.SHORT
        assert [(m, p) for _, m, p in server.faulted] == [("DELETE", ALGO_ORDER)]
        cancels = [p for m, path, p in server.requests if (m, path) == ("DELETE", ALGO_ORDER)]
        assert [p["clientAlgoId"] for p in cancels] == [old_stop.client_order_id]
        resting = [o.client_order_id for o in our_stops(await rig.rest())]
        assert old_stop.client_order_id in resting  # its cancel failed: it still rests

        marks[BTC_MARKET] = back = held.entry_price - 1_000
        flip_back = OrderRequest("web_flip_2", BTC, OrderSide.BUY, OrderKind.MARKET, 2 * quantity)
        await rig.exchange.place_order(flip_back)
        assert old_stop.trigger_price is not None
        marks[BTC_MARKET] = old_stop.trigger_price - 500
        assert BTC not in (await rig.rest()).positions  # the old stop fired: the long closed
        algo_id = server.state.algo_orders[old_stop.client_order_id]["algoId"]
        stop_fill = server.state.orders[f"algo-{algo_id}"]  # the market order it sent
        assert (stop_fill["side"], stop_fill["status"]) == ("SELL", "FILLED")

        with capture_logs() as logs:
            for _ in range(ticks_in(KEEPER.rest_check_interval_s)):
                await rig.tick()
                if rig.keeper.positions == {} and our_stops(await rig.rest()) == []:
                    break

        assert rig.keeper.positions == {}
        working = [o for o in server.state.algo_orders.values() if o["algoStatus"] == "NEW"]
        assert working == []  # the adopted short's stop and our long's take-profit cancelled
        booked = sorted(await rig.repository.closed_trades(), key=lambda t: t.entry_price)
        rows = [(t.side, t.quantity, t.entry_price, t.exit_price, t.exit_reason) for t in booked]
        assert rows == [
            (Side.LONG, quantity, back, Decimal(stop_fill["avgPrice"]), ExitReason.SL_HIT),
            (Side.LONG, quantity, held.entry_price, there, ExitReason.MANUAL),
            (Side.SHORT, quantity, there, back, ExitReason.MANUAL),
        ]
        charged = server.state.trades  # our entry, the two flips, the old stop's fill
        assert len(charged) == 4
        paid = sum(Decimal(t["commission"]) for t in charged)
        assert sum(t.fees_usdt for t in booked) == paid
        [said] = [e for e in logs if e["event"] == "exit_filled_other_side"]
        assert old_stop.client_order_id in said["detail"]
        assert "replayed" in said["detail"]
