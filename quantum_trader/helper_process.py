"""Starting a helper process of a backtest's: a module of this interpreter run on the machine's
other core (market/correlations_aside.py, storage/decisions_aside.py)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import IO

from quantum_trader.log import get_logger

log = get_logger("helper")


def start_helper(
    module: str, arguments: list[str], stdout: int, unavailable: str, then: str
) -> tuple[subprocess.Popen[bytes], IO[bytes]] | None:
    """`python -m module arguments…` with a pipe for stdin, `stdout` as given and stderr into
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
            [sys.executable, "-m", module, *arguments],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=errors,
        )
    except OSError as error:
        if errors is not None:
            errors.close()
        log.warning(unavailable, error=str(error), then=then)
        return None
    return process, errors
