"""Correlations computed in a correlation process: bit for bit the matrices the replay computes
itself, taken only where the rows agree, and whatever the process does (killed, a wrong
answer, Ctrl-C) the replay gets its matrices; no process outlives its block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, NoReturn

import numpy as np
import pytest
from daemon_harness import eventually, ignores_terminal_signals
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from quantum_trader.clock import ms_from_utc
from quantum_trader.config import Settings
from quantum_trader.domain.correlation import correlation_matrix, returns_window
from quantum_trader.execution.paper_markets import default_market_rules
from quantum_trader.helper_process import FALLBACK_WARNINGS
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.correlations_ahead import CorrelationsAhead
from quantum_trader.market.correlations_aside import (
    CorrelationJob,
    CorrelationsAside,
    Matrices,
    compute,
    correlations_aside,
)
from quantum_trader.market.model import MarketModel
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import recorded_model
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import SignalsSettings

STORE = CandleStore(bundled_sample_dir())
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
HOUR_MS = 3_600_000


def model_of(feed: ReplayFeed) -> MarketModel:
    """The backtest's model of `feed` (correlations a day ahead, as a backtest computes them)."""
    rules = default_market_rules(feed.symbols)
    return recorded_model(Settings(signals={"source": "rules"}), STORE, feed, AGENT, rules)


AGENT = RuleAgent(SignalsSettings())
FEED = ReplayFeed(STORE, SYMBOLS, "5m", 2500)
START_MS = ms_from_utc(FEED.start)
END_MS = START_MS + 20 * 86_400_000


def answered(aside: CorrelationsAside | None) -> Matrices:
    assert aside is not None
    eventually(lambda: aside.settled, 120, "the correlation process's answer")
    matrices = aside.matrices()
    assert matrices is not None, "the correlation process answered no matrices (warned why)"
    return matrices


@pytest.fixture(scope="module")
def computed_aside() -> Iterator[tuple[MarketModel, MarketModel]]:
    """The model taking its matrices from a correlation process that has answered, and one
    computing its own."""
    aside_model = model_of(FEED)
    with correlations_aside(aside_model.correlation_job(START_MS, END_MS)) as aside:
        answered(aside)
        assert aside is not None
        aside_model.correlations_from(aside.matrices)
        yield aside_model, model_of(FEED)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=20 * 288), min_size=1, max_size=40),
    on_the_hour=st.booleans(),
)
def test_correlations_computed_aside_are_the_ones_computed_here(
    computed_aside: tuple[MarketModel, MarketModel], steps: list[int], on_the_hour: bool
) -> None:
    """Bit for bit, with the same mean, at any instants in time order: on the hour (where the
    process computed at the instant asked) or between (where it did not, unless the rows
    agree)."""
    aside, here = computed_aside
    for step in sorted(steps):
        now = START_MS + step * 300_000
        now = now - now % HOUR_MS if on_the_hour else now
        mine = aside.state_at(now).view.correlations
        theirs = here.state_at(now).view.correlations
        assert mine is not None
        assert theirs is not None
        assert mine.symbols == theirs.symbols
        assert mine.values.tobytes() == theirs.values.tobytes()
        assert mine.mean_pairwise() == theirs.mean_pairwise()


def test_every_period_of_the_job_is_answered_as_computed_here() -> None:
    job = model_of(FEED).correlation_job(START_MS, END_MS)
    with correlations_aside(job) as aside:
        matrices = answered(aside)
    assert len(job.rows) == 20 * 24 + 1
    for index, rows in enumerate(job.rows):
        windows = {s: returns_window(job.returns[s], last, job.lookback) for s, last in rows}
        expected = correlation_matrix(windows, None, job.lookback)
        got = matrices.at(job.first + index, rows)
        assert got is not None
        assert got.symbols == expected.symbols
        assert got.values.tobytes() == expected.values.tobytes()


def not_computed_here(now_ms: int) -> NoReturn:
    raise AssertionError("computed here although the process answered")


