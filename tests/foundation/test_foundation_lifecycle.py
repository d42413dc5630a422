"""The daemon as users run it: the real CLI in a subprocess, accelerated time, SIGTERM while an
order is in flight. It must exit 0 within the grace period, leave every open position
protected by its stop order on the exchange, and leave no half-written order behind."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from conftest import REPO
from daemon_harness import DATABASE, Daemon, eventually, paper_exchange, query

GRACE_S = 8.0
START = "2025-09-12T00:00:00Z"


@pytest.mark.slow
def test_sigterm_with_an_order_in_flight_exits_cleanly_and_protected(tmp_path: Path) -> None:
    daemon = Daemon.start(
        tmp_path,
        QT_MARKET__REPLAY_START=START,
        QT_MARKET__REPLAY_SPEED="3000",
        QT_EXCHANGE__PAPER_ORDER_LATENCY_S="0.25",
        QT_EXECUTOR__SHUTDOWN_GRACE_S=str(GRACE_S),
    )
    eventually(
        lambda: (
            daemon.query("SELECT 1 FROM positions")
            and daemon.query("SELECT 1 FROM orders WHERE status = 'PENDING'")
        ),
        timeout_s=120,
        what="an open position and an order in flight",
    )
    assert daemon.stop(signal.SIGTERM, timeout_s=GRACE_S + 10) == 0, daemon.stderr[-2000:]
    database = tmp_path / DATABASE
    assert query(database, "SELECT * FROM orders WHERE status IN ('PENDING', 'UNKNOWN')") == []
    positions = query(database, "SELECT symbol, quantity, stop_order_id FROM positions")
    assert positions
    exchange = paper_exchange(tmp_path)
    for symbol, quantity, stop_order_id in positions:
        stop = exchange.orders[stop_order_id]
        assert stop.symbol == symbol
        assert stop.status.value == "OPEN"
        assert stop.kind.value == "STOP_MARKET"
        assert stop.reduce_only
        assert str(stop.quantity) == str(quantity)
    events = [e["event"] for e in daemon.events]
    for expected in (
        "market_data_loaded",
        "runtime_ready",
        "signals",
        "decision",
        "position_opened",
        "shutdown_requested",
        "daemon_stopped",
    ):
        assert expected in events, expected
    assert events[-1] == "daemon_stopped"


@pytest.mark.slow
def test_sigint_on_an_idle_daemon_stops_at_once(tmp_path: Path) -> None:
    daemon = Daemon.start(tmp_path, QT_MARKET__REPLAY_START=START, QT_MARKET__REPLAY_SPEED="1")
    eventually(lambda: daemon.query("SELECT 1 FROM state"), 60, "the daemon to start")
    assert daemon.stop(signal.SIGINT, timeout_s=15) == 0
    assert daemon.events[-1]["event"] == "daemon_stopped"
    events = [e["event"] for e in daemon.events]
    documented = readme_first_events()
    assert [e for e in events if e in documented][: len(documented)] == documented, events[:8]
    assert events[0] == documented[0]


def readme_first_events() -> list[str]:
    """The events the README's "What you see" lists before the cycles ("In order: `a`, `b`,
    then every 30 s ..."): it listed `market_data_loaded` first, though `market_data_selected`
    comes before it."""
    text = " ".join((REPO / "README.md").read_text().split())
    found = re.search(r"In order: ((?:`\w+`, )+)then every 30 s", text)
    assert found, "README: the 'In order: ..., then every 30 s' sentence"
    return re.findall(r"`(\w+)`", found.group(1))


@pytest.mark.slow
def test_sighup_stops_the_daemon_in_order_as_sigterm_does(tmp_path: Path) -> None:
    """A closed terminal (an SSH session dropped under `make run`) sends SIGHUP. Was (found by
    an outside-style probe, 2026-12-04): the process killed on the spot, exit 129, without the
    ordered stop (no order in flight finished, no `stopping` mark, no notification)."""
    daemon = Daemon.start(tmp_path, QT_MARKET__REPLAY_START=START, QT_MARKET__REPLAY_SPEED="1")
    eventually(lambda: daemon.query("SELECT 1 FROM state"), 60, "the daemon to start")
    assert daemon.stop(signal.SIGHUP, timeout_s=15) == 0, daemon.stderr[-2000:]
    assert daemon.events[-1]["event"] == "daemon_stopped"
    assert "shutdown_requested" in [e["event"] for e in daemon.events]
