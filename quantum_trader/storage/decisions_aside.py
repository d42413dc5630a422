"""A backtest's decisions inserted into its database by a process of their own, beside the
replay.

A year's replay records ≈ 100k decisions, and SQLite's inserts of them kept it waiting ≈ 0.35 s:
aiosqlite's thread needs the GIL back after each row, which the replay holds, so each batch was
written while the replay waited for it. A process on the machine's other core inserts them
instead. Each full batch of the repository's (rows as encoded for the table) goes to it pickled
over its stdin, which is widened to hold a batch so the replay does not wait for the process to
read it; it commits each batch in one transaction, as the repository would.

It is a speed-up, never a dependency: should the process fail to start, die, stop reading its
batches (`SEND_WITHIN_S`) or not end in time, one warning line, and the repository writes the
rest itself, from the rows the table holds on. The table is the only witness believed: each
batch is one transaction, so its highest id says which batches are in whole. A batch is kept
(pickled) until the table is seen to hold it, at the next batch's hand-over (at most a few
kept). No decision is lost or written twice, and they keep the order they were made in. The
child (decisions_writer.py, standard library only, so it starts at once) runs at a lower
priority (nice 10: never urgent, the replay first), ignores SIGINT (a terminal's Ctrl-C reaches
the process group; the backtest decides what it means) and ends with its stdin.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import subprocess
import time
from pathlib import Path
from typing import IO

from quantum_trader.helper_process import start_helper
from quantum_trader.log import get_logger
from quantum_trader.storage import decisions_writer
from quantum_trader.storage.tables import Row

log = get_logger("storage")

HEADER_BYTES = decisions_writer.HEADER_BYTES  # a batch's pickled size, before it
PIPE_BYTES = 1 << 20  # stdin's capacity asked for: a batch of 5,000 decisions is ≈ 0.6 MB
# A batch's hand-over waits this long for room in the pipe: a process that stopped reading
# (frozen, stopped) is then given up on rather than holding the replay for good.
SEND_WITHIN_S = 30.0


class DecisionsAside:
    """The writer process, and the batches not known to be in the table yet."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        errors: IO[bytes],
        before: int,
        send_within_s: float = SEND_WITHIN_S,
    ) -> None:
        self._process = process
        self._send_within_s = send_within_s
        self._errors = errors  # the process's stderr: a file, which never fills up as a pipe
        self._before = before  # the table's highest id when the process started
        self._sent = 0  # rows sent
        self._batches: list[tuple[int, int, bytes]] = []  # (rows sent before, after, pickled)
        self._failed = ""  # why the process was given up on
        assert process.stdin is not None  # started with a pipe
        widen = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux; elsewhere a write may wait
        with contextlib.suppress(OSError):  # above the system's limit: as it is
            if widen is not None:
                fcntl.fcntl(process.stdin.fileno(), widen, PIPE_BYTES)
        os.set_blocking(process.stdin.fileno(), False)  # written by `_hand_over`, with a limit

    @classmethod
    def start(
        cls, database: Path, before: int, insert: str, busy_timeout_ms: int
    ) -> DecisionsAside | None:
        """The process inserting into `database` with the statement `insert`, whose decisions
        table's highest id is `before`; None (with a warning) when none can start."""
        started = start_helper(
            decisions_writer.__name__,
            [str(database), insert, str(busy_timeout_ms)],
            subprocess.DEVNULL,
            "decisions_process_unavailable",
            "written here",
        )
        return cls(*started, before) if started is not None else None

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, rows: list[Row]) -> bool:
        """Hand a batch to the process, kept until the table is seen to hold it (`written`);
        False once the process has failed: then `finish`, and write what `unwritten` gives."""
        if self._failed:
            return False
        batch = pickle.dumps(rows, protocol=5)
        self._batches.append((self._sent, self._sent + len(rows), batch))
        self._sent += len(rows)
        stdin = self._process.stdin
        assert stdin is not None
        try:
            handed = _hand_over(
                stdin.fileno(),
                len(batch).to_bytes(HEADER_BYTES, "little") + batch,
                self._send_within_s,
            )
        except OSError as error:  # the process is gone
            self._failed = f"not reading its batches: {error}"
            return False
        if not handed:  # alive but not reading: ended, so that it writes nothing more
            self._failed = f"not reading its batches within {self._send_within_s:g} s"
            self._process.kill()
            return False
        return True

    def written(self, held: int) -> None:
        """Forget the batches the table holds, `held` being its highest id: each batch is one
        transaction, so those up to it are in whole."""
        committed = held - self._before
        while self._batches and self._batches[0][1] <= committed:
            self._batches.pop(0)

    def finish(self, timeout_s: float) -> None:
        """End the process: its stdin closed, it commits what it has and exits; killed after
        `timeout_s`. Blocks (a caller on an event loop runs it in a thread)."""
        process = self._process
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self._failed = self._failed or f"not done after {timeout_s:g} s"
        if process.returncode != 0 and not self._failed:
            self._errors.seek(0)
            err = self._errors.read().decode(errors="replace").strip().splitlines()[-1:]
            self._failed = f"exit code {process.returncode}: {err[0] if err else 'no output'}"
        self._errors.close()

    def unwritten(self, held: int) -> list[Row]:
        """After `finish`: the rows sent that the table does not hold, `held` being its
        highest id (one warning line when there are any)."""
        self.written(held)
        committed = held - self._before
        rows: list[Row] = []
        for start, _, batch in self._batches:
            sent: list[Row] = pickle.loads(batch)  # noqa: S301 (pickled by this process)
            rows += sent[max(0, committed - start) :]
        if rows or self._failed:
            why = self._failed or "exited without writing them"
            error = f"{why}; {len(rows)} of {self._sent} rows not in the database"
            log.warning("decisions_process_failed", error=error, then="written here")
        return rows


def _hand_over(descriptor: int, data: bytes, within_s: float) -> bool:
    """Write all of `data` to the non-blocking `descriptor`, waiting for room at most
    `within_s` in all; False when it did not fit in time (OSError: the reader is gone)."""
    view, deadline = memoryview(data), time.monotonic() + within_s
    while view:
        try:
            view = view[os.write(descriptor, view) :]
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [descriptor], [], left)[1]:
                return False
    return True
