"""Our stop fires: its market order carries either a client id not ours (the stand-in's
default, `algo-<algoId>`) or the stop's own clientAlgoId (`Engine.child_carries_algo_id`, as
NautilusTrader saw on Binance: nautilus_trader#3287, #3664). Binance does not document which.
Either way the close is booked SL_HIT at its fill, with its fee, through the ccxt adapter on
the stand-in: REST only and with the streams.

Was (REST only, the child under the stop's id): the lookup by client id asked GET
/fapi/v1/order first, found the market order and returned it as a plain MARKET order, so the
close was booked MANUAL (an outside reviewer's probe, 2026-12-06). A stop's lookup now asks
the Algo Order API first: GET algoOrder and its actual order, weight 2 (was 3: a GET order
that missed first, in the default case).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from loopback import LoopbackBinance
from standin_keeper import BTC_MARKET
from test_missed_events_on_standin import keeper_on_streams
from test_rest_only_orders_on_standin import BTC, keeper_rest_only
from test_stop_check_on_standin import our_stops

from quantum_trader.domain import ClosedTrade, ExitReason, Order
from quantum_trader.storage.memory import InMemoryRepository

CARRIES = pytest.mark.parametrize(
    "child_carries_algo_id", [False, True], ids=["child-id-not-ours", "child-id-the-stops"]
)
FIRED_AT = Decimal(500)  # below the stop's trigger: the stand-in fills at the mark


def commissions(server: LoopbackBinance) -> Decimal:
    """Every commission the stand-in charged on BTC (the entry's and the stop's)."""
    rows = [t for t in server.state.trades if t["symbol"] == BTC_MARKET]
    assert all(t["commissionAsset"] == "USDT" for t in rows)
    return sum((Decimal(t["commission"]) for t in rows), Decimal(0))


def stop_order_lookups(server: LoopbackBinance, stop: Order) -> list[str]:
    """The routes the stop's id was looked up on: never GET /fapi/v1/order by it."""
    return [
        path
        for method, path, params in server.requests
        if method == "GET"
        and stop.client_order_id in (params.get("origClientOrderId"), params.get("clientAlgoId"))
    ]


async def booked_at_its_fill(
    repository: InMemoryRepository, server: LoopbackBinance, stop: Order, fired: Decimal
) -> None:
    trades: Sequence[ClosedTrade] = await repository.closed_trades()
    [trade] = trades
    assert trade.exit_reason is ExitReason.SL_HIT
    assert (trade.quantity, trade.exit_price) == (stop.quantity, fired)
    assert trade.fees_usdt == commissions(server)
    assert set(stop_order_lookups(server, stop)) <= {"/fapi/v1/algoOrder"}


RIGS = pytest.mark.parametrize("streams", [False, True], ids=["rest-only", "with-the-streams"])


@RIGS
@CARRIES
async def test_a_stop_that_fires_is_booked_at_its_fill(
    streams: bool, child_carries_algo_id: bool
) -> None:
    rigged = keeper_on_streams() if streams else keeper_rest_only([BTC])
    async with rigged as rig:
        rig.server.engine.child_carries_algo_id = child_carries_algo_id
        [stop] = our_stops(await rig.rest(), BTC)
        assert stop.trigger_price is not None
        fired = stop.trigger_price - FIRED_AT
        rig.server.state.marks[BTC_MARKET] = fired
        for _ in range(6):
            await rig.tick()
            if await rig.repository.closed_trades():
                break

        await booked_at_its_fill(rig.repository, rig.server, stop, fired)
        assert BTC not in rig.keeper.positions
        if child_carries_algo_id and not streams:  # the stand-in did as asked
            assert stop.client_order_id in rig.server.state.orders
