"""SQLite-only behaviour: migrations, refusals, durability, buffering, read-only readers."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import storage_samples as s

from quantum_trader.domain import ZERO, GateName, ReasonCode
from quantum_trader.errors import OperatorActionRequired
from quantum_trader.record import replace
from quantum_trader.storage.codec import encode_order
from quantum_trader.storage.migrate import Migration, bundled_migrations
from quantum_trader.storage.sqlite import (
    FLUSH_THRESHOLD_ROWS,
    ReadOnlyRepositoryError,
    SqliteRepository,
)
from quantum_trader.storage.tables import ORDER_COLUMNS

LATEST = len(bundled_migrations())


def versions(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT version, applied_at FROM schema_version ORDER BY 1"))


def count_rows(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(n)
    finally:
        conn.close()


def extra_migrations(*sql: str) -> list[Migration]:
    added = [Migration(LATEST + i + 1, f"{LATEST + i + 1:04d}_t.sql", q) for i, q in enumerate(sql)]
    return [*bundled_migrations(), *added]


async def test_bundled_migrations_are_numbered_from_one() -> None:
    migrations = bundled_migrations()

    assert [m.version for m in migrations] == list(range(1, LATEST + 1))
    assert migrations[0].name == "0001_initial.sql"


async def test_fresh_database_is_migrated_to_the_latest_version(tmp_path: Path) -> None:
    repo = await SqliteRepository.open(tmp_path / "new" / "ledger.db")
    await repo.close()

    assert repo.applied_migrations == tuple(range(1, LATEST + 1))
    assert repo.schema_version == LATEST
    assert [v for v, _ in versions(tmp_path / "new" / "ledger.db")] == list(range(1, LATEST + 1))


async def test_reopening_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await (await SqliteRepository.open(path)).close()
    before = versions(path)

    again = await SqliteRepository.open(path)
    await again.close()

    assert again.applied_migrations == ()
    assert versions(path) == before


async def test_only_pending_migrations_are_applied(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await (await SqliteRepository.open(path)).close()

    repo = await SqliteRepository.open(path, migrations=extra_migrations("CREATE TABLE t (x)"))
    await repo.close()

    assert repo.applied_migrations == (LATEST + 1,)
    assert count_rows(path, "t") == 0


async def test_the_r_multiple_of_a_trade_of_unknown_risk_becomes_null(tmp_path: Path) -> None:
    """0002: r_multiple accepts NULL (an unknown initial risk); a 0.0 beside a gain or a loss,
    which only an unknown risk gave, becomes NULL; a break-even 0.0 and other R stay."""
    path = tmp_path / "ledger.db"
    first = await SqliteRepository.open(path, migrations=bundled_migrations()[:1])
    known = s.closed_trade(closed_at=s.at(1))
    unknown = s.closed_trade(closed_at=s.at(2), r_multiple=0.0, pnl_usdt="-12.5")
    even = s.closed_trade(closed_at=s.at(3), r_multiple=0.0, pnl_usdt="0E-8")
    for trade in (known, unknown, even):
        await first.record_closed_trade(trade)
    await first.close()

    repo = await SqliteRepository.open(path)
    try:
        assert repo.applied_migrations == tuple(range(2, LATEST + 1))
        assert [t.r_multiple for t in await repo.closed_trades()] == [1.7345, None, 0.0]
        await repo.record_closed_trade(s.closed_trade(closed_at=s.at(4), r_multiple=None))
        await repo.record_closed_trade(unknown)  # still stored once
        assert [t.r_multiple for t in await repo.closed_trades()] == [1.7345, None, 0.0, None]
    finally:
        await repo.close()


async def test_decisions_are_tallied_as_they_are_written_and_removed(tmp_path: Path) -> None:
    """0003: the counts by gate and reason are kept as decisions are written (and removed by
    hand), begun from those a version-2 file holds; a reader of a version-2 file, not
    migrated, counts the table itself. The counts are the table's GROUP BY throughout."""
    path = tmp_path / "ledger.db"
    low = s.decision(gate=GateName.ORCHESTRATOR, reason=ReasonCode.SYMBOL_LOW_WIN_RATE)
    first = await SqliteRepository.open(path, migrations=bundled_migrations()[:2])
    await first.record_decisions([s.decision(), s.decision(), low])
    await first.close()
    by_hand = "SELECT gate, reason, count(*) FROM decisions GROUP BY gate, reason ORDER BY 1"
    before = {("governor", "PAUSED"): 2, ("orchestrator", "SYMBOL_LOW_WIN_RATE"): 1}

    reader = await SqliteRepository.open(path, read_only=True)
    try:
        assert (reader.schema_version, await reader.decision_counts()) == (2, before)
    finally:
        await reader.close()
    repo = await SqliteRepository.open(path)
    try:
        assert await repo.decision_counts() == before
        await repo.record_decisions([s.full_decision(), low])
        assert await repo.decision_counts() == {
            ("balancer", "APPROVED"): 1, ("governor", "PAUSED"): 2,
            ("orchestrator", "SYMBOL_LOW_WIN_RATE"): 2,
        }  # fmt: skip
    finally:
        await repo.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM decisions WHERE gate IN ('governor', 'balancer')")
        kept = conn.execute("SELECT gate, reason, decisions FROM decision_tallies").fetchall()
        assert (
            kept == conn.execute(by_hand).fetchall() == [("orchestrator", "SYMBOL_LOW_WIN_RATE", 2)]
        )


