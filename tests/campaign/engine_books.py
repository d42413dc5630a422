"""The stand-in's own engine holding a long of ours (0.003 BTC) and one conditional order of
ours beside it: the rig of the campaign checks' tests (test_by_hand_stops.py,
test_by_hand_targets.py), each naming the kind of order and where its trigger lies."""

from __future__ import annotations

from decimal import Decimal

from loopback.engine import Engine
from loopback.markets import DEFAULT_MARKETS
from loopback.state import START_MS, LoopbackState

from quantum_trader.clock import utc_from_ms
from quantum_trader.keeper.ids import ClientOrderIds, Purpose

MARKET, SYMBOL = "BTCUSDT", "BTC/USDT:USDT"
IDS = ClientOrderIds()


def our_id(purpose: Purpose, at_ms: int) -> str:
    return IDS.next(purpose, SYMBOL, utc_from_ms(at_ms))


class OurLong:
    """The engine with our long entered at START_MS and our `order_type` (of `purpose`) at
    `trigger_factor` × the mark placed 100 ms later (`first`)."""

    order_type: str
    purpose: Purpose
    trigger_factor: Decimal

    def __init__(self) -> None:
        market = next(m for m in DEFAULT_MARKETS if m.market_id == MARKET)
        self.state = LoopbackState(markets={MARKET: market})
        self.engine = Engine(self.state)
        self.trigger = str(Decimal(market.mark_price) * self.trigger_factor)
        self.at(START_MS)
        entry = {"symbol": MARKET, "side": "BUY", "type": "MARKET", "quantity": "0.003",
                 "newClientOrderId": our_id(Purpose.ENTRY, START_MS)}  # fmt: skip
        self.engine.place_order(entry)
        self.first = self.place(START_MS + 100)

    def at(self, ms: int) -> None:
        self.state.now_ms = ms

    def place(self, ms: int, quantity: str = "0.003") -> str:
        """Another conditional order of ours, of the rig's kind, at `ms`; its client id."""
        self.at(ms)
        client_id = our_id(self.purpose, ms)
        self.engine.place_algo_order(
            {"symbol": MARKET, "side": "SELL", "algoType": "CONDITIONAL", "reduceOnly": "true",
             "type": self.order_type, "triggerPrice": self.trigger, "quantity": quantity,
             "clientAlgoId": client_id}
        )  # fmt: skip
        return client_id

    def cancel(self, client_id: str, ms: int) -> None:
        self.at(ms)
        self.engine.cancel_algo_order({"symbol": MARKET, "clientAlgoId": client_id})

    def sell(self, quantity: str, ms: int, client_id: str = "web_1") -> None:
        """A person's reduce-only sale."""
        self.at(ms)
        self.engine.place_order({"symbol": MARKET, "side": "SELL", "type": "MARKET",
                                 "quantity": quantity, "newClientOrderId": client_id,
                                 "reduceOnly": "true"})  # fmt: skip
