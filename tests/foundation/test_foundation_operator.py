"""Operator commands against a running daemon: read-only views, and requests it carries out."""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path

import pytest
from daemon_harness import Daemon, cli, eventually


@pytest.mark.slow
def test_operator_commands_work_while_the_daemon_runs(tmp_path: Path) -> None:
    daemon = Daemon.start(
        tmp_path,
        QT_MARKET__REPLAY_START="2025-09-12T00:00:00Z",
        QT_MARKET__REPLAY_SPEED="3000",
        QT_EXECUTOR__HEARTBEAT_INTERVAL_S="0.2",
    )
    try:
        eventually(lambda: daemon.query("SELECT 1 FROM positions"), 120, "an open position")
        eventually(
            lambda: (tmp_path / "portfolio_analytics.json").exists() or None, 30, "analytics"
        )
        status = daemon.cli("status")
        assert status.returncode == 0, status.stderr
        for shown in ("Portfolio analytics", "VaR historical", "effective positions", "governor"):
            assert shown in status.stdout, shown
        for command in ("positions", "trades"):
            assert daemon.cli(command).returncode == 0, command

        close_all_carried_out(daemon)
        lift = daemon.cli("lift-blacklist", "INJ/USDT:USDT")  # INJ is not blacklisted
        assert lift.returncode == 1
        assert "INJ/USDT:USDT is not blacklisted (nothing to lift)" in lift.stderr
        assert daemon.cli("reset-halt", "--operator", "test-desk").returncode == 0
        eventually(
            lambda: [e for e in daemon.logged_so_far("governor_event") if e["kind"] == "RESET"],
            60,
            "the governor's reset",
        )
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0
    flattened = daemon.named("flattened")
    assert flattened
    assert flattened[0]["reason"] == "MANUAL"
    assert daemon.named("operator_close_all")
    resets = [e for e in daemon.named("governor_event") if e["kind"] == "RESET"]
    assert resets[0]["operator"] == "test-desk"
    (pause,) = [e for e in daemon.named("governor_event") if e["breaker"] == "OPERATOR_PAUSED"]
    assert pause["kind"] == "TRIPPED"  # close-all paused entries, and reset-halt kept the pause
    assert pause["operator"] == "operator"


def close_all_carried_out(daemon: Daemon) -> None:
    """File close-all and check the daemon carries it out: every position it holds then is
    closed at market as MANUAL, and the account ends flat (new entries are paused).

    At replay speed a stop can close a position between any check of ours and the moment the
    daemon takes the request (it once closed both 0.7 s before): the daemon's `flattened` line
    names the positions close-all found open and closed, so the test checks exactly those, and
    waits for a position right before filing so that there usually is one.
    """
    eventually(lambda: daemon.query("SELECT 1 FROM positions"), 120, "a position to close")
    assert daemon.cli("close-all").returncode == 0
    flattened = eventually(lambda: daemon.logged_so_far("flattened"), 60, "close-all done")[0]
    assert flattened["reason"] == "MANUAL"
    for symbol in flattened["closing"]:
        manual = f"SELECT 1 FROM closed_trades WHERE exit_reason = 'MANUAL' AND symbol = '{symbol}'"
        eventually(partial(daemon.query, manual), 60, f"{symbol} closed by close-all")
    eventually(lambda: not daemon.query("SELECT 1 FROM positions"), 60, "the account flat")


def test_read_only_commands_name_a_missing_database(tmp_path: Path) -> None:
    done = cli(tmp_path, "status")
    assert done.returncode == 1
    assert "no database at" in done.stderr


def test_read_only_commands_name_a_database_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "quantum_trader.db").mkdir()
    done = cli(tmp_path, "status")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: {tmp_path / 'quantum_trader.db'} is a directory, not a database file: move it "
        "aside; the daemon creates its database there"
    )


def test_status_names_the_governors_state_and_when_it_ends() -> None:
    from datetime import UTC, datetime

    from quantum_trader.cli_operator import _governor_line
    from quantum_trader.gates.governor import (
        Breaker,
        GovernorDecision,
        GovernorState,
        Trip,
    )

    assert _governor_line(None) == "ACTIVE (no breaker in force)"
    assert _governor_line(GovernorState().to_dict()) == "ACTIVE (no breaker in force)"  # cleared
    until = datetime(2025, 10, 11, tzinfo=UTC)
    trip = Trip(Breaker.DAILY_DRAWDOWN, GovernorDecision.NO_NEW_TRADES, until, until, "dd 0.031")
    line = _governor_line(GovernorState(trips=(trip,)).to_dict())
    assert line == "REDUCING: NO_NEW_TRADES until 2025-10-11T00:00:00+00:00"
