"""Quiet when fast: repeated warnings become one line per interval, loop lag is measured, and
the end of a replay is one line and idle (the status server stays up until SIGTERM)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.http_exceptions import LineTooLong
from daemon_harness import Daemon, eventually
from ops_builders import get, status_url
from structlog.testing import capture_logs

from quantum_trader.clock import ManualClock
from quantum_trader.log import get_logger
from quantum_trader.loops import LoopWatch, periodic
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.ops.server import _RequestErrors

T0 = datetime(2025, 9, 1, tzinfo=UTC)
SAMPLE_END = datetime(2025, 12, 1, tzinfo=UTC)


def test_a_repeated_warning_is_logged_once_then_summarized_per_interval() -> None:
    warnings = RepeatedWarnings(get_logger("test"), 60.0)
    with capture_logs() as logs:
        for second in range(100):  # 100 overruns in 50 s: one line now
            warnings.warn("loop_overrun", "monitor", second * 0.5, sums=("skipped",), skipped=2)
        warnings.warn("loop_overrun", "executor", 10.0, skipped=1)  # another key: its own line
        assert [e["occurrences"] for e in logs] == [1, 1]
        warnings.flush(59.9)
        assert len(logs) == 2
        warnings.flush(60.0)  # the monitor's interval ended: one summary of the 99 repeats
        assert (logs[2]["occurrences"], logs[2]["skipped"], logs[2]["interval_s"]) == (99, 198, 60)
        warnings.flush(130.0)  # a quiet interval: nothing to say, the key is forgotten
        warnings.warn("loop_overrun", "monitor", 131.0, sums=("skipped",), skipped=1)
        assert logs[-1]["occurrences"] == 1  # logged at once again
        warnings.warn("loop_overrun", "monitor", 132.0, sums=("skipped",), skipped=1)
        warnings.close()  # shutdown: the pending count is not lost
        assert logs[-1]["occurrences"] == 1
        assert logs[-1]["skipped"] == 1
    assert [e["event"] for e in logs] == ["loop_overrun"] * len(logs)


class Recorder:
    """A LoopObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.overruns = 0
        self.failures: list[str] = []

    def on_loop_step(self, loop: str, interval_s: float, lag_s: float) -> None:
        self.lags.append(lag_s)

    def on_loop_overrun(self, loop: str) -> None:
        self.overruns += 1

    def on_loop_failure(self, loop: str, error: BaseException) -> None:
        self.failures.append(type(error).__name__)


async def test_loop_lag_is_zero_on_schedule_and_counts_the_skipped_ticks() -> None:
    clock, stopping, recorder = ManualClock(T0), asyncio.Event(), Recorder()
    steps: list[datetime] = []

    async def step(now: datetime) -> None:
        steps.append(now)
        if len(steps) == 2:
            clock.advance(75)  # this step took 2.5 intervals
        if len(steps) == 3:
            raise ValueError("one bad step")

    async def drive() -> None:
        for _ in range(8):
            for _ in range(50):  # let the loop run its step and go back to sleep
                await asyncio.sleep(0)
            clock.advance(30)
        stopping.set()

    watch = LoopWatch(observer=recorder)
    await asyncio.gather(periodic("executor", 30, clock, stopping, step, watch), drive())
    assert recorder.lags[:2] == [0.0, 0.0]
    # The second step ran from +30 to +105, so the tick due at +60 was missed (and +90): the
    # next step started when the driven clock reached +135, 75 s after it was due.
    assert recorder.lags[2] == 75.0
    assert all(lag < 30 for lag in recorder.lags[3:])  # back within one interval
    assert recorder.overruns == 1
    assert recorder.failures == ["ValueError"]
    assert watch.take() == (len(steps), 1, 1)


@pytest.mark.slow
def test_at_3000x_overruns_are_counted_but_not_logged_one_by_one(tmp_path: Path) -> None:
    daemon = Daemon.start(tmp_path, QT_MARKET__REPLAY_SPEED="3000")
    url = status_url(daemon)
    time.sleep(2.5)
    metrics = get(f"{url}/metrics").body.decode()
    assert daemon.stop(signal.SIGTERM) == 0
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("qt_loop_overruns_total{")
    )
    lines = daemon.named("loop_overrun")
    assert counted > 20  # a monitor tick every 1.7 ms cannot keep up
    first = [e for e in lines if e["occurrences"] == 1]
    assert len(first) <= 3  # one per loop, then a summary per minute (none yet)
    summaries = [e for e in lines if e["occurrences"] > 1]
    assert len(summaries) <= 3  # at shutdown the pending counts are logged, once per loop
    assert sum(e["occurrences"] for e in lines) >= counted


@pytest.mark.slow
def test_the_end_of_a_replay_is_one_line_and_idle_until_stopped(tmp_path: Path) -> None:
    start = SAMPLE_END - timedelta(minutes=30)
    daemon = Daemon.start(
        tmp_path, QT_MARKET__REPLAY_SPEED="600", QT_MARKET__REPLAY_START=start.isoformat()
    )
    url = status_url(daemon)
    eventually(lambda: daemon.logged_so_far("replay_finished"), 30, "the end of the replay")
    cycles = len(daemon.logged_so_far("cycle_completed"))
    time.sleep(1)  # 10 simulated minutes more: nothing new to do
    status = get(f"{url}/status").json()
    assert status["replay"]["finished"] is True
    assert any("ended" in reason for reason in status["trading"]["why"])
    assert get(f"{url}/health").status == 200
    assert daemon.process.poll() is None  # idle, not gone: the page and metrics stay up
    assert daemon.stop(signal.SIGTERM) == 0
    assert len(daemon.named("replay_finished")) == 1
    assert len(daemon.named("cycle_completed")) == cycles
    assert daemon.events[-1]["event"] == "daemon_stopped"


def test_the_servers_request_errors_are_one_line_a_kind_and_ours_keep_their_traceback() -> None:
    """aiohttp's errors about a client's request: a warning naming the class only (its text
    may quote the request, a token among them); a handler of ours that raised: an error line
    with its traceback. Both aggregated per kind."""
    handler = _RequestErrors(RepeatedWarnings(get_logger("test"), 60.0))

    def record(error: BaseException) -> logging.LogRecord:
        try:
            raise error
        except BaseException as raised:
            return logging.LogRecord("aiohttp", logging.ERROR, "", 0, "Error", (), (
                type(raised), raised, raised.__traceback__))  # fmt: skip

    with capture_logs() as logs:
        for _ in range(3):
            handler.emit(record(LineTooLong(b"Bearer secret-token-bytes", 8190)))
        handler.emit(record(KeyError("positions")))
    client, ours = logs
    assert client == {
        "component": "test",
        "event": "status_request_failed",
        "occurrences": 1,
        "error": "LineTooLong",
        "exc_info": False,
        "log_level": "warning",
    }
    assert "secret-token-bytes" not in repr(logs)
    assert ours["event"] == "status_handler_failed"
    assert ours["log_level"] == "error"
    assert isinstance(ours["exc_info"], KeyError)
