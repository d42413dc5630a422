"""A daemon left running for a year: what `status` reads does not grow with the database.

The work is counted as SQLite counts it, in virtual-machine steps (its progress handler, called
at every step), never timed: the same read of a database a day old and of one thirty times
older must take the same steps. A read that decoded every equity snapshot or trade, or that
grouped every decision, takes more steps for every row added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import storage_samples as s

from quantum_trader.domain import GateName, OrderStatus, ReasonCode
from quantum_trader.ops.operator_view import read_status
from quantum_trader.storage.sqlite import SqliteRepository

DAY = timedelta(days=1)
# A day of a gate's verdicts, by (gate, reason): the counts `status` shows.
VERDICTS = (
    (GateName.SIGNAL_FILTER, ReasonCode.LOW_CONFIDENCE, 5),
    (GateName.ORCHESTRATOR, ReasonCode.APPROVED, 3),
    (GateName.BALANCER, ReasonCode.NET_EXPOSURE_EXCEEDED, 2),
)


async def write_days(path: Path, first: int, last: int) -> None:
    """Days `first` to `last` (excluded) of a daemon's rows, through the repository: equity
    every hour, the verdicts above, an entry order and its fill, a closed trade."""
    repository = await SqliteRepository.open(path)
    try:
        for day in range(first, last):
            start = s.T0 + day * DAY
            for hour in range(24):
                await repository.record_equity(
                    s.equity(start + timedelta(hours=hour), f"{10_000 + day}.{hour:02d}")
                )
            await repository.record_decisions(
                [
                    s.decision(f"d{day}", time=start, gate=gate, reason=reason)
                    for gate, reason, times in VERDICTS
                    for _ in range(times)
                ]
            )
            entry = f"qt-{day}"
            await repository.save_order(s.order(entry, status=OrderStatus.FILLED, created_at=start))
            await repository.record_fills([s.fill(f"t-{day}", time=start)])
            await repository.record_closed_trade(
                s.closed_trade(closed_at=start + timedelta(hours=3), entry_order_id=entry)
            )
    finally:
        await repository.close()


async def steps_of(path: Path, read: Callable[[SqliteRepository], Awaitable[Any]]) -> int:
    """The virtual-machine steps SQLite takes for `read` on a reader of `path`."""
    repository = await SqliteRepository.open(path, read_only=True)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    try:
        await repository._sqlite.set_progress_handler(count, 1)
        await read(repository)
    finally:
        await repository.close()
    return steps


async def test_status_reads_as_much_of_a_month_as_of_a_day(tmp_path: Path) -> None:
    path = tmp_path / "quantum_trader.db"
    await write_days(path, 0, 1)
    young = await steps_of(path, read_status)
    await write_days(path, 1, 30)

    old = await steps_of(path, read_status)

    assert old == young
    reader = await SqliteRepository.open(path, read_only=True)
    try:
        status = await read_status(reader)
    finally:
        await reader.close()
    assert status.equity == s.equity(s.T0 + 29 * DAY + timedelta(hours=23), "10029.23")
    assert status.closed_trades == 30
    assert status.decision_counts == {
        (str(gate), str(reason)): 30 * times for gate, reason, times in VERDICTS
    }
