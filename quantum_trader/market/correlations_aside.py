"""A recorded market's correlation matrices computed in a process of their own, beside a
backtest's replay.

The matrices do not depend on the account, so a process on the machine's other core can
compute every refresh period's at once while the replay runs; until its answer is in (≈ 0.5 s
into a year), the replay computes them itself, as before (correlations_ahead.py). Each matrix
is computed from the rows the view shows at its period's start, with `correlation_matrix` on
the same returns windows, so it is the one this process would compute, bit for bit (tested);
it is used only where the instant asked shows those rows.

It is a speed-up, never a dependency: should the process fail to start or to answer, one
warning line, and the replay computes every matrix itself. One job: the returns and the
schedule in on stdin (pickled by the parent that started the process, streamed without a
copy), the matrices out on stdout as two NumPy arrays (read without pickle, straight into
arrays of the shapes the job asks for), stderr into a file read for the warning. A thread of
the parent's waits for the answer, so the replay never does. The child ignores SIGINT (a
terminal's Ctrl-C reaches the process group; the backtest decides what it means) and ends
with its stdin; `close` kills it if it is still computing.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from quantum_trader.domain.correlation import CorrelationMatrix, correlation_matrix, returns_window
from quantum_trader.domain.market import FloatArray
from quantum_trader.helper_process import start_helper
from quantum_trader.log import get_logger
from quantum_trader.market.correlations_ahead import Rows
from quantum_trader.record import record
from quantum_trader.stop_signals import leave_stops_to_the_parent

log = get_logger("market")


@record
class CorrelationJob:
    """Every refresh period's rows from `first` on, and the returns they are windows of."""

    first: int  # the first period
    rows: tuple[Rows, ...]  # period first + i: each symbol shown, with its row
    returns: Mapping[str, FloatArray]  # each symbol's 5-minute returns, whole
    lookback: int


@record
class Matrices:
    """The job's answer: period first + i's matrix is values[i] over the symbols order[i]
    (indices into `symbols`; -1 and NaN past its last)."""

    first: int
    rows: tuple[Rows, ...]
    symbols: tuple[str, ...]
    order: npt.NDArray[np.int16]
    values: FloatArray

    def at(self, period: int, rows: Rows) -> CorrelationMatrix | None:
        """The matrix of `period` when it was computed from `rows`, else None."""
        computed = self.computed_at(period)
        return computed[1] if computed is not None and computed[0] == rows else None

    def computed_at(self, period: int) -> tuple[Rows, CorrelationMatrix] | None:
        """The matrix of `period` with the rows it was computed from; None past the job."""
        index = period - self.first
        if not 0 <= index < len(self.rows):
            return None
        order = self.order[index]
        n = int((order >= 0).sum())
        names = tuple(self.symbols[i] for i in order[:n].tolist())
        # A contiguous copy, as `correlation_matrix` makes: the mean sums it in the same order.
        return self.rows[index], CorrelationMatrix(
            names, np.ascontiguousarray(self.values[index, :n, :n])
        )


class CorrelationsAside:
    """The correlation process and the thread that waits for its answer."""

    def __init__(
        self, job: CorrelationJob, process: subprocess.Popen[bytes], errors: IO[bytes]
    ) -> None:
        self._job = job
        self._process = process
        self._errors = errors  # the process's stderr: a file, which never fills up as a pipe
        self._answer: Matrices | None = None
        self._closing = False
        self._waiting = threading.Thread(target=self._wait, name="correlations-aside", daemon=True)
        self._waiting.start()

    @classmethod
    def start(cls, job: CorrelationJob) -> CorrelationsAside | None:
        """The process computing `job`; None (with a warning) when none can start."""
        started = start_helper(
            __name__, [], subprocess.PIPE, "correlation_process_unavailable", "computed here"
        )
        return cls(job, *started) if started is not None else None

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def settled(self) -> bool:
        """Whether the process has answered, or failed to."""
        return not self._waiting.is_alive()

    def matrices(self) -> Matrices | None:
        """The answer once in (never waits); None before, or when the process failed."""
        return self._answer if self.settled else None

    def close(self) -> None:
        """End the process if it is still computing (a replay stopped or failed early)."""
        self._closing = True
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        self._waiting.join()
        self._errors.close()

    def _wait(self) -> None:
        process, answer, failed = self._process, None, ""
        assert process.stdin is not None  # started with pipes
        assert process.stdout is not None
        try:
            # Streamed (protocol 5 writes the arrays' memory as it is): no copy of the job.
            pickle.dump(self._job, process.stdin, protocol=5)
            process.stdin.close()
            answer = _read(process.stdout, self._job)
            process.stdout.close()  # a longer answer: the process may block; `close` ends it
        except OSError as error:  # a process that died before reading its job
            failed = str(error)
        process.wait()
        if process.returncode != 0:
            answer = None
        if answer is None and not self._closing:
            self._errors.seek(0)
            err = self._errors.read().decode(errors="replace").strip().splitlines()[-1:]
            last = err[0] if err else failed or "no error output"
            why = f"exit code {process.returncode}, not the matrices asked for: {last}"
            log.warning("correlation_process_failed", error=why, then="computed here")
        self._answer = answer


