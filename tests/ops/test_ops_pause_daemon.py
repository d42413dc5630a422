"""Issue 13: `pause`, `resume` and `close-all` through the real CLI against the real daemon.

The daemon replays the bundled market at 3,000x with the rule agent, which opens positions
within seconds. `close-all` flattens and pauses: the status server, `status --json`, the
metrics, the notifications and the governor's decision lines say so; the pause survives a
restart of the daemon; `resume` ends it. The webhook receiver is a loopback server.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import Daemon, eventually, saved_state
from ops_builders import Receiver, get, status_url

ENV = {
    "QT_MARKET__REPLAY_START": "2025-09-12T00:00:00Z",
    "QT_MARKET__REPLAY_SPEED": "3000",
    "QT_SIGNALS__SOURCE": "rules",
    "QT_EXECUTOR__HEARTBEAT_INTERVAL_S": "0.2",
    "QT_EXECUTOR__SHUTDOWN_GRACE_S": "5",
}
PAUSED = "SELECT time FROM decisions WHERE gate = 'governor' AND reason = 'OPERATOR_PAUSED'"


def status_json(daemon: Daemon) -> dict[str, Any]:
    done = daemon.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def listed_positions(daemon: Daemon) -> list[dict[str, Any]]:
    """The open positions `positions --json` lists."""
    done = daemon.cli("positions", "--json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)["positions"]
    return listed


def done_lines(daemon: Daemon, request: str) -> list[dict[str, Any]]:
    """The lines saying the daemon carried out `request` and deleted it."""
    lines = daemon.logged_so_far("operator_request_done")
    return [e for e in lines if e["request"] == request]


def paused(daemon: Daemon) -> dict[str, Any] | None:
    state = saved_state(daemon, "governor", "state")
    trips = state["trips"] if state else []
    return next((t for t in trips if t["breaker"] == "OPERATOR_PAUSED"), None)


@pytest.mark.slow
def test_close_all_pauses_across_a_restart_until_resume(tmp_path: Path) -> None:
    receiver = Receiver()
    env = {**ENV, "QT_NOTIFY__WEBHOOK_URL": receiver.url + "/hook"}
    first = Daemon.start(tmp_path, **env)
    try:
        eventually(lambda: first.query("SELECT 1 FROM positions"), 120, "an open position")
        eventually(lambda: (tmp_path / "marks.json").is_file() or None, 30, "marks.json")
        # At 3,000x a position may close on its own while the command starts: ask again.
        positions = eventually(lambda: listed_positions(first), 120, "positions listed")
        assert all(p["leverage"] >= 1 for p in positions)

        done = first.cli("close-all", "--operator", "desk")
        assert done.returncode == 0, done.stderr
        eventually(lambda: paused(first), 60, "the pause close-all sets")
        eventually(lambda: not first.query("SELECT 1 FROM positions"), 60, "flat")
        eventually(lambda: first.query(PAUSED), 60, "an entry refused with OPERATOR_PAUSED")
        # The request is deleted once carried out, after the flattening, while the cycles go
        # on refusing entries: wait for the line that says it is done.
        eventually(lambda: done_lines(first, "close_all"), 60, "close-all done")
        assert first.query("SELECT 1 FROM state WHERE namespace = 'operator'") == []

        document = status_json(first)
        assert document["trading"]["paused"]["detail"] == "close-all by desk"
        assert document["trading"]["why"][0].startswith("PAUSED since")
        live = get(status_url(first) + "/status").json()
        assert live["trading"]["paused"]["detail"] == "close-all by desk"
        # The gauge is set as the pause is seen, just before this notification is sent.
        eventually(lambda: "operator_paused" in receiver.kinds() or None, 30, "a notification")
        assert "qt_operator_paused 1.0" in get(status_url(first) + "/metrics").body.decode()
        again = first.cli("pause")
        assert again.returncode == 0
        assert "already paused" in again.stdout
    finally:
        assert first.stop(signal.SIGTERM) == 0, first.stderr[-2000:]

    second = Daemon.start(tmp_path, **env)
    try:
        eventually(lambda: second.logged_so_far("governor_state_restored"), 60, "the restore")
        moment = second.query("SELECT MAX(time) FROM decisions")[0][0]
        eventually(
            lambda: second.query(f"{PAUSED} AND time > '{moment}'"), 60, "a refusal after restart"
        )
        assert second.query("SELECT 1 FROM positions") == [], "re-entered while paused"
        assert status_json(second)["trading"]["paused"] is not None

        done = second.cli("resume", "--operator", "desk")
        assert done.returncode == 0, done.stderr
        eventually(lambda: not paused(second), 60, "the pause to end")
        eventually(lambda: second.query("SELECT 1 FROM positions"), 120, "an entry after resume")
        assert status_json(second)["trading"]["paused"] is None
        eventually(lambda: "operator_resumed" in receiver.kinds() or None, 30, "a notification")
        assert second.cli("resume").stdout.startswith("entries are not paused")
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.stderr[-2000:]
        receiver.close()
    paused_lines = first.named("operator_paused")
    assert [e["by"] for e in paused_lines] == ["desk"]
    assert [e["by"] for e in second.named("operator_resumed")] == ["desk"]
