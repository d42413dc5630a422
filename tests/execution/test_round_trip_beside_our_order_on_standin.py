"""A person's round trip on a flat symbol that a look could not book at once, through the
ccxt adapter and BinanceStreams on the stand-in (keeper/from_flat_settle.py
`settle_flat_again`): the symbol's flat read is kept until it can (`Plan.flat_kept`).

An order of ours in doubt there: the restart campaign with round trips, seed 40467
(2026-12-05; not reproduced in four reruns) — our old stop's cancel answered 503 and its
lookup 429 as a person opened and closed BTC, never booked. The look after the round trip
left it for later (its trades cannot be told apart from those of an order of ours in
doubt) but moved BTC's flat read on to itself, past it. Both such tests failed before.

A trade Binance does not list yet (`trades_lag_ms`): the close alone unlisted, said and
never booked; neither listed, nothing read for it at all (the trades the stream reported
that the read does not list, by id, now keep the read: `Observation.unlisted_fills`). Both
failed before.
"""

from __future__ import annotations

from decimal import Decimal

from loopback import Fault
from loopback.fixtures import advance, settle
from standin_keeper import ALGO_ORDER, BTC_MARKET, EnteringKeeper, StandinKeeper
from standin_keeper import keeper_on_streams as flat_account
from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_from_flat_on_standin import QUANTITY, by_hand, round_trip
from test_missed_events_on_standin import keeper_on_streams as long_held

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.keeper.settings import KeeperSettings

UNANSWERED = Fault("/fapi/v1/order", method="POST", status=503, body="Service Unavailable")
CANCELLED_UNANSWERED = Fault(
    ALGO_ORDER, method="DELETE", status=503, body="Service Unavailable", processed=True
)


def commissions(rig: StandinKeeper, *client_ids: str) -> Decimal:
    """What the stand-in charged the orders of `client_ids`, one trade each."""
    state = rig.server.state
    ids = {o["orderId"] for o in state.orders.values() if o["clientOrderId"] in client_ids}
    paid = [Decimal(t["commission"]) for t in state.trades if t["orderId"] in ids]
    assert len(paid) == len(client_ids)
    assert all(fee > 0 for fee in paid)
    return sum(paid, Decimal(0))


async def the_short_booked_once(rig: StandinKeeper, opened: Decimal) -> None:
    """The last trade booked is the person's short, sold at `opened` and bought back 200
    lower: MANUAL at its trades, with both commissions; and the next looks book nothing."""
    trades = await rig.repository.closed_trades()
    short = trades[-1]
    assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
    assert (short.entry_price, short.exit_price) == (opened, opened - 200)
    assert short.fees_usdt == commissions(rig, "web_open_1", "web_close_1")
    await rig.tick(3)
    assert len(await rig.repository.closed_trades()) == len(trades)


