"""The report's records as the replay held them equal the database read back.

A backtest builds its report from what its repository held while it wrote the database
(`held_run`) instead of reading the database back (`load_run`): the two must give the same
values in the same order, with the decisions inserted by the command itself or by a process
of their own."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from report_builders import utc

from quantum_trader.backtest import DATABASE_FILE, BacktestRequest, prepare_replay, replay_into
from quantum_trader.config import Settings
from quantum_trader.domain import Decision, EquitySnapshot, PositionEvent, Verdict
from quantum_trader.domain.enums import ExitReason, GateName, ReasonCode
from quantum_trader.report.load import RunData, held_for_charts, held_run, load_run
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.split import SplitRepository
from quantum_trader.storage.sqlite import SqliteRepository


@pytest.mark.parametrize("helper_processes", [False, True], ids=["in-process", "helpers"])
def test_the_run_held_is_the_run_read_back(
    tmp_path_factory: pytest.TempPathFactory, helper_processes: bool
) -> None:
    work = tmp_path_factory.mktemp("run")
    settings = Settings(
        data_dir=work / "data",
        signals={"source": "rules"},
        backtest={"operator_reset_after": timedelta(hours=6)},
    )
    request = BacktestRequest(utc(2025, 9, 10), utc(2025, 9, 16), out_dir=work)
    settings, replay = prepare_replay(settings, request)

    async def both() -> tuple[RunData, RunData]:
        replayed = await replay_into(
            settings, replay, work, asyncio.Event(), helper_processes=helper_processes
        )
        held = await held_run(replayed.records, replayed.chart_records)
        return held, await load_run(work / DATABASE_FILE)

    held, read = asyncio.run(both())
    # A window with every kind of record, or the comparison proves little.
    for records in (held.trades, held.fills, held.orders, held.governor_events):
        assert records
    assert sum(n for *_, n in held.decisions_by_day) > 1_000
    assert {approved for _, _, approved, _ in held.decisions_by_day} == {0, 1}
    assert len(held.position_events_by_reason) > 1
    assert len(held.equity.values) == 6 * 24 + 1

    assert np.array_equal(held.equity.times, read.equity.times)
    assert np.array_equal(held.equity.values, read.equity.values)
    for field in (
        "trades",
        "fills",
        "orders",
        "decisions_by_day",
        "decision_counts",
        "governor_events",
        "open_positions",
    ):
        assert getattr(held, field) == getattr(read, field), field
    # The same keys in the same order: report.json writes them so.
    assert list(held.position_events_by_reason.items()) == list(
        read.position_events_by_reason.items()
    )
    assert list(held.decision_counts) == list(read.decision_counts)


def test_records_made_out_of_time_order_are_held_in_the_databases_order(tmp_path: Path) -> None:
    """Events and snapshots recorded late are ordered by time, then arrival, as the
    database's queries order them; decisions are tallied by the day of their stored time."""
    late, early = utc(2025, 9, 11) + timedelta(hours=23, minutes=59), utc(2025, 9, 11)
    events = [
        PositionEvent("ETH/USDT:USDT", late, ExitReason.TRAILING),
        PositionEvent("BTC/USDT:USDT", early, ExitReason.BREAK_EVEN),
        PositionEvent("BTC/USDT:USDT", late, ExitReason.SL_HIT),
    ]
    snapshots = [
        EquitySnapshot(t, Decimal(v), Decimal(v), Decimal(0), 0)
        for t, v in ((late, "10.5"), (early, "9.25"), (late, "10.25"))
    ]
    decisions = [
        Decision("c1", t, verdict)
        for t in (early, late, late + timedelta(minutes=1))
        for verdict in (
            Verdict.allow(GateName.BALANCER, "BTC/USDT:USDT"),
            Verdict.deny(GateName.GOVERNOR, "ETH/USDT:USDT", ReasonCode.NET_EXPOSURE_EXCEEDED),
        )
    ]

    async def both() -> tuple[RunData, RunData]:
        database = await SqliteRepository.open(tmp_path / DATABASE_FILE)
        repository = SplitRepository(InMemoryRepository(), database)
        try:
            for event, snapshot in zip(events, snapshots, strict=True):
                await repository.record_position_events([event])
                await repository.record_equity(snapshot)
            await repository.record_decisions(decisions)
            held = await held_run(repository, await held_for_charts(repository))
            await repository.save_ledger()
        finally:
            await repository.close()
        return held, await load_run(tmp_path / DATABASE_FILE)

    held, read = asyncio.run(both())
    assert list(held.position_events_by_reason) == ["BREAK_EVEN", "TRAILING", "SL_HIT"]
    assert list(read.position_events_by_reason) == list(held.position_events_by_reason)
    assert held.equity.values.tolist() == [9.25, 10.5, 10.25] == read.equity.values.tolist()
    assert held.decisions_by_day == read.decisions_by_day
    assert [day for day, *_ in held.decisions_by_day] == ["2025-09-11"] * 2 + ["2025-09-12"] * 2
    assert held.decision_counts == read.decision_counts
