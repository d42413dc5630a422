"""The environment of the commands the tests start (the daemon, a backtest, any CLI command).

The test's own environment (conftest.py has taken the caller's QT_ settings out of it; a
campaign run from the command line has them taken out here), with the status server on a
port the system picks, then the test's settings. Port 0 because the machine may be running
something on the default 8080 — the user's own daemon, as a service beside `make test` —
which made every `run` a test expected to refuse for another reason (a damaged paper
account, a bad data directory) refuse for the port instead."""

from __future__ import annotations

import os


def child_env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    return {**clean, "QT_SERVER__PORT": "0", **settings}
