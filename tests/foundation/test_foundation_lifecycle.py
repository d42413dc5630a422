"""The daemon as users run it: the real CLI in a subprocess, accelerated time, SIGTERM while an
order is in flight. It must exit 0 within the grace period, leave every open position
protected by its stop order on the exchange, and leave no half-written order behind."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from daemon_process import eventually, log_events, output, query, start_daemon

from quantum_trader.execution.paper_state import load_state

GRACE_S = 8.0


@pytest.mark.slow
def test_sigterm_with_an_order_in_flight_exits_cleanly_and_protected(tmp_path: Path) -> None:
    daemon = start_daemon(
        tmp_path,
        QT_MARKET__REPLAY_SPEED="3000",
        QT_EXCHANGE__PAPER_ORDER_LATENCY_S="0.25",
        QT_EXECUTOR__SHUTDOWN_GRACE_S=str(GRACE_S),
    )
    database = tmp_path / "quantum_trader.db"
    try:
        eventually(
            lambda: (
                query(database, "SELECT 1 FROM positions")
                and query(database, "SELECT 1 FROM orders WHERE status = 'PENDING'")
            ),
            timeout_s=120,
            what="an open position and an order in flight",
        )
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=GRACE_S + 10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    stdout, stderr = output(tmp_path)
    assert daemon.returncode == 0, stderr[-2000:]
    assert query(database, "SELECT * FROM orders WHERE status IN ('PENDING', 'UNKNOWN')") == []
    positions = query(database, "SELECT symbol, quantity, stop_order_id FROM positions")
    assert positions
    exchange = load_state(tmp_path / "paper_exchange.json")
    assert exchange is not None
    for symbol, quantity, stop_order_id in positions:
        stop = exchange.orders[stop_order_id]
        assert stop.symbol == symbol
        assert stop.status.value == "OPEN"
        assert stop.kind.value == "STOP_MARKET"
        assert stop.reduce_only
        assert str(stop.quantity) == str(quantity)
    events = [e["event"] for e in log_events(stdout)]
    for expected in (
        "runtime_ready",
        "decision",
        "position_opened",
        "shutdown_requested",
        "daemon_stopped",
    ):
        assert expected in events, expected
    assert events[-1] == "daemon_stopped"


@pytest.mark.slow
def test_sigint_on_an_idle_daemon_stops_at_once(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, QT_MARKET__REPLAY_SPEED="1")
    try:
        eventually(lambda: (tmp_path / "quantum_trader.db").exists() or None, 60, "the database")
        daemon.send_signal(signal.SIGINT)
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        raise
    assert daemon.returncode == 0
    assert log_events(output(tmp_path)[0])[-1]["event"] == "daemon_stopped"
