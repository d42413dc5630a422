"""The keeper books a closed position on a real SQLite file: its trade's row, the position's
deletion, the account tracker, the symbol's statistics and its orders' settlement are one
write. A write of the
statistics that fails (SQLite refusing it, as a stop at that point would leave it) leaves the
position in place and no trade; the restart books the trade once, with statistics and a
tracker that count it, and the close as the stop that made it (SL_HIT), not as a close
outside the program."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from model_exchange import ModelExchange
from state_refusals import accept_state_writes, refuse_state_writes
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, PRICES, RULES, T0, TICK, sized

from quantum_trader.domain import ExitReason, OrderKind, OrderStatus, Side, SymbolStats
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.account import AccountTracker
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.portfolio.performance import record_trade, stats_from_dict
from quantum_trader.ports import Repository
from quantum_trader.storage.sqlite import SqliteRepository

BTC = "BTC/USDT:USDT"
PERFORMANCE = PerformanceSettings()


async def keeper_on(
    exchange: ModelExchange, repository: Repository, now: datetime
) -> PositionKeeper:
    ledger = await Ledger.load(repository, Decimal(10_000), now, PERFORMANCE)
    return await PositionKeeper.load(exchange, repository, ledger, RULES, KEEPER, MonitorSettings())


async def test_a_stop_between_a_closed_trade_and_its_statistics_leaves_neither(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = await SqliteRepository.open(path)
    now = exchange.now = T0 + TICK
    try:
        keeper = await keeper_on(exchange, repository, T0)
        order = sized(BTC, Side.LONG, exchange.marks[BTC])
        await keeper.enter(order, now)
        exchange.move(BTC, order.stop_price - Decimal(1))  # the stop fills
        refuse_state_writes(path, "symbol_stats")
        now = exchange.now = now + TICK
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await keeper.tick(now)
        assert [p.symbol for p in await repository.open_positions()] == [BTC]
        assert await repository.closed_trades() == []
        assert await repository.load_state("symbol_stats") == {}
    finally:
        await repository.close()  # the process ends here

    accept_state_writes(path)
    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, now)
        sent = len(exchange.received)
        now = exchange.now = now + TICK
        await keeper.tick(now)
        [trade] = await repository.closed_trades()
        # The stop's settlement is written once its trade is (keeper/carry.py): the restart
        # finds the stop still working in the books, looks it up and books it as the stop.
        assert (trade.symbol, trade.exit_reason) == (BTC, ExitReason.SL_HIT)
        assert trade.exit_price == order.stop_price
        assert len(exchange.received) == sent  # nothing sent again
        [stop] = [o for o in await repository.orders(BTC) if o.kind is OrderKind.STOP_MARKET]
        assert stop.status is OrderStatus.FILLED
        assert await repository.open_positions() == []
        stats = (await repository.load_state("symbol_stats"))[BTC]
        assert stats_from_dict(stats) == record_trade(SymbolStats(BTC), trade, now, PERFORMANCE)
        tracker = AccountTracker.from_dict((await repository.load_state("account"))["tracker"])
        assert tracker.recent_pnl == ((trade.closed_at, trade.pnl_usdt),)
    finally:
        await repository.close()


def refuse_order_writes(path: Path, *, accept: bool = False) -> None:
    """Have SQLite refuse every write of an order (or, `accept`, no longer)."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        for statement in ("INSERT", "UPDATE"):
            name = f"refused_orders_{statement.lower()}"
            other.execute(
                f"DROP TRIGGER {name}"
                if accept
                else f"CREATE TRIGGER {name} BEFORE {statement} ON orders "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        other.commit()


async def test_a_closed_trade_and_its_orders_settlement_are_one_write(
    tmp_path: Path,
) -> None:
    """The stop's settlement is written in its trade's transaction (keeper/carry.py): an
    order write SQLite refuses leaves neither, the stop still working in the orders table and
    the position in place. The restart books the trade once, as the stop, and sends nothing.
    (Was, from 2026-12-03: the settlement written after the trade, so a stop between the two
    left an order filled with no position, recorded by the next tick.)"""
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = await SqliteRepository.open(path)
    now = exchange.now = T0 + TICK
    try:
        keeper = await keeper_on(exchange, repository, T0)
        order = sized(BTC, Side.LONG, exchange.marks[BTC])
        await keeper.enter(order, now)
        exchange.move(BTC, order.stop_price - Decimal(1))  # the stop fills
        refuse_order_writes(path)
        now = exchange.now = now + TICK
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await keeper.tick(now)
        assert await repository.closed_trades() == []
        assert [p.symbol for p in await repository.open_positions()] == [BTC]
        [stop] = [o for o in await repository.orders(BTC) if o.kind is OrderKind.STOP_MARKET]
        assert stop.status is OrderStatus.OPEN
    finally:
        await repository.close()  # the process ends here

    refuse_order_writes(path, accept=True)
    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, now)
        sent = len(exchange.received)
        now = exchange.now = now + TICK
        with capture_logs() as logs:
            await keeper.tick(now)
        [trade] = await repository.closed_trades()
        assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, order.stop_price)
        assert len(exchange.received) == sent
        [stop] = [o for o in await repository.orders(BTC) if o.kind is OrderKind.STOP_MARKET]
        assert stop.status is OrderStatus.FILLED
        assert await repository.open_positions() == []
        assert keeper.view().blocked == {}
        assert [e for e in logs if e["event"] == "position_closed_externally"] == []
    finally:
        await repository.close()


async def test_a_restart_after_an_exit_of_ours_whose_booking_was_refused_keeps_its_reason(
    tmp_path: Path,
) -> None:
    """The same with a market exit of ours (the governor's `close_all`): its intent, with the
    reason, is forgotten only once the trade is written, so the restart books that reason."""
    path = tmp_path / "quantum_trader.db"
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = await SqliteRepository.open(path)
    now = exchange.now = T0 + TICK
    try:
        keeper = await keeper_on(exchange, repository, T0)
        await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
        exchange.move(BTC, exchange.marks[BTC] + Decimal(1))
        refuse_state_writes(path, "symbol_stats")
        now = exchange.now = now + TICK
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await keeper.close_all(ExitReason.EMERGENCY, now)
        assert await repository.closed_trades() == []
    finally:
        await repository.close()  # the process ends here

    accept_state_writes(path)
    repository = await SqliteRepository.open(path)
    try:
        keeper = await keeper_on(exchange, repository, now)
        sent = len(exchange.received)
        now = exchange.now = now + TICK
        await keeper.tick(now)
        [trade] = await repository.closed_trades()
        assert (trade.symbol, trade.exit_reason) == (BTC, ExitReason.EMERGENCY)
        assert trade.exit_price == exchange.marks[BTC]
        assert len(exchange.received) == sent
        assert await repository.open_positions() == []
    finally:
        await repository.close()