@pytest.mark.parametrize("taken", ["one at a time", "a day ahead"])
def test_a_matrix_is_taken_only_for_the_rows_it_was_computed_from(taken: str) -> None:
    """From the answer itself, and as the replay takes it: a day of periods at a time."""
    job = model_of(FEED).correlation_job(START_MS, START_MS + 2 * HOUR_MS)
    with correlations_aside(job) as aside:
        matrices = answered(aside)
    at = matrices.at
    if taken == "a day ahead":
        ahead = CorrelationsAhead(24, HOUR_MS, job.lookback, not_computed_here)
        ahead.computed = lambda: matrices
        at = ahead.at
    rows = job.rows[1]
    moved = tuple((symbol, last + 1) for symbol, last in rows)
    assert at(job.first + 1, rows) is not None
    assert at(job.first + 1, moved) is None  # an instant later in the period
    assert at(job.first + 1, rows[:-1]) is None  # a symbol left out of the view
    assert at(job.first - 1, job.rows[0]) is None  # before the job
    assert at(job.first + len(job.rows), rows) is None  # after it
    assert at(job.first, job.rows[0]) is not None  # asked again, or back in time
    assert at(job.first + 1, rows) is not None


def small_job() -> CorrelationJob:
    return model_of(FEED).correlation_job(START_MS, START_MS + 3 * HOUR_MS)


