"""Issue 5: protection lives on the exchange, so kill -9 leaves every position protected.

1. `quantum-trader run` replays the bundled market from 2025-09-12 at 3,000x until positions
   are open with their stops, then stops on SIGTERM.
2. It starts again in real time with both loops at a one-day period: the startup
   reconciliation, one monitor tick and one executor cycle run, then nothing is due for a day.
   Once that cycle has completed (the replay clock is saved at the end of a cycle) the
   process is killed with SIGKILL: no order can be in flight, so the kill is deterministic.
   The paper exchange's file must hold, for every position in the database, an OPEN
   reduce-only STOP_MARKET on the exit side for the position's full quantity, and the
   exchange must hold the same position.
3. A restart at 600x must resume those positions; after an hour of market time and SIGTERM,
   every position has exactly one open stop and no symbol without a position has one.
"""

from __future__ import annotations

import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from daemon_harness import DATABASE, Daemon, eventually, paper_exchange, query, saved_state

from quantum_trader.domain import OrderKind, OrderStatus, Side
from quantum_trader.execution.paper_state import PaperState

OPEN = {
    "QT_MARKET__REPLAY_START": "2025-09-12T00:00:00Z",
    "QT_MARKET__REPLAY_SPEED": "3000",
    "QT_EXECUTOR__SHUTDOWN_GRACE_S": "5",
}
QUIET = {
    "QT_MARKET__REPLAY_SPEED": "1",
    "QT_EXECUTOR__INTERVAL_S": "86400",
    "QT_MONITOR__INTERVAL_S": "86400",
    # Requests must outlive two such ticks (none is filed here).
    "QT_OPERATOR__REQUEST_MAX_AGE_S": "172810",
}
RESUME = {"QT_MARKET__REPLAY_SPEED": "600", "QT_EXECUTOR__SHUTDOWN_GRACE_S": "5"}
POSITIONS_SQL = "SELECT symbol, side, quantity, stop_order_id FROM positions"


def protected_positions(daemon: Daemon) -> bool:
    positions = daemon.query(POSITIONS_SQL)
    return bool(positions) and all(stop is not None for *_, stop in positions)


def replay_clock_ms(source: Daemon | Path) -> int:
    clock = saved_state(source, "replay", "clock")
    return int(clock["ms"]) if clock else 0


def assert_protected(positions: list[tuple[str, str, str, str | None]], book: PaperState) -> None:
    """Every position has its OPEN reduce-only stop on the exchange for its full quantity."""
    for symbol, side, quantity, stop_order_id in positions:
        assert stop_order_id is not None, f"{symbol}: no stop order recorded"
        stop = book.orders[stop_order_id]
        assert stop.symbol == symbol
        assert stop.kind is OrderKind.STOP_MARKET
        assert stop.status is OrderStatus.OPEN
        assert stop.reduce_only
        assert stop.side is Side(side).exit_order_side
        assert stop.quantity == Decimal(quantity)
        held = book.positions[symbol]
        assert (held.side, held.quantity) == (Side(side), Decimal(quantity))


def open_stops(book: PaperState) -> Counter[str]:
    return Counter(
        o.symbol
        for o in book.orders.values()
        if o.kind is OrderKind.STOP_MARKET and o.status is OrderStatus.OPEN
    )


@pytest.mark.slow
def test_kill_9_leaves_every_position_protected_and_a_restart_resumes(tmp_path: Path) -> None:
    opening = Daemon.start(tmp_path, **OPEN)
    eventually(lambda: protected_positions(opening), 90, "positions protected by stops")
    assert opening.stop(signal.SIGTERM) == 0, opening.stderr[-2000:]
    stopped_ms = replay_clock_ms(tmp_path)

    quiet = Daemon.start(tmp_path, **QUIET)
    eventually(lambda: replay_clock_ms(quiet) > stopped_ms, 90, "a cycle after the restart")
    assert quiet.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_ms = replay_clock_ms(tmp_path)
    positions = query(tmp_path / DATABASE, POSITIONS_SQL)
    assert positions
    assert_protected(positions, paper_exchange(tmp_path))

    resumed = Daemon.start(tmp_path, **RESUME)
    eventually(
        lambda: replay_clock_ms(resumed) > killed_ms + 3_600_000,
        90,
        "an hour of market time after the restart",
    )
    assert resumed.stop(signal.SIGTERM) == 0, resumed.stderr[-2000:]
    (ready,) = resumed.named("runtime_ready")
    assert ready["open_positions"] == len(positions)
    book = paper_exchange(tmp_path)
    still_open = query(tmp_path / DATABASE, POSITIONS_SQL)
    assert_protected(still_open, book)
    assert open_stops(book) == Counter(symbol for symbol, *_ in still_open)
    assert set(book.positions) == {symbol for symbol, *_ in still_open}
