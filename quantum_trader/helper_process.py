"""Starting a helper process of a backtest's: a module of this interpreter run on the machine's
other core (market/correlations_aside.py, storage/decisions_aside.py,
report/chart_process.py), importing the very package this process imported.

`python -m` would put the working directory first on the child's `sys.path`: run from a
directory holding another `quantum_trader` (an older checkout), the helper would be that
one's, speaking another protocol. So it starts with `-P` (not that directory) and with this
package's root first on its `PYTHONPATH`.
"""

from __future__ import annotations

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
    return process, errors
