"""Issue 3: a governor halt survives a restart of the real daemon.

`quantum-trader run` replays the bundled market from 20:30 UTC on 2025-10-10 at 3,000x. The
cascade's first 5 m bar (BTC -1.3 % at 20:55) trips the volatility-spike breaker: trading goes
to REDUCING. The test waits for that in the `state` table, stops the daemon with SIGTERM and
starts it again on the same data directory. The restarted daemon must restore the same trip
(same start, same end), log governor_state_restored, refuse the candidates the rule agent
offers after the restart, and send no entry order at all.

The spike cooldown is raised from 1 h to 48 h of market time: at 3,000x one hour passes in
1.2 s of wall time, less than a restart takes, so a default cooldown would end on its own
and prove nothing about persistence.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DATABASE, Daemon, eventually, query, saved_state

ENV = {
    "QT_MARKET__REPLAY_START": "2025-10-10T20:30:00Z",
    "QT_MARKET__REPLAY_SPEED": "3000",
    "QT_GOVERNOR__SPIKE_COOLDOWN_S": "172800",
    "QT_EXECUTOR__SHUTDOWN_GRACE_S": "3",
}
GOVERNOR_DENIALS = "SELECT reason FROM decisions WHERE gate = 'governor' AND approved = 0"


def halted(daemon: Daemon) -> dict[str, Any] | None:
    state = saved_state(daemon, "governor", "state")
    return state if state and state["trading_state"] != "ACTIVE" else None


def denied_by_governor_after(daemon: Daemon, moment: str) -> list[tuple[str]]:
    return daemon.query(f"{GOVERNOR_DENIALS} AND time > '{moment}'")


@pytest.mark.slow
def test_a_halt_from_the_cascade_is_still_in_force_after_a_restart(tmp_path: Path) -> None:
    first = Daemon.start(tmp_path, **ENV)
    before = eventually(lambda: halted(first), 90, "the governor to leave ACTIVE")
    assert first.stop(signal.SIGTERM) == 0, first.stderr[-2000:]
    stopped = saved_state(tmp_path, "replay", "clock")
    assert stopped is not None
    tripped = {(t["breaker"], t["since"], t["until"]) for t in before["trips"]}
    assert "VOLATILITY_SPIKE" in {breaker for breaker, _, _ in tripped}

    second = Daemon.start(tmp_path, **ENV)
    restart_at = stopped["now"]
    eventually(
        lambda: denied_by_governor_after(second, restart_at),
        90,
        "a candidate refused by the governor after the restart",
    )
    assert second.stop(signal.SIGTERM) == 0, second.stderr[-2000:]

    (restored,) = second.named("governor_state_restored")
    assert restored["trading_state"] != "ACTIVE"
    (ready,) = second.named("runtime_ready")
    assert ready["trading_state"] == restored["trading_state"]
    after = saved_state(tmp_path, "governor", "state")
    assert after is not None
    still = {(t["breaker"], t["since"], t["until"]) for t in after["trips"]}
    assert tripped <= still, "a trip from before the restart was lost or re-tripped"
    database = tmp_path / DATABASE
    assert query(database, "SELECT * FROM orders WHERE reduce_only = 0") == []
    reasons = {r for (r,) in query(database, f"{GOVERNOR_DENIALS} AND time > '{restart_at}'")}
    assert reasons == {"NO_NEW_TRADES"}
