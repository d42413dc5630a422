"""Operator requests: an unknown symbol is a usage error (exit 2); with no daemon running a
request is refused (exit 1) and nothing is filed; with one running, the user learns which."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_harness import DATABASE, Daemon, cli, eventually
from damage_fixtures import contents, data_dir, stopped_daemon_template

from quantum_trader.ops.data_dir import hold_data_dir, read_lock
from quantum_trader.ops.presence import STOPPING_FILE, DaemonPresence, daemon_presence

__all__ = ["data_dir", "stopped_daemon_template"]
REQUESTS = {
    "close-all": ("close-all",),
    "reset-halt": ("reset-halt",),
    "lift-blacklist": ("lift-blacklist", "INJ/USDT:USDT"),
    "pause": ("pause",),
    "resume": ("resume",),
}


def pending_requests(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{data_dir / DATABASE}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, payload FROM state WHERE namespace = 'operator'")
        found = [(str(k), str(p)) for k, p in rows if p != "{}"]
    conn.close()
    return found


@pytest.mark.parametrize("symbol", ["FOO", "btc/usdt:usdt", "X" * 100_000])
def test_lifting_the_blacklist_of_an_unknown_symbol_exits_2(data_dir: Path, symbol: str) -> None:
    before = contents(data_dir)
    done = cli(data_dir, "lift-blacklist", symbol)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    shown = symbol if len(symbol) <= 64 else symbol[:64] + "…"  # not 100 kB echoed back
    assert line.startswith(f"error: lift-blacklist: {shown!r} is neither a configured symbol")
    assert line.endswith("nor one the daemon has traded")
    assert "INJ/USDT:USDT" in line  # the configured symbols are listed
    assert contents(data_dir) == before


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--operator", "", "empty; say who asks"),
        ("--operator", "\x1b[31mred", "one line of printable text"),  # a terminal escape
        ("--reason", "first\nsecond", "one line of printable text"),
        ("--reason", "x" * 201, "at most 200 characters"),
    ],
)
def test_an_operator_or_reason_that_is_not_one_plain_line_exits_2(
    data_dir: Path, option: str, value: str, why: str
) -> None:
    """They are shown later in status, on the page and in notifications."""
    before = contents(data_dir)
    done = cli(data_dir, "pause", option, value)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {option}: ")
    assert why in line
    assert contents(data_dir) == before


@pytest.mark.parametrize("command", list(REQUESTS))
def test_a_request_with_no_daemon_running_is_refused_and_not_filed(
    data_dir: Path, command: str
) -> None:
    before = contents(data_dir)
    done = cli(data_dir, *REQUESTS[command])
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: no daemon is running on {data_dir} (last heartbeat ")
    assert f": {' '.join(REQUESTS[command])} was not requested" in line
    assert "was not requested" in line
    assert pending_requests(data_dir) == []
    assert contents(data_dir) == before


def test_a_request_while_the_daemon_stops_is_refused_and_nothing_filed(data_dir: Path) -> None:
    """An outside probe filed close-all a second after SIGTERM: accepted, never carried out."""
    with hold_data_dir(data_dir):  # as the stopping daemon still holds it
        (data_dir / STOPPING_FILE).touch()
        done = cli(data_dir, "close-all")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: a daemon is stopping on {data_dir} (PID")
    assert "close-all was not requested, as the stopping daemon would not carry it out" in line
    assert pending_requests(data_dir) == []


def test_a_request_to_a_running_daemon_names_it_and_status_shows_it(data_dir: Path) -> None:
    (data_dir / STOPPING_FILE).touch()  # a previous daemon's: the next start clears it
    daemon = Daemon.start(data_dir, QT_MARKET__REPLAY_SPEED="1")
    try:
        eventually(lambda: read_lock(data_dir).pid == daemon.process.pid, 30, "the daemon's lock")
        eventually(lambda: not (data_dir / STOPPING_FILE).exists(), 30, "the old mark cleared")
        # What an operator types is shown as typed, never read as Rich markup.
        typed = "[/bold] tail [link=http://x]y[/link]"
        assert daemon.cli("pause", "--reason", typed).returncode == 0

        def status_with_the_reason() -> str | None:
            answer = daemon.cli("status")
            assert answer.returncode == 0, answer.stderr  # was: a MarkupError traceback
            return answer.stdout if typed in answer.stdout else None

        eventually(status_with_the_reason, 30, "the reason in status")
        assert daemon.cli("resume").returncode == 0
        done = daemon.cli("reset-halt", "--operator", "desk")
        assert done.returncode == 0, done.stderr
        said = " ".join(done.stdout.split())
        assert said.startswith(f"reset-halt requested: a daemon is running on {data_dir} (PID")
        assert str(daemon.process.pid) in said
        status = " ".join(w for w in daemon.cli("status").stdout.split() if w != "│")
        assert "daemon a daemon is running on" in status  # the path may wrap in the table
        assert f"(PID {daemon.process.pid}, last heartbeat" in status
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    assert (data_dir / STOPPING_FILE).exists()


def test_presence_describes_the_heartbeat_age(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    assert daemon_presence(tmp_path, now).describe() == (
        f"no daemon is running on {tmp_path} (no heartbeat yet)"
    )
    (tmp_path / "heartbeat").write_text(now.isoformat())
    later = daemon_presence(tmp_path, now + timedelta(hours=3))
    assert later == DaemonPresence(tmp_path, False, None, later.heartbeat_age_s)
    assert later.describe() == f"no daemon is running on {tmp_path} (last heartbeat 3.0 h ago)"
    running = DaemonPresence(tmp_path, True, 42, 12.4)
    assert (
        running.describe() == f"a daemon is running on {tmp_path} (PID 42, last heartbeat 12 s ago)"
    )


def test_a_traded_symbol_outside_market_symbols_is_known(data_dir: Path) -> None:
    """With a volume universe the daemon trades symbols market.symbols does not list; one with
    a trading record passes the symbol check (and meets the no-daemon refusal instead)."""
    with sqlite3.connect(data_dir / DATABASE) as conn:
        conn.execute(
            "INSERT INTO state (namespace, key, payload, updated_at) VALUES "
            "('symbol_stats', 'AVAX/USDT:USDT', '{}', '2025-09-12T00:00:00Z')"
        )
    conn.close()
    done = cli(data_dir, "lift-blacklist", "AVAX/USDT:USDT")
    assert done.returncode == 1
    assert "lift-blacklist AVAX/USDT:USDT was not requested" in done.stderr


QUIET_MONITOR = {
    "QT_MARKET__REPLAY_SPEED": "1",
    # The monitor ticks at the start, then not for an hour: a request filed meanwhile is
    # still pending when SIGTERM comes.
    "QT_MONITOR__INTERVAL_S": "3600",
    "QT_OPERATOR__REQUEST_MAX_AGE_S": "7210",
}


def filed_while_running(daemon: Daemon, *request: str) -> None:
    """`request` filed once the daemon's loops have stepped (its monitor ticked at start)."""
    eventually(lambda: daemon.logged_so_far("cycle_completed"), 60, "the first cycle")
    done = daemon.cli(*request)
    assert done.returncode == 0, done.stderr
    assert "or as it stops, if it is stopped first" in " ".join(done.stdout.split())
    assert [key for key, _ in pending_requests(daemon.data_dir)] == [request[0].replace("-", "_")]


