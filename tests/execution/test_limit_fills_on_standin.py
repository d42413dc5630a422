"""A person's round trip made with LIMIT orders between two looks, through the ccxt adapter
and BinanceStreams on the stand-in (`Engine.fill_limit_by_hand`: each order met at once, as
the maker), with Binance listing the trades a while after them (`trades_lag_ms`).

The look after reads no trade since BTC's flat read; the stream reported the fills, so the
read is kept until they are listed, and a later look books the round trip, at its trades,
with both (maker) commissions. Was: the parser dropped every ORDER_TRADE_UPDATE of an order
not MARKET, so the mirror knew of no unlisted trade, the read moved on and the round trip was
never booked (an outside reviewer, 2026-12-06). Failed before.
"""

from __future__ import annotations

from decimal import Decimal

from loopback.fixtures import settle
from standin_keeper import BTC_MARKET, StandinKeeper, keeper_on_streams
from test_from_flat_on_standin import QUANTITY
from test_round_trip_beside_our_order_on_standin import commissions

from quantum_trader.domain import ExitReason, Side

LAG_MS = 7_000  # more than a tick (5 s), less than two


async def limit_round_trip(rig: StandinKeeper, move: int) -> Decimal:
    """BTC sold by a person's LIMIT order at the mark, bought back by another `move` away:
    the opening price."""
    state, engine = rig.server.state, rig.server.engine
    opened = state.mark(BTC_MARKET)
    engine.fill_limit_by_hand(BTC_MARKET, "SELL", QUANTITY, "web_limit_open")
    await settle(rig.server)  # the streams learn the leverage of the position it opened
    state.marks[BTC_MARKET] = opened + move
    engine.fill_limit_by_hand(BTC_MARKET, "BUY", QUANTITY, "web_limit_close")
    await settle(rig.server)
    return opened


async def test_a_round_trip_of_limit_orders_not_listed_yet_is_booked_at_a_later_look() -> None:
    async with keeper_on_streams(StandinKeeper) as rig:
        rig.server.state.trades_lag_ms = LAG_MS
        opened = await limit_round_trip(rig, -200)
        await rig.tick()  # nothing listed yet: kept
        assert await rig.repository.closed_trades() == []
        await rig.tick()

        [short] = await rig.repository.closed_trades()
        assert (short.side, short.exit_reason) == (Side.SHORT, ExitReason.MANUAL)
        assert (short.quantity, short.entry_price, short.exit_price) == (
            QUANTITY,
            opened,
            opened - 200,
        )
        assert short.fees_usdt == commissions(rig, "web_limit_open", "web_limit_close")
        assert all(t["maker"] for t in rig.server.state.trades)
        await rig.tick(3)
        assert len(await rig.repository.closed_trades()) == 1
        assert BTC_MARKET not in {o["symbol"] for o in rig.server.state.algo_orders.values()}
