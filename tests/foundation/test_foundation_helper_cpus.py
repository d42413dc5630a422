"""Where a backtest's helper processes run (helper_process.py): on the CPUs the command may use
but the lowest, which is left to the replay; the chart process on every one of them once it is
given its job (the replay is over); with a single CPU, on that one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from quantum_trader.market.correlations_aside import CorrelationsAside
from quantum_trader.report.chart_process import ChartProcess
from quantum_trader.storage.sqlite import SqliteRepository

CPUS = os.sched_getaffinity(0)


def off_the_replay(cpus: set[int]) -> set[int]:
    """The documented placement: all but the lowest CPU, or the only one."""
    return cpus - {min(cpus)} if len(cpus) > 1 else cpus


def test_the_decisions_writer_runs_off_the_replays_cpu(tmp_path: Path) -> None:
    async def placed() -> set[int]:
        repository = await SqliteRepository.open(tmp_path / "backtest.db")
        try:
            await repository.insert_decisions_aside()
            aside = repository._aside
            assert aside is not None
            return os.sched_getaffinity(aside.pid)
        finally:
            await repository.close()

    assert asyncio.run(placed()) == off_the_replay(CPUS)


def test_the_correlation_process_runs_off_the_replays_cpu() -> None:
    from test_foundation_correlations_aside import small_job

    aside = CorrelationsAside.start(small_job())
    assert aside is not None
    try:
        assert os.sched_getaffinity(aside.pid) == off_the_replay(CPUS)
    finally:
        aside.close()


def test_the_chart_process_runs_off_the_replays_cpu_until_its_job() -> None:
    """Given its job, it draws on every CPU (it and its fork), this process only waiting."""

    async def placed() -> tuple[set[int], set[int]]:
        process = await ChartProcess.start()
        assert process is not None
        try:
            before = os.sched_getaffinity(process.pid)
            await process.send(None)  # type: ignore[arg-type]  # any job: only where it runs
            return before, os.sched_getaffinity(process.pid)
        finally:
            await process.close()

    before, with_its_job = asyncio.run(placed())
    assert before == off_the_replay(CPUS)
    assert with_its_job == CPUS


ON_ONE_CPU = """
import asyncio, os, sys
from pathlib import Path
from quantum_trader.storage.sqlite import SqliteRepository

os.sched_setaffinity(0, {int(sys.argv[2])})

async def main():
    repository = await SqliteRepository.open(Path(sys.argv[1]))
    await repository.insert_decisions_aside()
    print(sorted(os.sched_getaffinity(repository._aside.pid)))
    await repository.close()

asyncio.run(main())
"""


def test_a_command_on_one_cpu_shares_it_with_its_helpers(tmp_path: Path) -> None:
    """Nothing is left to spare: the helper runs where the command may (here the highest of
    the machine's CPUs, so not the one a helper would otherwise avoid)."""
    cpu = max(CPUS)
    shown = subprocess.run(
        [sys.executable, "-c", ON_ONE_CPU, str(tmp_path / "backtest.db"), str(cpu)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert shown.stdout.split("\n")[0] == str([cpu])
