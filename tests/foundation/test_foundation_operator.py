"""Operator commands against a running daemon: read-only views, and requests it carries out."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from daemon_process import cli, eventually, log_events, output, query, start_daemon


@pytest.mark.slow
def test_operator_commands_work_while_the_daemon_runs(tmp_path: Path) -> None:
    daemon = start_daemon(
        tmp_path,
        QT_MARKET__REPLAY_SPEED="3000",
        QT_EXECUTOR__HEARTBEAT_INTERVAL_S="0.2",
    )
    database = tmp_path / "quantum_trader.db"
    try:
        eventually(lambda: query(database, "SELECT 1 FROM positions"), 120, "an open position")
        eventually(
            lambda: (tmp_path / "portfolio_analytics.json").exists() or None, 30, "analytics"
        )
        status = cli(tmp_path, "status")
        assert status.returncode == 0, status.stderr
        for shown in ("Portfolio analytics", "VaR historical", "effective positions", "governor"):
            assert shown in status.stdout, shown
        for command in ("positions", "trades"):
            assert cli(tmp_path, command).returncode == 0, command

        assert cli(tmp_path, "close-all").returncode == 0
        eventually(
            lambda: query(database, "SELECT 1 FROM closed_trades WHERE exit_reason = 'MANUAL'"),
            60,
            "the daemon flattening on close-all",
        )
        assert cli(tmp_path, "lift-blacklist", "INJ/USDT:USDT").returncode == 0
        assert cli(tmp_path, "reset-halt", "--operator", "test-desk").returncode == 0
        eventually(
            lambda: [
                e for e in log_events(output(tmp_path)[0]) if e["event"] == "blacklist_lifted"
            ],
            60,
            "the daemon lifting the blacklist",
        )
        eventually(
            lambda: query(database, "SELECT 1 FROM state WHERE namespace = 'governor'"),
            60,
            "the governor's reset recorded",
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    assert daemon.returncode == 0
    events = log_events(output(tmp_path)[0])
    flattened = [e for e in events if e["event"] == "flattened"]
    assert flattened
    assert flattened[0]["reason"] == "MANUAL"
    resets = [e for e in events if e["event"] == "governor_event" and e.get("operator")]
    assert resets[0]["operator"] == "test-desk"


def test_read_only_commands_name_a_missing_database(tmp_path: Path) -> None:
    done = cli(tmp_path, "status")
    assert done.returncode == 1
    assert "no database at" in done.stderr
