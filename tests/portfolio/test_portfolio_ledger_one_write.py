"""A closed trade (or its amendment) and what it changes in the ledger — the account tracker,
the symbol's statistics — are one write: a stop between them cannot leave the trade booked
without them. Shown on a real SQLite file whose write of the statistics SQLite refuses (a
trigger), as a stop at that point would leave them; a restart then finds the tracker and the
statistics agreeing with the stored trades."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from state_refusals import accept_state_writes, refuse_state_writes
from structlog.testing import capture_logs

from quantum_trader.domain import ClosedTrade, ExitReason, Side, SymbolStats
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.portfolio.account import AccountTracker
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.portfolio.performance import record_trade
from quantum_trader.storage.sqlite import SqliteRepository

NOW = datetime(2025, 10, 1, tzinfo=UTC)
BTC = "BTC/USDT:USDT"
EQUITY = Decimal(10_000)
PERFORMANCE = PerformanceSettings()


def trade(pnl: str, minute: int = 0, entry: str = "qt-1") -> ClosedTrade:
    closed = NOW + timedelta(minutes=minute)
    return ClosedTrade(
        symbol=BTC,
        side=Side.LONG,
        quantity=Decimal(1),
        entry_price=Decimal(100),
        exit_price=Decimal(100) + Decimal(pnl),
        opened_at=closed - timedelta(hours=1),
        closed_at=closed,
        exit_reason=ExitReason.TP_HIT if Decimal(pnl) > 0 else ExitReason.SL_HIT,
        pnl_usdt=Decimal(pnl),
        fees_usdt=Decimal(0),
        funding_usdt=Decimal(0),
        r_multiple=float(pnl) / 10,
        entry_order_id=entry,
    )


async def open_ledger(path: Path) -> tuple[SqliteRepository, Ledger]:
    repository = await SqliteRepository.open(path)
    return repository, await Ledger.load(repository, EQUITY, NOW, PERFORMANCE)


def counted(trades: Sequence[ClosedTrade]) -> tuple[AccountTracker, SymbolStats]:
    """The tracker and the statistics that booking `trades` in order gives, each at its close."""
    tracker, stats = AccountTracker.start(EQUITY, NOW), SymbolStats(BTC)
    for one in trades:
        tracker = tracker.on_trade_closed(one)
        stats = record_trade(stats, one, one.closed_at, PERFORMANCE)
    return tracker, stats


async def test_a_trade_whose_statistics_are_refused_is_not_booked(tmp_path: Path) -> None:
    """Neither the trade's row, nor the position's deletion, nor the tracker: the write is
    one. (Was: the trade's row and the tracker written, then the statistics refused.)"""
    path = tmp_path / "ledger.db"
    repository, ledger = await open_ledger(path)
    try:
        tracker = ledger.tracker
        refuse_state_writes(path, "symbol_stats")
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await ledger.record_trade(trade("-2"), NOW, closes_position=True)
        assert await repository.closed_trades() == []
        saved = await repository.load_state("account")
        assert AccountTracker.from_dict(saved["tracker"]) == tracker == ledger.tracker
        assert await repository.load_state("symbol_stats") == {}
        assert ledger.stats == {}
    finally:
        await repository.close()


async def test_an_amendment_whose_statistics_are_refused_is_not_made(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    repository, ledger = await open_ledger(path)
    try:
        booked = trade("3")
        await ledger.record_trade(booked, NOW)
        stats, tracker = ledger.stats[BTC], ledger.tracker
        refuse_state_writes(path, "symbol_stats")
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await ledger.amend_trade(replace(booked, pnl_usdt=Decimal(-1)), NOW)
        assert await repository.closed_trades() == [booked]
        assert (ledger.stats[BTC], ledger.tracker) == (stats, tracker)
    finally:
        await repository.close()


async def test_a_restart_after_a_refused_booking_finds_statistics_that_match_the_trades(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    repository, ledger = await open_ledger(path)
    booked = [trade("-1", 1, "qt-1"), trade("2", 2, "qt-2"), trade("-3", 3, "qt-3")]
    try:
        for one in booked:
            await ledger.record_trade(one, one.closed_at)
        refuse_state_writes(path, "symbol_stats")
        with pytest.raises(sqlite3.DatabaseError, match="refused"):
            await ledger.record_trade(trade("-4", 4, "qt-4"), NOW + timedelta(minutes=4))
    finally:
        await repository.close()  # the process ends here

    accept_state_writes(path)
    repository, ledger = await open_ledger(path)
    try:
        stored = await repository.closed_trades()
        tracker, stats = counted(stored)
        assert ledger.tracker.recent_pnl == tracker.recent_pnl
        assert ledger.tracker.losing_streak == tracker.losing_streak
        assert ledger.stats == {BTC: stats}
        assert stored == booked
    finally:
        await repository.close()


async def test_an_amendment_counts_as_the_trades_read_after_it_would(tmp_path: Path) -> None:
    """The ledger counts an amendment from the trades read before it, with the amended one in
    its place: a win turned loss ends the streaks as the stored trades, read again, do."""
    path = tmp_path / "ledger.db"
    repository, ledger = await open_ledger(path)
    booked = [trade("-1", 1, "qt-1"), trade("2", 2, "qt-2"), trade("-3", 3, "qt-3")]
    try:
        for one in booked:
            await ledger.record_trade(one, one.closed_at)
        amended = replace(booked[1], pnl_usdt=Decimal("-0.5"), r_multiple=-0.05)
        assert await ledger.amend_trade(amended, NOW + timedelta(minutes=5)) == booked[1]
        assert await ledger.amend_trade(amended, NOW + timedelta(minutes=6)) == amended
        stored = await repository.closed_trades()
        assert stored == [booked[0], amended, booked[2]]
        tracker, stats = counted(stored)
        assert (ledger.tracker.losing_streak, ledger.stats[BTC].streak) == (3, -3)
        assert ledger.tracker.recent_pnl == tracker.recent_pnl
        assert ledger.stats[BTC].last_20_r == stats.last_20_r
        assert (ledger.stats[BTC].wins, ledger.stats[BTC].losses) == (0, 3)
    finally:
        await repository.close()
    repository, again = await open_ledger(path)
    try:
        assert (again.tracker, again.stats) == (ledger.tracker, ledger.stats)
    finally:
        await repository.close()


async def test_a_trade_booked_again_as_it_was_counts_once_and_says_nothing(
    tmp_path: Path,
) -> None:
    """A replay of the same booking (a restart that books a trade stored already) is stored
    once and counted once. (Was: stored once, but counted again in the statistics.)"""
    repository, ledger = await open_ledger(tmp_path / "ledger.db")
    try:
        with capture_logs() as logs:
            await ledger.record_trade(trade("-2"), NOW)
            await ledger.record_trade(trade("-2"), NOW)
        assert await repository.closed_trades() == [trade("-2")]
        assert (ledger.stats[BTC].trades, ledger.tracker.losing_streak) == (1, 1)
        assert [e for e in logs if e["log_level"] == "warning"] == []
    finally:
        await repository.close()


async def test_another_trade_under_a_stored_trades_key_is_refused_with_a_warning(
    tmp_path: Path,
) -> None:
    """Only an adopted position's entry id (`adopted-…-<opened ms>`) could repeat with the same
    close time: the trade stored stands, the other is not counted, and one warning names
    both. (Was: dropped in silence, though counted in the statistics.)"""
    repository, ledger = await open_ledger(tmp_path / "ledger.db")
    first, other = trade("2", entry="adopted-BTC-1"), trade("-5", entry="adopted-BTC-1")
    try:
        await ledger.record_trade(first, NOW)
        with capture_logs() as logs:
            await ledger.record_trade(other, NOW)
        assert await repository.closed_trades() == [first]
        assert (ledger.stats[BTC].trades, ledger.stats[BTC].wins) == (1, 1)
        assert ledger.tracker.recent_pnl == ((NOW, Decimal(2)),)
        [warning] = [e for e in logs if e["log_level"] == "warning"]
        assert warning["event"] == "closed_trade_key_taken"
        assert (warning["symbol"], warning["entry_order_id"]) == (BTC, "adopted-BTC-1")
        assert "pnl_usdt=Decimal('2')" in warning["stored"]
        assert "pnl_usdt=Decimal('-5')" in warning["refused"]
    finally:
        await repository.close()
