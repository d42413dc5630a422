"""`quantum-trader run`'s daemon with a seeded signal source, for the kill -9 campaign:

    PYTHONPATH=tests:tests/campaign python tests/campaign/daemon_process.py SEED

Settings come from QT_ variables as for `run`; everything else (the runtime, the keeper, the
loops, the streams) is the daemon's own code. Only the signals are seeded, so that entries and
protective orders are placed often enough to be killed in the middle of."""

from __future__ import annotations

import sys

import uvloop
from seeded_signals import SeededSignals

from quantum_trader.config_load import load_settings
from quantum_trader.daemon import run_daemon
from quantum_trader.log import configure_logging


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log.format, settings.log.level)
    sys.exit(uvloop.run(run_daemon(settings, SeededSignals(int(sys.argv[1])))))


if __name__ == "__main__":
    main()
