"""The keeper books a closed position on a real SQLite file: its trade's row, the position's
deletion, the account tracker and the symbol's statistics are one write. A write of the
statistics that fails (SQLite refusing it, as a stop at that point would leave it) leaves the
position in place and no trade; the restart books the trade once, with statistics and a
tracker that count it."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from model_exchange import ModelExchange
from state_refusals import accept_state_writes, refuse_state_writes
from test_keeper_properties import KEEPER, PRICES, RULES, T0, TICK, sized

from quantum_trader.domain import ExitReason, Side, SymbolStats
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
        now = exchange.now = now + TICK
        await keeper.tick(now)
        [trade] = await repository.closed_trades()
        # The stop's order was settled before the refused write, so the restart finds the
        # position gone with no order of ours to explain it: booked from the account's trades,
        # which hold the stop's own (keeper/external.py), as a close outside the program.
        assert (trade.symbol, trade.exit_reason) == (BTC, ExitReason.MANUAL)
        assert trade.exit_price == order.stop_price
        assert await repository.open_positions() == []
        stats = (await repository.load_state("symbol_stats"))[BTC]
        assert stats_from_dict(stats) == record_trade(SymbolStats(BTC), trade, now, PERFORMANCE)
        tracker = AccountTracker.from_dict((await repository.load_state("account"))["tracker"])
        assert tracker.recent_pnl == ((trade.closed_at, trade.pnl_usdt),)
    finally:
        await repository.close()
