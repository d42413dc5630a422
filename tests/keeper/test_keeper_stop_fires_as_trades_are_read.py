"""Our stop fills between the keeper's read of the positions and its read of the account's
trades (the campaign with a person trading by hand, seed 33081, 2026-12-05): the trades
list its fill, which the positions read does not show. Taken for one of a person's
reductions, it was booked into theirs and then again as our stop's close: one fee twice,
one missing, the reduction at the wrong price."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from model_exchange import ModelExchange
from test_keeper_external_exits import BTC, by_hand, fee_paid, opened
from test_keeper_properties import PRICES, RULES, T0, Harness, keeper_on

from quantum_trader.domain import ExitReason, Fill, OrderSide
from quantum_trader.storage.memory import InMemoryRepository


class StopFiresAsTradesAreRead(ModelExchange):
    """The mark moves to `fire_at` (our stop fires) just before the next read of the
    account's trades answers."""

    fire_at: Decimal | None = None

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        if self.fire_at is not None:
            price, self.fire_at = self.fire_at, None
            self.move(symbol, price)
        return await super().fetch_account_fills(symbol, start, end)


async def test_our_stop_filled_after_the_positions_read_is_not_taken_for_a_reduction_by_hand(
) -> None:  # fmt: skip
    exchange = StopFiresAsTradesAreRead(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    quantity = await opened(harness)  # 3 BTC at 100, stop 97
    exchange.move(BTC, Decimal(99))
    await by_hand(harness, "web_1", OrderSide.SELL, quantity / 4)
    exchange.move(BTC, Decimal("98.5"))
    await by_hand(harness, "web_2", OrderSide.SELL, quantity / 2)
    exchange.fire_at = Decimal(96)
    for _ in range(3):
        await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await repository.closed_trades()
    paid = sum((fee_paid(harness, cid) for cid in exchange.fills), Decimal(0))
    assert trade.fees_usdt == paid  # every fee once
    assert trade.exit_reason is ExitReason.SL_HIT