def started(arguments: list[str]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """A child of this interpreter with `arguments`, its stderr into a file (closed by the
    CorrelationsAside given it)."""
    errors = tempfile.TemporaryFile()  # noqa: SIM115
    pipe = subprocess.PIPE
    child = subprocess.Popen([sys.executable, *arguments], stdin=pipe, stdout=pipe, stderr=errors)
    return child, errors


def test_a_killed_correlation_process_leaves_the_matrices_to_the_replay() -> None:
    with capture_logs() as logs:
        aside = CorrelationsAside.start(small_job())
        assert aside is not None
        os.kill(aside.pid, signal.SIGKILL)
        eventually(lambda: aside.settled, 120, "the process's end")
        assert aside.matrices() is None
        aside.close()
    warnings = [entry for entry in logs if entry["event"] == "correlation_process_failed"]
    assert len(warnings) == 1
    assert "exit code -9" in warnings[0]["error"]


_JOB = small_job()
SMALL = (len(_JOB.rows), len(_JOB.returns))  # periods, symbols
WRITES = "import numpy as np; from quantum_trader.market.correlations_aside import write_array; "
RIGHT = (  # the arrays the small job asks for, then `answer`'s more
    f"{WRITES}out = sys.stdout.buffer; "
    f"write_array(out, np.full({SMALL}, -1, dtype=np.int16)); "
    f"write_array(out, np.zeros(({SMALL[0]}, {SMALL[1]}, {SMALL[1]}))); "
)


@pytest.mark.parametrize(
    "answer",
    [
        "sys.stdout.buffer.write(b'not arrays')",
        f"{WRITES}write_array(sys.stdout.buffer, np.zeros((1, 3), dtype=np.int16))",
        # a header that claims a trillion rows: refused before anything is allocated
        "import numpy as np; out = sys.stdout.buffer; out.write(np.lib.format.magic(1, 0)); "
        "np.lib.format.write_array_header_1_0("
        "out, {'descr': '<i2', 'fortran_order': False, 'shape': (10**12, 3)})",
        RIGHT + "out.write(b'and more')",  # the right arrays, then bytes nobody asked for
        RIGHT.replace("np.zeros((", "np.zeros((1 + "),  # one matrix too many
        "",
        "raise SystemExit('computing failed')",
    ],
)
def test_a_correlation_process_without_its_matrices_leaves_them_to_the_replay(
    answer: str,
) -> None:
    script = f"import sys; sys.stdin.buffer.read(); {answer}"
    child, errors = started(["-c", script])
    with capture_logs() as logs:
        aside = CorrelationsAside(small_job(), child, errors)  # a stand-in child: `answer`
        eventually(lambda: aside.settled, 120, "the process's end")
        assert aside.matrices() is None
        aside.close()
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == [
        "correlation_process_failed"
    ]
    assert "correlation_process_failed" in FALLBACK_WARNINGS  # shown by the backtest command


@pytest.mark.parametrize("unbuffered", [None, "1"], ids=["buffered", "PYTHONUNBUFFERED"])
def test_the_correlation_process_answers_however_python_buffers_its_output(
    unbuffered: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was (found 2026-12-05, the suite run as a user whose environment, unlike the
    machine's, does not set PYTHONUNBUFFERED): the process wrote its answer with `np.save`
    onto `sys.stdout.buffer`, whose `tofile` fails through a buffered pipe ("obtaining file
    position failed"), so every backtest of such a user warned `correlation_process_failed`
    and computed every matrix itself."""
    if unbuffered is None:
        monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    else:
        monkeypatch.setenv("PYTHONUNBUFFERED", unbuffered)
    job = small_job()
    with capture_logs() as logs, correlations_aside(job) as aside:
        matrices = answered(aside)
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == []
    assert matrices.values.shape == (SMALL[0], SMALL[1], SMALL[1])
    order, values = compute(job)
    assert matrices.order.tobytes() == order.tobytes()
    assert matrices.values.tobytes() == values.tobytes()


def test_an_answer_of_the_arrays_asked_for_is_taken() -> None:
    child, errors = started(["-c", f"import sys; sys.stdin.buffer.read(); {RIGHT}"])
    aside = CorrelationsAside(small_job(), child, errors)  # the stand-in's answer: all zeros
    matrices = answered(aside)
    aside.close()
    assert matrices.values.shape == (SMALL[0], SMALL[1], SMALL[1])
    assert not matrices.values.any()


def test_ctrl_c_reaching_the_correlation_process_does_not_stop_it() -> None:
    child, errors = started(["-m", "quantum_trader.market.correlations_aside"])
    eventually(lambda: ignores_terminal_signals(child.pid), 60, "ignoring SIGINT, SIGHUP")
    os.kill(child.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the process group
    aside = CorrelationsAside(small_job(), child, errors)
    assert answered(aside) is not None
    aside.close()


@pytest.mark.parametrize("fails", [False, True])
def test_no_correlation_process_outlives_the_block_that_started_it(fails: bool) -> None:
    pid = 0
    try:
        with correlations_aside(model_of(FEED).correlation_job(START_MS, END_MS)) as aside:
            assert aside is not None
            pid = aside.pid
            if fails:
                raise RuntimeError("the replay failed")
    except RuntimeError:
        assert fails
    assert pid > 0
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(pid, 0)


def test_no_job_starts_no_process() -> None:
    with correlations_aside(None) as aside:
        assert aside is None


def test_returns_window_is_the_lookback_up_to_the_row_without_row_zero() -> None:
    returns = np.arange(10.0)
    assert returns_window(returns, 5, 3).tolist() == [3.0, 4.0, 5.0]
    assert returns_window(returns, 1, 3).tolist() == [1.0]
    assert returns_window(returns, 0, 3).tolist() == []


CANNOT_START = """
import sys
from structlog.testing import capture_logs
from quantum_trader.market.correlations_aside import CorrelationJob, CorrelationsAside

sys.executable = "/nonexistent/python3"  # an interpreter that is gone
with capture_logs() as logs:
    started = CorrelationsAside.start(CorrelationJob(0, (), {}, 3))
print(started is None, [entry["event"] for entry in logs])
"""


def test_a_correlation_process_that_cannot_start_leaves_the_matrices_to_the_replay() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CANNOT_START], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "True ['correlation_process_unavailable']"
    assert "correlation_process_unavailable" in FALLBACK_WARNINGS  # shown by the backtest
