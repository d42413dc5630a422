"""Starting a helper process of a backtest's: a module of this interpreter run on the machine's
other core (market/correlations_aside.py, storage/decisions_aside.py,
report/chart_process.py), importing the very package this process imported.

`python -m` would put the working directory first on the child's `sys.path`: run from a
directory holding another `quantum_trader` (an older checkout), the helper would be that
one's, speaking another protocol. So it starts with `-P` (not that directory) and with this
package's root first on its `PYTHONPATH`.

Each helper runs on the CPUs this process may use but one, left to the replay
(`keep_off_the_replay`): the replay keeps one core busy from its first step, when the helpers
have most of their work (the correlations ≈ 0.7 s of CPU, the chart library's import ≈ 0.9 s,
the decisions writer's start). Free to use every core, they preempted the replay on a 2-core
machine: it lost ≈ 0.25 s of its first second waiting to run (measured as wall time less the
thread's CPU, with ≈ 50 involuntary context switches), ≈ 0.02 s with the helpers so confined.
The replay is not pinned (another program's load can still move it), and the chart process
gets every CPU back with its job (`on_every_cpu`), drawn while this process only waits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

import quantum_trader
from quantum_trader.log import get_logger

log = get_logger("helper")

# The one warning each helper gives when its work falls back to the command's own process
# (slower, the same results). The backtest command, which logs errors only, still shows them.
FALLBACK_WARNINGS = frozenset(
    {
        "chart_process_unavailable",
        "chart_process_failed",
        "correlation_process_unavailable",
        "correlation_process_failed",
        "decisions_process_unavailable",
        "decisions_process_failed",
    }
)


def helper_command(module: str, *arguments: str) -> list[str]:
    """This interpreter on `module`, never on the working directory's packages."""
    return [sys.executable, "-P", "-m", module, *arguments]


def _spare_cpus() -> set[int] | None:
    """The CPUs a helper may use: those this process may use but the lowest, left to the
    replay; None when that leaves none (one CPU) or CPUs cannot be chosen (not Linux)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = os.sched_getaffinity(0)
    return cpus - {min(cpus)} if len(cpus) > 1 else None


def keep_off_the_replay(pid: int) -> None:
    """Confine the helper `pid` to `_spare_cpus` (see the module docstring)."""
    cpus = _spare_cpus()
    if cpus is not None:
        with contextlib.suppress(OSError):  # exited already, or not allowed: only slower
            os.sched_setaffinity(pid, cpus)


def on_every_cpu(pid: int) -> None:
    """Let the helper `pid` use every CPU this process may use again."""
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, os.sched_getaffinity(0))


def helper_environment() -> dict[str, str]:
    """This process's environment with this package's root first on `PYTHONPATH`."""
    root = str(Path(quantum_trader.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def start_helper(
    module: str, arguments: list[str], stdout: int, unavailable: str, then: str
) -> tuple[subprocess.Popen[bytes], IO[bytes]] | None:
    """`helper_command(module, arguments…)` with a pipe for stdin, `stdout` as given and stderr into
    a temporary file (the caller reads it for its warning and closes it: a pipe left unread
    could fill up). None when it cannot start (no interpreter to run, no writable temporary
    directory): with the warning `unavailable`, saying what is done instead (`then`), unless
    this is an embedded interpreter, which has none to start."""
    if not sys.executable:
        return None
    errors: IO[bytes] | None = None
    try:
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
            helper_command(module, *arguments),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=errors,
            env=helper_environment(),
        )
    except OSError as error:
        if errors is not None:
            errors.close()
        log.warning(unavailable, error=str(error), then=then)
        return None
    keep_off_the_replay(process.pid)
    return process, errors
