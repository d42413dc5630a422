"""A stop (kill -9, a crash) between two of a tick's writes never turns into a wrong booking.

A repository that refuses a chosen write, as a stop just before it would leave the database,
ends the tick there; a keeper loaded again from that repository (a restart) must book what
happened once and as it happened: a part exit of ours as ours, not as a close outside the
program; a flip by hand's closed side as a trade, not lost; a reduction by hand's trades never
taken again for a later one (keeper/carry.py writes a tick's bookings so)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_booking_one_write import keeper_on as sqlite_keeper
from test_keeper_external_exits import BTC, by_hand, fee_paid, noted, opened
from test_keeper_fees_unread import entered, fee_of, sent
from test_keeper_properties import PRICES, RULES, T0, TICK, Harness, keeper_on, sized

from quantum_trader.domain import (
    ClosedTrade,
    ExitReason,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    Side,
)
from quantum_trader.keeper.external_saved import EXTERNAL_BOOKED
from quantum_trader.keeper.ids import Purpose
from quantum_trader.ports import StateWrite, Writes
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.sqlite import SqliteRepository


class Stopped(Exception):
    """The process stopped here: the refused write and everything after it never happened."""


class StoppingRepository(InMemoryRepository):
    """The in-memory repository, but a write that would save a position `refuse_position`
    matches, a state entry of `refuse_state`'s namespace, or a closed trade while
    `refuse_trade`, raises `Stopped` and writes nothing of its call (one transaction)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_position: Callable[[Position], bool] | None = None
        self.refuse_state: str | None = None
        self.refuse_trade = False
        self.stopped = False  # a write was refused

    def _check(self, positions: Sequence[Position], state: Sequence[StateWrite]) -> None:
        refuse = self.refuse_position
        if refuse is not None and any(refuse(p) for p in positions):
            self.stopped = True
            raise Stopped("a position's write")
        if any(namespace == self.refuse_state for namespace, _, _ in state):
            raise Stopped(f"a write of {self.refuse_state}")

    async def save_position(self, position: Position) -> None:
        self._check([position], [])
        await super().save_position(position)

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        self._check([], [(namespace, key, payload)])
        await super().save_state(namespace, key, payload)

    async def write(self, writes: Writes) -> None:
        self._check(writes.positions, writes.state)
        await super().write(writes)

    async def record_closed_trade(
        self,
        trade: ClosedTrade,
        *,
        closes_position: bool = False,
        state: Sequence[StateWrite] = (),
        writes: Writes | None = None,
    ) -> ClosedTrade | None:
        if self.refuse_trade:
            raise Stopped("a closed trade's write")
        if writes is not None:
            self._check(writes.positions, writes.state)
        return await super().record_closed_trade(
            trade, closes_position=closes_position, state=state, writes=writes
        )


async def started() -> tuple[Harness, StoppingRepository]:
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = StoppingRepository()
    return Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0), repository


async def test_a_stop_between_a_part_exits_order_and_its_position_books_it_as_ours() -> None:
    """Our partial take-profit fills; the process stops as its booking is written. Was: its
    order was saved FILLED before the smaller position, so the restart found the position
    reduced with no order of ours to explain it and booked a close outside the program
    (MANUAL) at our own exit's trade. Now both are one write: the restart finds the exit
    unsettled, looks it up and books it as the part exit."""
    harness, repository = await started()
    exchange = harness.exchange
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    repository.refuse_position = lambda p: p.quantity < p.initial_quantity  # the part exit's
    price = exchange.marks[BTC]
    while not sent(exchange, Purpose.EXIT):  # up until the partial take-profit
        price += Decimal("0.1")
        exchange.move(BTC, price)
        with contextlib.suppress(Stopped):
            await harness.tick()
    assert repository.stopped
    [partial] = sent(exchange, Purpose.EXIT)
    repository.refuse_position = None

    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()
    assert [e for e in logs if e["event"] == "position_closed_externally"] == []
    position = harness.keeper.positions[BTC]
    assert position.quantity == exchange.held[BTC][1]
    assert partial not in harness.keeper.book.intents
    stored = await repository.get_order(partial)
    assert stored is not None
    assert stored.status is OrderStatus.FILLED
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    [trade] = await repository.closed_trades()
    exits = sent(exchange, Purpose.EXIT)
    assert trade.fees_usdt == sum(fee_of(exchange, c) for c in [entry, *exits])


async def test_a_stop_between_a_flips_closed_side_and_its_trade_loses_no_trade() -> None:
    """A person flips the long to a short in one order; the process stops as the closed
    long's trade is written. Was: the short was saved first, over the long, so the restart
    found the books agreeing with the exchange and the long's trade was never booked. Now the
    short is saved in the trade's own write."""
    harness, repository = await started()
    quantity = await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    harness.exchange.move(BTC, Decimal(102))
    flip = OrderRequest("web_flip_2", BTC, OrderSide.SELL, OrderKind.MARKET, quantity * 2)
    await harness.exchange.place_order(flip)
    harness.exchange.move(BTC, Decimal(101))
    repository.refuse_trade = True
    with pytest.raises(Stopped):
        await harness.tick()
    repository.refuse_trade = False

    await harness.restart()
    await harness.tick()
    [trade] = await repository.closed_trades()
    assert (trade.side, trade.exit_reason, trade.exit_price) == (
        Side.LONG,
        ExitReason.MANUAL,
        Decimal(102),
    )
    assert trade.fees_usdt == entry_fees + fee_paid(harness, "web_flip_2") / 2
    [short] = await repository.open_positions()
    assert (short.side, short.quantity) == (Side.SHORT, quantity)


