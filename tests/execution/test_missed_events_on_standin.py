"""A change made by hand on Binance whose user-data events were lost, seen by the keeper
reading the streams' mirror: through the ccxt adapter and BinanceStreams on the stand-in, in
its simulated time, the keeper ticked every 5 s as the monitor loop does.

Binance's user-data events carry no sequence number: a dropped event (or a connection that
stalled without closing) cannot be told from the stream itself, only by reading REST. The
fault campaign with a person trading by hand found a flip (LONG 3 → SHORT 3, no order of ours
involved) whose events were dropped left the new side without a stop of ours until the next
full REST check (`keeper.rest_check_interval_s`, 60 s). The keeper now checks the mirror's
positions alone every `keeper.rest_position_check_s`, so such a
position is protected within that many seconds' worth of ticks.

A stop of ours cancelled by hand whose events were dropped: test_stop_check_on_standin.py
(found with the positions while 4 symbols at most are held, else by the full check).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager

from loopback.fixtures import settle
from standin_keeper import TICK_S, StandinKeeper
from standin_keeper import keeper_on_streams as empty_account
from structlog.testing import capture_logs
from test_exchange_answers import BTC, sized

from quantum_trader.domain import (
    ExchangeSnapshot,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    Side,
)
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.settings import KeeperSettings

KEEPER = KeeperSettings()
DROP_ALL = 1_000_000  # the stand-in's count of user events to drop: every one until reset


class Rig(StandinKeeper):
    async def rest(self) -> ExchangeSnapshot:
        return await self.exchange.fetch_snapshot(self.now())

    async def unseen(self, by_hand: Awaitable[object]) -> None:
        """Await `by_hand` (what a person does on Binance's site), every user-data event it
        makes dropped by the stand-in: never reaching the mirror."""
        faults = self.server.streams.faults
        faults.drop = DROP_ALL
        try:
            await by_hand
            await settle(self.server)
        finally:
            faults.drop = 0


@asynccontextmanager
async def keeper_on_streams(symbols: Sequence[str] = (BTC,)) -> AsyncIterator[Rig]:
    """A keeper reading the streams' mirror (usable, seeded) of a stand-in on a manual clock,
    holding a LONG of each of `symbols` it entered and protected, echoed by the stream and
    checked by REST."""
    async with empty_account(Rig) as rig:
        keeper, server = rig.keeper, rig.server
        for symbol in symbols:
            mark = server.state.mark(symbol.split(":")[0].replace("/", ""))
            await keeper.enter(sized(symbol, Side.LONG, mark), rig.now())
            await settle(server)
        await rig.tick()  # the stream echoed the entries and their stops: read from the mirror
        assert keeper.book.unechoed == {}
        assert rig.streams.snapshot(rig.now()) is not None
        assert len(our_stops(await rig.rest())) == len(symbols)
        yield rig


def our_stops(snapshot: ExchangeSnapshot) -> list[Order]:
    return [
        o
        for o in snapshot.open_conditional_orders
        if is_ours(o.client_order_id) and o.kind is OrderKind.STOP_MARKET and o.reduce_only
    ]


def covered(snapshot: ExchangeSnapshot) -> bool:
    """Whether what the exchange holds on BTC has a reduce-only stop of ours on the side that
    closes it, for all of it."""
    held = snapshot.positions.get(BTC)
    if held is None:
        return True
    return any(
        o.side is held.side.exit_order_side and o.quantity >= held.quantity
        for o in snapshot.open_conditional_orders
        if is_ours(o.client_order_id) and o.kind is OrderKind.STOP_MARKET and o.reduce_only
    )


async def ticks_until_covered(rig: Rig, max_ticks: int) -> int:
    """The keeper's ticks until the exchange's position on BTC is covered by a stop of ours;
    fails after `max_ticks`."""
    for ticks in range(1, max_ticks + 1):
        await rig.tick()
        if covered(await rig.rest()):
            return ticks
    raise AssertionError(f"BTC held without a stop of ours after {max_ticks} keeper ticks")


def ticks_in(seconds: float) -> int:
    return math.ceil(seconds / TICK_S)


async def test_a_flip_by_hand_the_stream_did_not_show_is_protected_within_the_position_check(
) -> None:  # fmt: skip
    """LONG → SHORT of the same size in one sell by a person, both its events dropped: the
    new side has a reduce-only stop of ours within `rest_position_check_s` of keeper ticks
    (4 at 20 s; it was up to `rest_check_interval_s`, 12: 11 here), found as a mirror
    difference."""
    assert KEEPER.rest_position_check_s < KEEPER.rest_check_interval_s
    async with keeper_on_streams() as rig:
        held = (await rig.rest()).positions[BTC]
        assert held.side is Side.LONG
        flip = OrderRequest("web_flip", BTC, OrderSide.SELL, OrderKind.MARKET, 2 * held.quantity)
        await rig.unseen(rig.exchange.place_order(flip))
        flipped = await rig.rest()
        assert (flipped.positions[BTC].side, flipped.positions[BTC].quantity) == (
            Side.SHORT,
            held.quantity,
        )
        mirrored = rig.streams.snapshot(rig.now())
        assert mirrored is not None
        assert mirrored.positions[BTC].side is Side.LONG  # the stream did not show the flip
        assert not covered(flipped)

        with capture_logs() as logs:
            ticks = await ticks_until_covered(rig, ticks_in(KEEPER.rest_check_interval_s))

        assert ticks <= ticks_in(KEEPER.rest_position_check_s)
        assert "stream_mirror_differs" in [e["event"] for e in logs]
        assert rig.keeper.positions[BTC].side is Side.SHORT
        after = await rig.rest()
        [stop] = our_stops(after)  # the long's stop was cancelled, one for the short
        assert stop.side is OrderSide.BUY