async def test_a_version_1_file_is_read_as_it_is_without_the_daemon_migrating_it(
    tmp_path: Path,
) -> None:
    """After an upgrade, `status`, `trades` and `--db` on an older backtest's file read a
    version-1 database (0002 changes nothing a reader meets) rather than refusing it until
    a daemon has opened it; the file is left at version 1."""
    path = tmp_path / "backtest.db"
    first = await SqliteRepository.open(path, migrations=bundled_migrations()[:1])
    await first.record_closed_trade(s.closed_trade())
    await first.close()

    reader = await SqliteRepository.open(path, read_only=True)
    try:
        assert reader.schema_version == 1
        assert await reader.closed_trades() == [s.closed_trade()]
    finally:
        await reader.close()
    assert [v for v, _ in versions(path)] == [1]


async def test_a_version_3_files_orders_are_read_as_they_are_with_no_close_all_stop(
    tmp_path: Path,
) -> None:
    """0004 adds the orders' close_position: `status` (open orders) and a report's `--db` on a
    file from before it read its orders as none close-all, the file left at version 3."""
    path = tmp_path / "ledger.db"
    await (await SqliteRepository.open(path, migrations=bundled_migrations()[:3])).close()
    columns = ORDER_COLUMNS[:-1]  # as a program of schema version 3 wrote them
    assert ORDER_COLUMNS[-1] == "close_position"
    with sqlite3.connect(path) as conn:
        marks = ", ".join("?" * len(columns))
        conn.execute(
            f"INSERT INTO orders ({', '.join(columns)}) VALUES ({marks})",
            encode_order(s.order())[:-1],
        )

    reader = await SqliteRepository.open(path, read_only=True)
    try:
        assert reader.schema_version == 3
        assert await reader.orders() == [s.order()]
        assert await reader.open_orders() == [o for o in [s.order()] if not o.status.is_final]
        assert await reader.get_order(s.order().client_order_id) == s.order()
    finally:
        await reader.close()
    assert [v for v, _ in versions(path)] == [1, 2, 3]


async def test_a_close_all_stop_is_kept_as_one(tmp_path: Path) -> None:
    repository = await SqliteRepository.open(tmp_path / "ledger.db")
    try:
        close_all = replace(s.order(), quantity=ZERO, close_position=True)
        await repository.save_order(close_all)
        assert await repository.get_order(close_all.client_order_id) == close_all
    finally:
        await repository.close()


