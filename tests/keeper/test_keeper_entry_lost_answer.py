"""An entry whose answer is lost is protected before it is looked up: its stop placed blind
at once, the lookup made by the REST tick after it (keeper/orders.py, keeper/entry.py).

The hand-trading campaign, seed 32939: the lookup made at once, retried against a slow
exchange under the keeper's lock, left the fill bare for three ticks — on Binance, up to the
request timeout of the placement and of each lookup attempt (10 s + 3 × 10 s) before the
blind stop went on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_exchange import ModelExchange
from test_keeper_external_exits import BTC
from test_keeper_properties import PRICES, RULES, T0, Harness, keeper_on, sized
from test_keeper_scenarios import open_stops

from quantum_trader.domain import Order, OrderRequest, OrderStatus, Side
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.storage.memory import InMemoryRepository


@dataclass
class Recording(ModelExchange):
    """The model exchange, noting each order sent and each order looked up, in turn."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    async def place_order(self, request: OrderRequest) -> Order:
        self.calls.append((f"place {request.kind.name}", request.client_order_id))
        return await super().place_order(request)

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        self.calls.append(("look up", client_order_id))
        return await super().fetch_order(symbol, client_order_id)


async def recording() -> tuple[Recording, Harness]:
    exchange = Recording(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    return exchange, Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)


async def test_an_entry_whose_answer_is_lost_has_its_stop_placed_before_it_is_looked_up() -> None:
    """The entry executed, its answer lost: the next request is its stop, then the lookup
    (was: the lookup first, the stop only once the lookup answered). The fill is booked by
    that lookup with the blind stop as its own: one stop, at the plan's price and quantity."""
    exchange, harness = await recording()
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.lose_next = True

    result = await harness.keeper.enter(order, harness.now)

    [(_, entry)] = [c for c in exchange.calls if c[0] == "place MARKET"]
    sent = exchange.calls.index(("place MARKET", entry))
    after = exchange.calls[sent + 1 :]
    assert after[0][0] == "place STOP_MARKET"
    assert purpose_of(after[0][1]) is Purpose.STOP
    assert ("look up", entry) in after
    assert result.position is not None
    assert (result.position.side, result.position.quantity) == (Side.LONG, order.quantity)
    assert open_stops(exchange, BTC) == [(order.quantity, order.stop_price)]
    [booked] = [o for o in await harness.repository.orders() if o.client_order_id == entry]
    assert booked.status is OrderStatus.FILLED
    await harness.tick()
    assert open_stops(exchange, BTC) == [(order.quantity, order.stop_price)]
    kinds = [kind for kind, _ in exchange.calls if kind.startswith("place")]
    assert kinds.count("place STOP_MARKET") == 1
    assert kinds.count("place MARKET") == 1


async def test_an_entry_whose_answer_is_lost_and_that_never_executed_leaves_nothing() -> None:
    """The request lost before it arrived: the blind stop, with nothing to close, rests
    while the entry is unknown and is cancelled once it counts as never accepted
    (`keeper.unknown_order_final_s`, 30 s: the ticks' lookups find nothing); nothing held,
    nothing booked, nothing sent again."""
    exchange, harness = await recording()
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.drop_next = True

    result = await harness.keeper.enter(order, harness.now)
    assert open_stops(exchange, BTC) == [(order.quantity, order.stop_price)]
    for _ in range(8):  # 40 s
        await harness.tick()

    assert result.position is None
    assert result.unknown
    assert BTC not in harness.keeper.positions
    assert BTC not in exchange.held
    assert open_stops(exchange, BTC) == []
    placed = [kind for kind, _ in exchange.calls if kind.startswith("place")]
    assert placed == ["place MARKET", "place STOP_MARKET"]