@contextlib.contextmanager
def correlations_aside(job: CorrelationJob | None) -> Iterator[CorrelationsAside | None]:
    """A correlation process computing `job` for the block (none without a job), ended when
    the block ends."""
    started = CorrelationsAside.start(job) if job is not None else None
    try:
        yield started
    finally:
        if started is not None:
            started.close()


def compute(job: CorrelationJob) -> tuple[npt.NDArray[np.int16], FloatArray]:
    """Every period's matrix: the order of its symbols and its values (see `Matrices`)."""
    symbols = list(job.returns)
    size = len(symbols)
    order = np.full((len(job.rows), size), -1, dtype=np.int16)
    values = np.full((len(job.rows), size, size), np.nan)
    for index, rows in enumerate(job.rows):
        windows = {s: returns_window(job.returns[s], last, job.lookback) for s, last in rows}
        matrix = correlation_matrix(windows, None, job.lookback)
        n = len(matrix.symbols)
        order[index, :n] = [symbols.index(s) for s in matrix.symbols]
        values[index, :n, :n] = matrix.values
    return order, values


def _read(stream: IO[bytes], job: CorrelationJob) -> Matrices | None:
    """The answer's matrices, read from `stream` into arrays of the shapes the job asks for
    (never a bigger one, whatever a header says); None unless it is exactly those."""
    size, periods = len(job.returns), len(job.rows)
    order = _read_array(stream, (periods, size), np.dtype(np.int16))
    values = _read_array(stream, (periods, size, size), np.dtype(np.float64))
    if order is None or values is None or stream.read(1):
        return None
    return Matrices(job.first, job.rows, tuple(job.returns), order, values)


def _read_array(
    stream: IO[bytes], shape: tuple[int, ...], dtype: np.dtype[Any]
) -> npt.NDArray[Any] | None:
    """One array in NumPy's format with this header, read straight into its memory."""
    try:
        if np.lib.format.read_magic(stream) != (1, 0):
            return None
        if np.lib.format.read_array_header_1_0(stream) != (shape, False, dtype):
            return None
    except (ValueError, EOFError):
        return None
    out = np.empty(shape, dtype)
    into = memoryview(out.data).cast("B")  # the array's own memory, as bytes
    if stream.readinto(into) != out.nbytes:  # type: ignore[attr-defined]
        return None
    return out


def main() -> None:
    """The child: compute the one job read from stdin."""
    leave_stops_to_the_parent()  # Ctrl-C and a hangup reach the group: the command decides
    job = sys.stdin.buffer.read()
    if not job:  # closed unused
        return
    order, values = compute(pickle.loads(job))  # noqa: S301 (written by the parent that started this process)
    with open(sys.stdout.fileno(), "wb", closefd=False) as out:  # buffered, whatever -u says
        write_array(out, order)
        write_array(out, values)
    sys.stderr.flush()
    os._exit(0)


def write_array(stream: IO[bytes], array: npt.NDArray[Any]) -> None:
    """`array` in NumPy's format 1.0, as `_read_array` reads it. Not `np.save`: onto a pipe
    through a buffered stream (`sys.stdout.buffer` unless PYTHONUNBUFFERED is set) its
    `tofile` fails, "obtaining file position failed" — so every backtest of a user without
    that variable fell back to computing here, with a warning (found 2026-12-05 running the
    suite as a user other than the machine's, whose environment sets it)."""
    array = np.ascontiguousarray(array)
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array))
    stream.write(array.data.cast("B"))


if __name__ == "__main__":
    main()
