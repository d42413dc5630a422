"""Lifecycle stages (SPEC §5.4): the confidence formula, factors, caps, transitions, storage."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.domain import SymbolStats
from quantum_trader.sizing.lifecycle import (
    LifecycleBook,
    LifecycleRecord,
    Stage,
    confidence_factor,
    next_stage,
    stage_factor,
    stage_room_usdt,
    window_sharpe,
)
from quantum_trader.sizing.settings import LifecycleSettings

S = LifecycleSettings()
GOOD = LifecycleRecord(trades=60, win_rate=0.6, sharpe=2.0)
BAD = LifecycleRecord(trades=60, win_rate=0.3, sharpe=-0.2)
AWFUL = LifecycleRecord(trades=60, win_rate=0.2, sharpe=-1.0)


@pytest.mark.parametrize(
    ("sharpe", "win_rate", "expected"),
    [(2.0, 0.6, 0.84), (4.0, 1.0, 1.3), (0.0, 0.2, 0.5), (10.0, 1.0, 1.3)],
)
def test_confidence_formula(sharpe: float, win_rate: float, expected: float) -> None:
    record = LifecycleRecord(30, win_rate, sharpe)
    assert confidence_factor(record) == pytest.approx(expected)


def test_stage_factors() -> None:
    assert stage_factor(Stage.PAPER, GOOD, S) == 0.0
    assert stage_factor(Stage.MATURE, GOOD, S) == pytest.approx(0.84)
    assert stage_factor(Stage.MATURE, LifecycleRecord(60, 1.0, 4.0), S) == 1.0
    assert stage_factor(Stage.DISCOVERY, LifecycleRecord(60, 1.0, 4.0), S) == pytest.approx(0.2)
    assert not Stage.PAPER.trades_real_capital
    assert Stage.DECAY.trades_real_capital


def test_stage_room_under_the_total_cap() -> None:
    used = {Stage.MATURE: Decimal(2500), Stage.DISCOVERY: Decimal(600)}
    assert stage_room_usdt(Stage.MATURE, used, Decimal(10_000), S) == Decimal(500)
    assert stage_room_usdt(Stage.DISCOVERY, used, Decimal(10_000), S) == Decimal(0)
    assert stage_room_usdt(Stage.VALIDATION, used, Decimal(10_000), S) == Decimal(1500)
    assert stage_room_usdt(Stage.PAPER, used, Decimal(10_000), S) == Decimal(0)


def test_a_good_record_climbs_one_stage_at_a_time() -> None:
    path = [Stage.PAPER]
    for _ in range(4):
        path.append(next_stage(path[-1], GOOD, S))
    assert path == [Stage.PAPER, Stage.DISCOVERY, Stage.VALIDATION, Stage.MATURE, Stage.MATURE]


def test_too_few_trades_stay_put() -> None:
    young = LifecycleRecord(trades=5, win_rate=0.8, sharpe=3.0)
    assert next_stage(Stage.PAPER, young, S) is Stage.PAPER
    assert next_stage(Stage.DISCOVERY, LifecycleRecord(15, 0.8, 3.0), S) is Stage.DISCOVERY


def test_degrading_records_fall() -> None:
    assert next_stage(Stage.MATURE, BAD, S) is Stage.DECAY
    assert next_stage(Stage.VALIDATION, BAD, S) is Stage.DECAY
    assert next_stage(Stage.DISCOVERY, BAD, S) is Stage.PAPER
    assert next_stage(Stage.DECAY, AWFUL, S) is Stage.PAPER
    assert next_stage(Stage.DECAY, BAD, S) is Stage.DECAY
    assert next_stage(Stage.DECAY, GOOD, S) is Stage.VALIDATION


def test_window_sharpe() -> None:
    assert window_sharpe([1.0]) == 0.0
    assert window_sharpe([1.0, 1.0]) == 0.0
    assert window_sharpe([2.0, -1.0, 2.0, -1.0]) == pytest.approx(0.5 / (3**0.5) * 2)
    stats = SymbolStats("X", trades=4, wins=2, losses=2, last_20_r=(2.0, -1.0, 2.0, -1.0))
    assert LifecycleRecord.from_stats(stats).win_rate == 0.5


def test_book_persists_and_fails_closed() -> None:
    book = LifecycleBook({}).advance("BTC|ens", GOOD, S).advance("BTC|ens", GOOD, S)
    assert book.stage("BTC|ens") is Stage.VALIDATION
    assert book.stage("ETH|ens") is Stage.PAPER
    restored = LifecycleBook.from_dict(json.loads(json.dumps(book.to_dict())))
    assert restored == book
    broken = LifecycleBook.from_dict({"stages": {"X": "LEGENDARY"}})
    assert broken.stage("X") is Stage.PAPER


@given(
    stage=st.sampled_from(list(Stage)),
    trades=st.integers(0, 500),
    win_rate=st.floats(0, 1),
    sharpe=st.floats(-10, 10),
)
def test_factor_and_transition_bounds(
    stage: Stage, trades: int, win_rate: float, sharpe: float
) -> None:
    record = LifecycleRecord(trades, win_rate, sharpe)
    assert 0.5 <= confidence_factor(record) <= 1.5
    assert 0.0 <= stage_factor(stage, record, S) <= 1.0
    order = [Stage.PAPER, Stage.DISCOVERY, Stage.VALIDATION, Stage.MATURE]
    moved = next_stage(stage, record, S)
    if stage in order and moved in order:
        assert order.index(moved) - order.index(stage) <= 1
