"""A take-profit that is missing is placed again: through the ccxt adapter and BinanceStreams
on the stand-in, in its simulated time, the keeper ticked every 5 s (keeper/target.py).

The sizer plans BTC at the mark 100,000: 0.003 BTC, stop 97,000, target 106,000. Was: the
take-profit placed once, when the entry was booked; cancelled by hand on Binance, or never
sent because the process stopped between the entry's booking (saved first) and its sending,
it was never placed again, and while the daemon was down the exchange held none.
"""

from __future__ import annotations

from decimal import Decimal

from loopback import LoopbackBinance
from loopback.fixtures import settle
from standin_keeper import BTC_MARKET, EnteringKeeper, keeper_on_streams, load_keeper
from test_exchange_answers import BTC

from quantum_trader.domain import OrderKind, OrderRequest, OrderSide
from quantum_trader.ports import Writes
from quantum_trader.storage.memory import InMemoryRepository

PLANNED = [
    ("STOP_MARKET", "SELL", "0.003", "97000"),
    ("TAKE_PROFIT_MARKET", "SELL", "0.003", "106000"),
]


def ids(sent: list[dict[str, str]]) -> list[str]:
    return [p["clientAlgoId"] for p in sent]


class Stopped(Exception):
    """The process stopped here: the refused write and everything after it never happened."""


class StopsBeforeTarget(InMemoryRepository):
    """Refuses (`Stopped`) the write of a take-profit's intent while `armed`: the process
    stopped after the entry's booking and its stop, before the take-profit left."""

    armed = True

    async def write(self, writes: Writes) -> None:
        if self.armed and any(o.kind is OrderKind.TAKE_PROFIT_MARKET for o in writes.orders):
            raise Stopped("before the take-profit's intent was saved")
        await super().write(writes)


async def test_a_take_profit_cancelled_by_hand_is_placed_again_once() -> None:
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        assert rig.open_orders() == PLANNED
        [first] = ids(rig.sent("TAKE_PROFIT_MARKET"))
        await rig.exchange.cancel_conditional_order(BTC, first)  # a person, by hand
        await settle(rig.server)
        assert rig.open_orders() == PLANNED[:1]
        await rig.tick()

        assert rig.open_orders() == PLANNED
        [_, second] = ids(rig.sent("TAKE_PROFIT_MARKET"))
        assert second != first
        assert rig.keeper.view().positions[BTC].take_profit_order_id == second
        await rig.tick(12)  # a minute, the full REST check among them
        assert ids(rig.sent("TAKE_PROFIT_MARKET")) == [first, second]
        assert len(rig.sent("STOP_MARKET")) == 1
        assert rig.open_orders() == PLANNED


async def test_a_stop_between_the_entry_and_its_take_profit_gets_it_at_the_restart() -> None:
    """The entry booked and its stop placed, the process stopped before the take-profit's
    intent was saved: nothing of it on the exchange or in the database. The restart's tick
    places it, once."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        repository = StopsBeforeTarget()
        rig.repository = repository
        rig.keeper = await load_keeper(rig.exchange, rig.streams, repository, rig.clock)
        await rig.keeper.tick(rig.now(), rest=True)
        try:
            await rig.enter()
        except Stopped:
            pass
        else:
            raise AssertionError("the take-profit's write was not reached")
        await settle(rig.server)
        assert rig.open_orders() == PLANNED[:1]
        [saved] = await repository.open_positions()
        assert saved.take_profit_order_id is None

        repository.armed = False
        await rig.restart()
        await rig.tick(3)

        assert rig.open_orders() == PLANNED
        [target] = ids(rig.sent("TAKE_PROFIT_MARKET"))
        assert rig.keeper.view().positions[BTC].take_profit_order_id == target
        [saved] = await repository.open_positions()
        assert saved.take_profit_order_id == target
        assert len(rig.sent("STOP_MARKET")) == 1
        assert rig.keeper.view().positions[BTC].quantity == Decimal("0.003")


async def test_a_take_profit_larger_than_the_position_after_a_sale_by_hand_is_placed_again_for_what_is_held() -> (  # noqa: E501
    None
):
    """A person sells 0.001 of our 0.003 by hand: the take-profit of 0.003 is cancelled and
    placed again for the 0.002 held, so it closes the position at its target without a tick
    also where Binance refuses a reduce-only take-profit larger than the position, as its FAQ
    says (the stand-in's `strict_reduce_only`). Was: kept at 0.003 (reduce-only, our fakes execute
    what is held), which such a Binance ends REJECTED, nothing closed: the target taken only
    by the stop maths, at market, while the daemon runs."""

    def strict(server: LoopbackBinance) -> None:
        server.engine.strict_reduce_only = True

    async with keeper_on_streams(EnteringKeeper, strict) as rig:
        await rig.enter()
        await rig.tick()
        reduction = OrderRequest(
            "web_reduce_1", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal("0.001"),
            reduce_only=True,
        )  # fmt: skip
        await rig.exchange.place_order(reduction)
        await rig.tick(3)
        assert rig.open_orders() == [
            ("STOP_MARKET", "SELL", "0.002", "97000"),
            ("TAKE_PROFIT_MARKET", "SELL", "0.002", "106000"),
        ]
        [_, second] = ids(rig.sent("TAKE_PROFIT_MARKET"))
        assert rig.keeper.view().positions[BTC].take_profit_order_id == second
        [saved] = await rig.repository.open_positions()
        assert saved.take_profit_order_id == second

        rig.server.state.marks[BTC_MARKET] = Decimal("106500")
        rig.server.sync()  # no tick of ours: the exchange's take-profit alone
        await settle(rig.server)
        assert rig.server.state.holding(BTC_MARKET).amount == 0
        assert rig.server.state.algo_orders[second]["algoStatus"] == "FINISHED"
