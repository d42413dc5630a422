"""Algo orders answered without `reduceOnly`, through the keeper and the ccxt adapter on the
stand-in (`algo_answer_omits`, `streams.algo_event_omits`): REST only, and reading the streams'
mirror.

Binance documents reduceOnly in every algo order answer (POST/GET /fapi/v1/algoOrder, GET
/fapi/v1/openAlgoOrders) and as "R" in ALGO_UPDATE, but an answer without it says nothing
either way. Read as false, every stop of ours looked like one that could open a position: each
tick placed a new stop and cancelled the old one — a moment with the new order not yet
confirmed, and request weight, every 5 s (an outside-style probe, 2026-12-04). Now a field left
out is not stated: an order of ours is read as this program sent it (keeper/ids.py `as_sent`:
every conditional order of ours is reduce-only), a closePosition one as reduce-only.
"""

from __future__ import annotations

from datetime import timedelta

from loopback import LoopbackBinance
from loopback.fixtures import connect
from standin_keeper import keeper_on_streams
from test_exchange_answers import BTC, T0, keeper_on, sized
from test_late_fill_on_standin import MARKET, PLANNED, Rig

from quantum_trader.domain import Side

ALGO_ORDER = "/fapi/v1/algoOrder"


def sent(server: LoopbackBinance, method: str) -> list[dict[str, str]]:
    return [p for m, path, p in server.requests if (m, path) == (method, ALGO_ORDER)]


def open_orders(server: LoopbackBinance) -> list[tuple[str, str, str, str]]:
    return sorted(
        (o["orderType"], o["side"], o["quantity"], o["triggerPrice"])
        for o in server.state.algo_orders.values()
        if o["algoStatus"] == "NEW"
    )


async def test_stops_answered_without_reduce_only_are_kept_rest_only() -> None:
    async with LoopbackBinance() as server:
        server.algo_answer_omits = frozenset({"reduceOnly"})
        exchange = connect(server)
        try:
            keeper = await keeper_on(exchange)
            await keeper.tick(T0, rest=True)
            await keeper.enter(sized(BTC, Side.LONG, server.state.mark(MARKET)), T0)
            for tick in range(1, 5):
                await keeper.tick(T0 + timedelta(seconds=5 * tick))

            assert [p["type"] for p in sent(server, "POST")] == [
                "STOP_MARKET",
                "TAKE_PROFIT_MARKET",
            ]
            assert sent(server, "DELETE") == []
            assert open_orders(server) == PLANNED
            stop_id = sent(server, "POST")[0]["clientAlgoId"]
            assert keeper.view().positions[BTC].stop_order_id == stop_id
        finally:
            await exchange.close()


async def test_stops_answered_and_streamed_without_reduce_only_are_kept() -> None:
    def omit(server: LoopbackBinance) -> None:
        server.algo_answer_omits = frozenset({"reduceOnly"})
        server.streams.algo_event_omits = frozenset({"R"})

    async with keeper_on_streams(Rig, omit) as rig:
        await rig.enter()
        await rig.tick(13)  # past a full REST check (60 s), which reseeds nothing: no difference

        assert (len(rig.sent("STOP_MARKET")), len(rig.sent("TAKE_PROFIT_MARKET"))) == (1, 1)
        assert sent(rig.server, "DELETE") == []
        assert rig.open_orders() == PLANNED
