"""Is a daemon running on this data directory? The lock's holder and the heartbeat's age.

The lock (ops/data_dir.py) is the authority: a daemon holds it from start to exit, and the
kernel releases it when the process dies. The heartbeat file, touched every
`executor.heartbeat_interval_s` of real time, tells whether the daemon that holds it is alive
and how long ago a stopped one last beat. Read-only: nothing is created or changed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from quantum_trader.errors import OperatorActionRequired
from quantum_trader.ops.data_dir import read_lock
from quantum_trader.record import record

HEARTBEAT_FILE = "heartbeat"
# Written by a daemon once it stops (SIGTERM, SIGINT, a CRITICAL health), removed at start:
# a request filed then would never be carried out.
STOPPING_FILE = "stopping"


@record
class DaemonPresence:
    """`running`: a process holds the data directory's lock. Ages are in seconds."""

    data_dir: Path
    running: bool
    pid: int | None
    heartbeat_age_s: float | None
    stopping: bool = False  # the running daemon has begun to stop

    def describe(self) -> str:
        """One line for a person: running or not, PID, and how old the last heartbeat is."""
        beat = (
            "no heartbeat yet"
            if self.heartbeat_age_s is None
            else f"last heartbeat {_age(self.heartbeat_age_s)} ago"
        )
        if self.running:
            who = f"PID {self.pid}" if self.pid else "PID not written yet"
            doing = "stopping" if self.stopping else "running"
            return f"a daemon is {doing} on {self.data_dir} ({who}, {beat})"
        return f"no daemon is running on {self.data_dir} ({beat})"


def daemon_presence(data_dir: Path, now: datetime) -> DaemonPresence:
    """Look at `data_dir` now (wall-clock time, timezone-aware)."""
    lock = read_lock(data_dir)
    stopping = lock.held and (data_dir / STOPPING_FILE).exists()
    return DaemonPresence(data_dir, lock.held, lock.pid, _heartbeat_age_s(data_dir, now), stopping)


def require_running_daemon(data_dir: Path, now: datetime, what: str) -> DaemonPresence:
    """The presence of the daemon that will carry out `what`; OperatorActionRequired when none
    runs (a request filed now would surprise whoever starts the daemon next, so none is)."""
    presence = daemon_presence(data_dir, now)
    if presence.stopping:
        raise OperatorActionRequired(
            f"{presence.describe()}: {what} was not requested, as the stopping daemon would not "
            "carry it out; ask again once a daemon runs"
        )
    if not presence.running:
        raise OperatorActionRequired(
            f"{presence.describe()}: {what} was not requested. Operator requests are carried "
            "out by the running daemon; start it (quantum-trader run) and ask again"
        )
    return presence


def _heartbeat_age_s(data_dir: Path, now: datetime) -> float | None:
    try:
        touched = (data_dir / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return None
    return max(now.timestamp() - touched, 0.0)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
