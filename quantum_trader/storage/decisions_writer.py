"""The decisions writer process of decisions_aside.py: standard library only (and the light
stop_signals.py), so it starts in a few tens of milliseconds beside a replay that has just
begun (the repository's module, which this once was, imports ≈ 0.24 s of CPU worth of
libraries).

    python -m quantum_trader.storage.decisions_writer DATABASE INSERT_SQL BUSY_TIMEOUT_MS

Reads batches from stdin, each its pickled size (8 bytes, little-endian) then the pickled
rows, and commits each in one transaction; ends with its stdin.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import sys

from quantum_trader.stop_signals import leave_stops_to_the_parent

HEADER_BYTES = 8


def main() -> None:
    os.nice(10)  # never urgent (its pipe holds a batch and more): the replay first
    leave_stops_to_the_parent()  # Ctrl-C and a hangup reach the group: the command decides
    database, insert, busy_timeout_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    connection = sqlite3.connect(database, isolation_level=None, timeout=busy_timeout_ms / 1000)
    connection.execute("PRAGMA synchronous = NORMAL")  # the repository's; WAL is the file's
    stdin = sys.stdin.buffer
    while header := stdin.read(HEADER_BYTES):
        rows = pickle.loads(stdin.read(int.from_bytes(header, "little")))  # noqa: S301 (written by the parent that started this process)
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(insert, rows)
        connection.execute("COMMIT")
    connection.close()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
