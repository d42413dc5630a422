"""The report's charts drawn in a process of their own, beside the backtest's.

Started before the replay, the chart process loads the chart library (matplotlib and the
report's modules, ≈ 0.9 s of CPU) on the machine's other core while the replay runs, so the
backtest's process never loads it. Given the inputs as soon as the replay ends, it draws the
charts (ASIDE) while this process saves the ledger and renders the page and report.json around
them: the decisions chart in a fork of itself, the others in itself. Its PNGs are the ones
`charts.draw` makes here, byte for byte (tested). It is a speed-up, never a dependency: should
it fail to start, to read its job or to answer (killed, stopped, out of memory, a broken
interpreter), this process draws those charts itself after one warning line; should the fork
fail, the chart process draws its chart itself.

One job: the inputs in on stdin (pickled, by the parent that started the process), the PNGs
out on stdout, each after its length (nothing the parent reads is unpickled); stderr is read
for the warning. The child runs at a lower priority (nice 10: its work is wanted only at the
end, the replay and its other helpers first) and ignores SIGINT, because a terminal's Ctrl-C
reaches the whole process group and the backtest alone decides what an interrupt means. It
ends with its stdin: an unused process is killed, and a dead parent closes the pipe. Having
answered, it exits without tearing down its libraries (≈ 0.1 s the parent would wait for).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
from collections.abc import AsyncIterator, Sequence

from quantum_trader.helper_process import (
    helper_command,
    helper_environment,
    keep_off_the_replay,
    on_every_cpu,
)
from quantum_trader.log import get_logger
from quantum_trader.report.chart_inputs import CHART_NAMES, ChartInputs
from quantum_trader.stop_signals import leave_stops_to_the_parent

log = get_logger("report")
# Every chart: drawn there in two processes while this one renders the page, where drawing
# any here would first load the library (≈ 0.2 s). A year's decisions chart takes ≈ 0.2–0.27 s
# (in a fork, its first draw), the equity and PnL charts ≈ 0.18 and 0.09 s: the two halves
# balanced so (a year's three charts in 0.27–0.29 s; 0.30–0.32 s with the equity one forked).
ASIDE = CHART_NAMES
FORKED = ("decisions_by_gate",)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A year's charts take ≈ 0.3 s: a process silent this long after its job is stuck.
ANSWER_WITHIN_S = 120.0


class ChartProcess:
    def __init__(
        self, process: asyncio.subprocess.Process, answer_within_s: float = ANSWER_WITHIN_S
    ) -> None:
        self._process = process
        self._answer_within_s = answer_within_s
        self._failed = ""  # why it was given up on before its answer was read

    @classmethod
    async def start(cls) -> ChartProcess | None:
        """A chart process loading its library; None (with a warning) when none can start."""
        if not sys.executable:  # an embedded interpreter: no Python to start
            return None
        try:
            process = await asyncio.create_subprocess_exec(
                *helper_command(__name__),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=helper_environment(),
            )
        except OSError as error:
            log.warning("chart_process_unavailable", error=str(error), then="drawn in process")
            return None
        keep_off_the_replay(process.pid)
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def send(self, inputs: ChartInputs) -> None:
        """Hand the process its job (before this process draws: a thread holding the GIL
        would slow the pipe's writes)."""
        stdin = self._process.stdin
        assert stdin is not None  # started with a pipe
        on_every_cpu(self._process.pid)  # the replay is over: both cores for the charts
        try:
            stdin.write(pickle.dumps(inputs))
            # A year's job is larger than the pipe: a process that stopped reading (frozen,
            # stopped) would hold the command here for good.
            await asyncio.wait_for(stdin.drain(), self._answer_within_s)
            stdin.close()
        except TimeoutError:
            self._failed = f"not reading its job within {self._answer_within_s:g} s"
            await self.close()
        # A dead process: told when its answer is read. Its pipe, closed, raises OSError on
        # asyncio's own loop and RuntimeError ("the handler is closed") on uvloop's.
        except (OSError, RuntimeError):
            pass

    async def answer(self) -> dict[str, bytes] | None:
        """The PNGs of the ASIDE charts by name, once drawn; None (with a warning) when the
        process did not give them: the caller draws them itself."""
        process = self._process
        assert process.stdout is not None  # started with pipes
        assert process.stderr is not None
        if self._failed:
            log.warning("chart_process_failed", error=self._failed, then="drawn in process")
            return None
        reading = asyncio.gather(process.stdout.read(), process.stderr.read(), process.wait())
        try:
            out, err, _ = await asyncio.wait_for(reading, self._answer_within_s)
        except TimeoutError:
            await self.close()
            why = f"no answer within {self._answer_within_s:g} s"
        else:
            pngs = _unframed(out)
            if process.returncode == 0 and pngs is not None:
                return pngs
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no error output"]
            why = f"exit code {process.returncode}, {len(out)} bytes of answer: {last[0]}"
        log.warning("chart_process_failed", error=why, then="drawn in process")
        return None

    async def close(self) -> None:
        """End the process if it is still running (unused, or interrupted mid-drawing)."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self._process.wait()


@contextlib.asynccontextmanager
async def chart_process(wanted: bool) -> AsyncIterator[ChartProcess | None]:
    """A chart process for the block (none when not `wanted`), ended when the block ends."""
    started = await ChartProcess.start() if wanted else None
    try:
        yield started
    finally:
        if started is not None:
            await started.close()


def _framed(pngs: dict[str, bytes], names: Sequence[str] = ASIDE) -> bytes:
    """The answer: each chart of `names` in turn, its length (8 bytes) before it."""
    return b"".join(len(pngs[name]).to_bytes(8, "big") + pngs[name] for name in names)


def _unframed(answer: bytes, names: Sequence[str] = ASIDE) -> dict[str, bytes] | None:
    """The charts in `answer`; None unless it is exactly one PNG for each of `names`."""
    pngs, at = {}, 0
    for name in names:
        size = int.from_bytes(answer[at : at + 8], "big")
        png = answer[at + 8 : at + 8 + size]
        if len(png) != size or not png.startswith(PNG_SIGNATURE):
            return None
        pngs[name], at = png, at + 8 + size
    return pngs if at == len(answer) else None


def _draw_forked(inputs: ChartInputs) -> dict[str, bytes]:
    """Every chart of ASIDE: FORKED drawn in a fork of this process while this one draws the
    others; those of a fork that fails, here after them."""
    from quantum_trader.report import charts

    here = [name for name in ASIDE if name not in FORKED]
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no fork: all of them here
        os.close(read)
        os.close(write)
        return charts.draw(inputs, ASIDE)
    if pid == 0:  # the fork: draw, hand the PNGs over, leave without tearing anything down
        os.close(read)
        try:
            with os.fdopen(write, "wb") as out:
                out.write(_framed(charts.draw(inputs, FORKED), FORKED))
        finally:
            os._exit(0)
    os.close(write)
    pngs = charts.draw(inputs, here)
    with os.fdopen(read, "rb") as answer:
        forked = _unframed(answer.read(), FORKED)
    os.waitpid(pid, 0)
    return pngs | (forked or charts.draw(inputs, FORKED))


def main() -> None:
    """The child: load the chart library, then draw the one job read from stdin."""
    os.nice(10)  # its work is wanted only at the end: the replay and its helpers first
    leave_stops_to_the_parent()  # Ctrl-C and a hangup reach the group: the command decides
    from quantum_trader.report import charts  # noqa: F401 - the point of starting early

    job = sys.stdin.buffer.read()
    if not job:  # closed unused
        return
    inputs = pickle.loads(job)  # noqa: S301 (written by the parent that started this process)
    sys.stdout.buffer.write(_framed(_draw_forked(inputs)))
    sys.stdout.buffer.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
