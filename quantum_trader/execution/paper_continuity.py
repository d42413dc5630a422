"""The paper account and the database tell one story: refuse to start when one of them is gone.

The paper account (`paper_exchange.json`) is the simulated exchange; the database holds our
books and where the replay stopped. A database deleted, emptied or replaced beside a paper
account with history would rewind the replay to its start, where the account's protective
stops cannot trigger (the account only processes prices after the instant it last reached). A
paper account lost or replaced beside a database with fills would book every open position as
closed by hand. Either way state would be reset without anyone deciding it, so the daemon
refuses to start and says what to restore or move aside.
"""

from __future__ import annotations

from pathlib import Path

from quantum_trader.execution.paper_state import PaperState
from quantum_trader.record import record


@record
class Books:
    """What the database holds: how many fills and open positions."""

    fills: int
    open_positions: int


def continuity_problem(
    paper: PaperState | None, books: Books, paper_path: Path, database_path: Path
) -> str | None:
    """Why the two cannot be used together, or None when they can.

    Fills are the shared history: every fill of the paper account is recorded in the database
    and neither side ever deletes one, so fills on one side only mean the other was lost. The
    paper account forgets old fills as Binance does (paper_retention.py) but counts them:
    its count is every fill it ever made.
    """
    paper_fills = 0 if paper is None else paper.fill_count()
    if paper is not None and paper_fills and not books.fills:
        return (
            f"the paper account {paper_path} has {_count(paper_fills, 'fill')} and "
            f"{_count(len(paper.positions), 'open position')} but the database "
            f"{database_path} has no fills (deleted, emptied or replaced?): restore the "
            f"database from a backup, or move {paper_path.name} aside as well to start a "
            "fresh paper account"
        )
    if books.fills and not paper_fills:
        state = "missing" if paper is None else "new (it has no fills)"
        return (
            f"the database {database_path} holds {_count(books.fills, 'fill')} and "
            f"{_count(books.open_positions, 'open position')} but the paper account "
            f"{paper_path} is {state}: restore the paper account from a backup, or move the "
            "database (with its -wal and -shm files) aside as well to start afresh"
        )
    return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