async def test_a_round_trip_while_our_entry_is_in_doubt_is_booked_once_the_entry_is_void() -> None:
    """A person sold and bought back BTC; our entry's request then met a 503 that it never
    reached: in doubt until `unknown_order_final_s`. Nothing is booked while it is; once
    void, the round trip is, once, at its trades, with both commissions."""
    async with flat_account(EnteringKeeper) as rig:
        opened = await round_trip(rig, OrderSide.SELL, -200)
        rig.server.inject(UNANSWERED)
        await rig.enter()
        assert rig.keeper.book.intents  # in doubt
        await rig.tick()
        assert await rig.repository.closed_trades() == []

        final_s = KeeperSettings().unknown_order_final_s
        for _ in range(int(final_s // 5) + 3):
            await rig.tick()
            if not rig.keeper.book.intents:
                break
        await rig.tick()

        assert not rig.keeper.book.intents
        assert BTC not in rig.keeper.positions
        assert len(await rig.repository.closed_trades()) == 1
        await the_short_booked_once(rig, opened)


async def test_a_round_trip_while_our_old_stops_cancel_is_in_doubt_is_booked() -> None:
    """Our long closed by hand; the keeper's cancels of its stop and take-profit were carried
    out but answered 503. The person then sold and bought back BTC: the look after reads
    the trades but leaves them while the stop's end is unknown to it; the next books the
    round trip, once (was: never)."""
    async with long_held() as rig:
        held = (await rig.rest()).positions[BTC]
        await by_hand(rig, "web_close_0", OrderSide.SELL, held.quantity)
        rig.server.inject(CANCELLED_UNANSWERED)
        await rig.tick()
        [ours] = await rig.repository.closed_trades()
        assert (ours.side, ours.exit_reason) == (Side.LONG, ExitReason.MANUAL)

        opened = await round_trip(rig, OrderSide.SELL, -200)
        await settle(rig.server)
        await rig.tick()
        assert len(await rig.repository.closed_trades()) == 1  # the stop's end unknown yet
        await rig.tick()

        assert len(await rig.repository.closed_trades()) == 2
        await the_short_booked_once(rig, opened)
        assert BTC not in rig.keeper.positions


async def test_a_round_trip_whose_close_is_not_listed_yet_is_booked_at_a_later_look() -> None:
    """Binance lists a trade a while after it (the stand-in: 7 s here). A person sold BTC,
    and bought it back 8 s later, just before a look: the look reads the sell alone, which
    does not take BTC from flat back to flat; the read is kept, and the next look books the
    round trip (was: said, and never booked)."""
    async with flat_account(StandinKeeper) as rig:
        rig.server.state.trades_lag_ms = 7_000
        opened = rig.server.state.mark(BTC_MARKET)
        await by_hand(rig, "web_open_1", OrderSide.SELL, QUANTITY)
        await advance(rig.server, 8)
        rig.server.state.marks[BTC_MARKET] = opened - 200
        await by_hand(rig, "web_close_1", OrderSide.BUY, QUANTITY)
        with capture_logs() as logs:
            await rig.tick()
        assert await rig.repository.closed_trades() == []
        assert [e for e in logs if e["event"] == "round_trips_between_looks"] == []
        await rig.tick()

        assert len(await rig.repository.closed_trades()) == 1
        await the_short_booked_once(rig, opened)


async def test_a_round_trip_none_of_whose_trades_is_listed_yet_is_booked_at_a_later_look() -> None:
    """A person sold and bought back BTC at once, just before a look, and Binance lists
    neither trade yet (the stand-in: 7 s): the look reads no trade since BTC's flat read,
    but the stream reported fills of orders not ours, so the read is kept and the next look
    books the round trip (was: nothing read, the read moved on, never booked)."""
    async with flat_account(StandinKeeper) as rig:
        rig.server.state.trades_lag_ms = 7_000
        opened = await round_trip(rig, OrderSide.SELL, -200)
        await rig.tick()
        assert await rig.repository.closed_trades() == []
        await rig.tick()

        assert len(await rig.repository.closed_trades()) == 1
        await the_short_booked_once(rig, opened)


async def test_a_round_trip_whose_trades_are_never_listed_is_said_once() -> None:
    """The stream reported the person's fills, and Binance lists no trade for 10 minutes: the
    trades are read at each look until `keeper.external_close_mark_after_s` after the fills,
    then it is said once, nothing booked, and the reads stop."""
    async with flat_account(StandinKeeper) as rig:
        rig.server.state.trades_lag_ms = 600_000
        await round_trip(rig, OrderSide.SELL, -200)
        with capture_logs() as logs:
            await rig.tick(round(KeeperSettings().external_close_mark_after_s / 5) + 2)

        assert await rig.repository.closed_trades() == []
        [said] = [e for e in logs if e["event"] == "round_trips_between_looks"]
        assert "never listed" in said["detail"]
        reads = trades_read(rig)
        await rig.tick(3)
        assert trades_read(rig) == reads


def trades_read(rig: StandinKeeper) -> int:
    return sum(path == "/fapi/v1/userTrades" for _, path, _ in rig.server.requests)


async def test_our_stops_fill_keeps_no_read_of_the_trades_after_its_close_is_booked() -> None:
    """Our stop filled; its market order's fill is reported under a client id not ours (the
    stand-in's; Binance does not document which id it carries), and the look books our
    close. The looks after read the trades at most once, not at each look for a minute:
    the trade the stream reported is listed."""
    async with flat_account(EnteringKeeper) as rig:
        await rig.enter()
        await rig.tick()
        rig.server.state.marks[BTC_MARKET] = Decimal(96_500)
        rig.server.sync()  # our stop fires
        await rig.tick(2)
        [ours] = await rig.repository.closed_trades()
        assert ours.exit_reason is ExitReason.SL_HIT
        reads = trades_read(rig)
        await rig.tick(4)
        assert trades_read(rig) <= reads + 1
