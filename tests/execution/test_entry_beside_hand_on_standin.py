"""An entry of ours on a symbol a person has just opened by hand, through the ccxt adapter and
BinanceStreams on the stand-in (the rig of standin_keeper.py, whose keeper reads the clock as
the daemon's does): the user-data stream shows the person's position before the keeper's next
tick, the position is confirmed over REST, and the entry is not sent — Binance would have
netted it against the person's position (one-way mode). The hand-trading campaign's seed 32035
met it with the keeper's books a minute old (keeper/entry_fresh.py; with the model exchange:
tests/keeper/test_keeper_entry_fresh_look.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from loopback.fixtures import settle
from standin_keeper import ALGO_ORDER, BTC_MARKET, EnteringKeeper, keeper_on_streams
from test_exchange_answers import BTC, sized

from quantum_trader.domain import OrderKind, OrderRequest, OrderSide, ReasonCode, Side
from quantum_trader.errors import OrderRejected

ORDER = "/fapi/v1/order"


async def test_an_entry_on_a_symbol_a_person_opened_since_the_last_tick_is_not_sent() -> None:
    async with keeper_on_streams(EnteringKeeper) as rig:
        server = rig.server
        sold = Decimal("0.01")
        person = OrderRequest("web_opened_1", BTC, OrderSide.SELL, OrderKind.MARKET, sold)
        await rig.exchange.place_order(person)
        await settle(server)  # the stream's ORDER_TRADE_UPDATE and ACCOUNT_UPDATE are in
        posted = len([1 for m, path, _ in server.requests if (m, path) == ("POST", ORDER)])

        plan = sized(BTC, Side.LONG, server.state.mark(BTC_MARKET))
        with pytest.raises(OrderRejected) as refused:
            await rig.keeper.enter(plan, rig.now())

        assert refused.value.reason is ReasonCode.POSITION_ALREADY_OPEN
        orders = [p for m, path, p in server.requests if (m, path) == ("POST", ORDER)]
        assert len(orders) == posted  # nothing of ours sent
        assert [p for m, path, p in server.requests if (m, path) == ("POST", ALGO_ORDER)] == []
        await rig.tick()
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity) == (Side.SHORT, sold)
        stops = [o for o in server.state.algo_orders.values() if o["algoStatus"] == "NEW"]
        assert [(o["orderType"], o["side"]) for o in stops] == [("STOP_MARKET", "BUY")]