async def test_a_stop_before_a_reductions_trades_are_remembered_does_not_book_them_again() -> None:
    """A person sells 0.6; the process stops as the tick writes what it booked. Was: the
    smaller position was saved, the trade ids it was booked at (`external_booked`) after it,
    so the restart forgot them, and a later reduction whose own trade Binance did not list
    yet was booked at that trade once more (its price, its fee twice). Now the two are one
    write: the restart books the 0.6 again, at its trade, and remembers it."""
    harness, repository = await started()
    await opened(harness)
    harness.exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_reduced_20", OrderSide.SELL, Decimal("0.6"))
    repository.refuse_state = EXTERNAL_BOOKED
    with pytest.raises(Stopped):
        await harness.tick()
    repository.refuse_state = None

    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()
    restarted = [e for e in logs if e["event"] == "position_closed_externally"]
    harness.exchange.move(BTC, Decimal("100.6"))
    await by_hand(harness, "web_reduced_21", OrderSide.SELL, Decimal("0.6"))
    lagging = harness.exchange.fills.pop("web_reduced_21")  # not listed yet
    harness.exchange.move(BTC, Decimal("100.5"))
    with capture_logs() as logs:
        await harness.tick()
    harness.exchange.fills["web_reduced_21"] = lagging

    assert "booked at the mark 100.5 (the account's trades do not add up to 0.600)" in noted(logs)
    [again] = restarted  # the restart booked the first 0.6, at its trade, and remembered it
    assert "the account's 1 trade(s) 101" in again["detail"]


async def test_a_stop_as_a_close_is_written_keeps_the_fees_read_for_it() -> None:
    """The entry's fee was unread until the close's tick read it; the process stops as the
    trade is written. Was: the entry was forgotten from the orders whose fees are unread
    before the trade's write, so the restart booked the trade without the entry's fee. Now
    that goes in the trade's write."""
    harness, repository = await started()
    exchange = harness.exchange
    entry = await entered(harness, unreadable=3)  # the answer's read and two ticks'
    await harness.tick()
    await harness.tick()
    position = harness.keeper.positions[BTC]
    stop = position.stop_order_id
    assert position.fees_usdt == 0
    exchange.move(BTC, position.stop_price - Decimal(1))
    repository.refuse_trade = True
    with pytest.raises(Stopped):
        await harness.tick()
    repository.refuse_trade = False

    await harness.restart()
    await harness.tick()
    [trade] = await repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT
    assert stop is not None
    assert trade.fees_usdt == fee_of(exchange, entry) + fee_of(exchange, stop)


def refuse_smaller_positions(path: Path, *, accept: bool = False) -> None:
    """Have SQLite refuse (or, `accept`, no longer) every write of a position with another
    quantity than the one stored: a part exit's booking."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        other.execute(
            "DROP TRIGGER refused_smaller"
            if accept
            else "CREATE TRIGGER refused_smaller BEFORE INSERT ON positions WHEN EXISTS (SELECT 1 "
            "FROM positions p WHERE p.symbol = NEW.symbol AND p.quantity <> NEW.quantity) "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        other.commit()


async def test_a_part_exit_whose_booking_sqlite_refuses_is_booked_as_ours_after_a_restart(
    tmp_path: Path,
) -> None:
    """The part exit above on a real SQLite file, the process ending with the refusal."""
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = await SqliteRepository.open(path)
    now = exchange.now = T0 + TICK
    try:
        keeper = await sqlite_keeper(exchange, repository, T0)
        await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
        refuse_smaller_positions(path)
        price = exchange.marks[BTC]
        while not sent(exchange, Purpose.EXIT):  # up until the partial take-profit
            price += Decimal("0.1")
            exchange.move(BTC, price)
            now = exchange.now = now + TICK
            with contextlib.suppress(sqlite3.DatabaseError):
                await keeper.tick(now)
        [partial] = sent(exchange, Purpose.EXIT)
        stored = await repository.get_order(partial)
        assert stored is not None
        assert stored.status is OrderStatus.PENDING  # nothing of its booking written
    finally:
        await repository.close()  # the process ends here

    refuse_smaller_positions(path, accept=True)
    repository = await SqliteRepository.open(path)
    try:
        keeper = await sqlite_keeper(exchange, repository, now)
        now = exchange.now = now + TICK
        with capture_logs() as logs:
            await keeper.tick(now)
        assert [e for e in logs if e["event"] == "position_closed_externally"] == []
        [position] = await repository.open_positions()
        assert position.quantity == exchange.held[BTC][1] < position.initial_quantity
        stored = await repository.get_order(partial)
        assert stored is not None
        assert stored.status is OrderStatus.FILLED
    finally:
        await repository.close()