async def test_a_file_older_than_what_readers_read_asks_for_the_daemon_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    await (await SqliteRepository.open(path)).close()

    newer = extra_migrations("CREATE TABLE t (x)")
    with pytest.raises(OperatorActionRequired, match="start the daemon once") as caught:
        await SqliteRepository.open(path, read_only=True, migrations=newer)
    assert f"schema version {LATEST}, older than this program's {LATEST + 1}" in str(caught.value)


async def test_a_failing_migration_is_rolled_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    broken = extra_migrations("CREATE TABLE ok (x)", "CREATE TABLE half (x); SELEC nonsense")

    with pytest.raises(OperatorActionRequired, match=f"{LATEST + 2:04d}_t.sql"):
        await SqliteRepository.open(path, migrations=broken)

    assert [v for v, _ in versions(path)] == list(range(1, LATEST + 2))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        count_rows(path, "half")


async def test_a_newer_database_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await (await SqliteRepository.open(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, '0999_future.sql', 'x')")

    for read_only in (False, True):
        with pytest.raises(OperatorActionRequired, match="schema version 999") as caught:
            await SqliteRepository.open(path, read_only=read_only)
        assert str(path) in str(caught.value)
        assert "upgrade quantum-trader" in str(caught.value)


async def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    garbage = b"this is not a database, it is a shopping list\n" * 100
    path.write_bytes(garbage)

    for read_only in (False, True):
        with pytest.raises(OperatorActionRequired, match="is not a SQLite database") as caught:
            await SqliteRepository.open(path, read_only=read_only)
        assert str(path) in str(caught.value)
    assert path.read_bytes() == garbage


async def test_a_missing_database_cannot_be_opened_read_only(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"

    with pytest.raises(OperatorActionRequired, match="cannot open database") as caught:
        await SqliteRepository.open(path, read_only=True)

    assert str(path) in str(caught.value)
    assert not path.exists()
    assert connection_threads() == [], "no aiosqlite worker left to stop after we return"


def connection_threads() -> list[threading.Thread]:
    """aiosqlite's worker threads alive (one per connection not closed). A failed connect
    of its own stops its thread after returning: when the loop closed first, the thread
    raised "Event loop is closed" (seen as a PytestUnhandledThreadExceptionWarning)."""
    worker = "_connection_worker_thread"  # its target's name in aiosqlite 0.21 and 0.22
    return [
        t
        for t in threading.enumerate()
        if getattr(getattr(t, "_target", None), "__name__", "") == worker
    ]


async def test_the_writer_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await repo.close()


async def test_every_record_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    await repo.save_order(s.full_order())
    await repo.record_fills([s.fill()])
    await repo.save_position(s.full_position())
    await repo.record_closed_trade(s.closed_trade())
    await repo.record_decisions([s.full_decision()])
    await repo.record_position_events([s.full_position_event()])
    await repo.record_equity(s.equity())
    await repo.save_state("governor", "halt", {"halted": True})
    await repo.close()

    again = await SqliteRepository.open(path, read_only=True)
    try:
        assert await again.orders() == [s.full_order()]
        assert await again.fills() == [s.fill()]
        assert await again.open_positions() == [s.full_position()]
        assert await again.closed_trades() == [s.closed_trade()]
        assert await again.recent_decisions(5) == [s.full_decision()]
        assert await again.position_events() == [s.full_position_event()]
        assert await again.equity_history() == [s.equity()]
        assert await again.load_state("governor") == {"halt": {"halted": True}}
    finally:
        await again.close()


async def test_durable_writes_are_committed_before_they_return(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        await repo.save_order(s.order())
        await repo.record_fills([s.fill()])
        await repo.save_position(s.position())
        await repo.record_closed_trade(s.closed_trade())
        await repo.save_state("ns", "k", {})

        tables = ("orders", "fills", "positions", "closed_trades", "state")
        assert [count_rows(path, t) for t in tables] == [1, 1, 1, 1, 1]
    finally:
        await repo.close()


_KILLED_WRITER = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
import storage_samples as s
from pathlib import Path
from quantum_trader.storage.sqlite import SqliteRepository

async def main():
    repo = await SqliteRepository.open(Path(sys.argv[1]))
    await repo.save_order(s.order())
    print("saved", flush=True)
    time.sleep(60)

asyncio.run(main())
"""


async def test_an_order_intent_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_WRITER,
        str(path),
        str(Path(__file__).parent),
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdout is not None
    try:
        assert await asyncio.wait_for(writer.stdout.readline(), 30) == b"saved\n"
    finally:
        writer.kill()
        await writer.wait()

    repo = await SqliteRepository.open(path)
    try:
        assert await repo.orders() == [s.order()]
    finally:
        await repo.close()


async def test_buffered_rows_reach_the_file_only_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        await repo.record_decisions([s.decision(), s.full_decision()])
        await repo.record_position_events([s.position_event()])
        await repo.record_equity(s.equity())
        buffered = [
            count_rows(path, t) for t in ("decisions", "position_events", "equity_snapshots")
        ]

        await repo.flush()

        flushed = [
            count_rows(path, t) for t in ("decisions", "position_events", "equity_snapshots")
        ]
        assert (buffered, flushed) == ([0, 0, 0], [2, 1, 1])
    finally:
        await repo.close()


async def test_buffers_flush_themselves_past_the_threshold(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    repo = await SqliteRepository.open(path)
    try:
        await repo.record_decisions([s.decision()] * (FLUSH_THRESHOLD_ROWS - 1))
        assert count_rows(path, "decisions") == 0

        await repo.record_equity(s.equity())

        assert count_rows(path, "decisions") == FLUSH_THRESHOLD_ROWS - 1
        assert count_rows(path, "equity_snapshots") == 1
    finally:
        await repo.close()


async def test_a_reader_sees_what_an_open_writer_committed_and_cannot_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    writer = await SqliteRepository.open(path)
    reader = await SqliteRepository.open(path, read_only=True)
    try:
        await writer.save_order(s.order())
        await writer.record_decisions([s.decision()])
        assert await reader.orders() == [s.order()]
        assert await reader.recent_decisions(5) == []

        await writer.flush()
        assert await reader.recent_decisions(5) == [s.decision()]

        with pytest.raises(ReadOnlyRepositoryError, match="read-only"):
            await reader.save_order(s.order("qt-2"))
        with pytest.raises(ReadOnlyRepositoryError):
            await reader.record_decisions([s.decision()])
        assert await writer.orders() == [s.order()]
    finally:
        await reader.close()
        await writer.close()


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    repo = await SqliteRepository.open(tmp_path / "ledger.db")
    await repo.close()

    with pytest.raises(ValueError, match="closed"):
        await repo.record_decisions([s.decision()])


@pytest.mark.parametrize("yields", [0, 1, 2, 3, 5, 8])
async def test_a_write_cancelled_in_flight_leaves_the_connection_usable(
    tmp_path: Path, yields: int
) -> None:
    """aiosqlite runs each statement on its own thread: a caller cancelled while its BEGIN or
    COMMIT waits there must not leave a transaction open for the next writer ("cannot start a
    transaction within a transaction"), and the write is all or nothing."""
    repo = await SqliteRepository.open(tmp_path / "qt.db")
    try:
        first = asyncio.create_task(repo.save_state("test", "first", {"n": 1}))
        for _ in range(yields):
            await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await repo.save_state("test", "second", {"n": 2})
        saved = await repo.load_state("test")
        assert saved["second"] == {"n": 2}
        assert saved.get("first") in (None, {"n": 1})
    finally:
        await repo.close()
