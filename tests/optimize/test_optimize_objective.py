"""The objective never sees the window it scores while choosing: a block's score depends on
no bar after the block's end, and no trial's objective on the holdout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from optimize_builders import SYMBOLS, copy_market, perturb, write_space

from quantum_trader.config import Settings
from quantum_trader.optimize.objective import Evaluation, Objective, Score, run_block
from quantum_trader.optimize.runner import OptimizeRequest, cut_markets, study_layout, trial_base
from quantum_trader.optimize.space import load_space

PARAMS = {
    "orchestrator.min_confidence_trending": 0.2,
    "sizing.stop_atr_multiple": 1.5,
    "monitor.trail_mode_trend_follow": "BALANCED",
}


def evaluation(
    tmp_path: Path, market: Path, end: datetime = datetime(2025, 10, 14, tzinfo=UTC)
) -> Evaluation:
    settings = Settings(data_dir=tmp_path / "data", market={"replay_dir": market})
    request = OptimizeRequest(
        space=write_space(tmp_path),
        trials=1,
        symbols=SYMBOLS,
        end=end,
        fold_days=2,
        folds=2,
        holdout_days=2,
        score=Score.RETURN_OVER_DRAWDOWN,
    )
    base = trial_base(settings, request)
    layout = study_layout(base, request)
    markets = cut_markets(base, layout, tmp_path / f"cuts-{market.name}")
    space = load_space(request.space, settings)
    scratch = tmp_path / "runs"
    return Evaluation(
        base, space, layout, markets, request.score, False, scratch, request.min_trades
    )


def folds(e: Evaluation) -> list[dict[str, Any]]:
    trial = optuna.trial.FixedTrial(PARAMS)
    Objective(e)(trial)
    found: list[dict[str, Any]] = trial.user_attrs["folds"]
    return found


def holdout(e: Evaluation) -> dict[str, Any]:
    return run_block(
        e.base, e.markets.holdout, e.layout.holdout, e.score, e.scratch / "holdout"
    ).describe()


@pytest.mark.slow
def test_changing_the_holdout_changes_no_fold_score_but_does_change_the_holdout_score(
    tmp_path: Path,
) -> None:
    original = evaluation(tmp_path, copy_market(tmp_path / "original"))
    changed_market = copy_market(tmp_path / "changed")
    perturb(changed_market, original.layout.holdout.start, original.layout.holdout.end)
    changed = evaluation(tmp_path, changed_market)
    assert changed.layout == original.layout
    assert folds(changed) == folds(original)
    assert holdout(changed) != holdout(original)  # the change is there to be seen


@pytest.mark.slow
def test_changing_a_later_fold_leaves_every_earlier_fold_as_it_was(tmp_path: Path) -> None:
    original = evaluation(tmp_path, copy_market(tmp_path / "original"))
    last = original.layout.blocks[-1]
    changed_market = copy_market(tmp_path / "changed")
    perturb(changed_market, last.start, last.end)
    before, after = folds(original), folds(evaluation(tmp_path, changed_market))
    assert after[0] == before[0]  # fold 1: its in-sample and out-of-sample blocks
    assert after[1]["in_sample"] == before[1]["in_sample"]
    assert after[1]["out_of_sample"] != before[1]["out_of_sample"]