def test_a_request_pending_as_the_daemon_stops_is_carried_out_by_the_stop(data_dir: Path) -> None:
    """Was (found by an outside-style probe, 2026-12-06): `pause` (or `close-all`) then a
    restart within a tick: the command said it was requested, the daemon stopped without a
    word, and the next start dropped it as filed before it started."""
    daemon = Daemon.start(data_dir, **QUIET_MONITOR)
    try:
        filed_while_running(daemon, "pause", "--reason", "before a restart")
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    assert [e["request"] for e in daemon.named("operator_request_done")] == ["pause"]
    assert daemon.named("operator_request_not_done") == []
    assert pending_requests(data_dir) == []
    status = json.loads(cli(data_dir, "status", "--json").stdout)
    assert status["trading"]["paused"]["detail"] == "paused by operator: before a restart"
    assert status["operator_requests"] == []


def test_a_request_the_stop_cannot_carry_out_is_said_not_done(data_dir: Path) -> None:
    """A grace too short for the loops to end cuts them: the keeper may be half-way through a
    step, so the stop sends nothing more; the request is said not done, in the log and by
    `status`, rather than left to look pending."""
    daemon = Daemon.start(data_dir, **QUIET_MONITOR, QT_EXECUTOR__SHUTDOWN_GRACE_S="0.000001")
    try:
        filed_while_running(daemon, "close-all")
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    (said,) = daemon.named("operator_request_not_done")
    assert said["level"] == "error"
    assert said["request"] == "close_all"
    assert said["todo"] == "ask again once a daemon runs (the next start drops this one)"
    status = json.loads(cli(data_dir, "status", "--json").stdout)
    (left,) = status["operator_requests"]
    assert left["not_carried_out"].startswith("not carried out: no daemon is running")
    shown = " ".join(w for w in cli(data_dir, "status").stdout.split() if w != "│")
    assert "close_all (by operator at" in shown
    assert "not carried out: no daemon is running (it stopped first)" in shown
