"""Pruning per fold, and the multi-objective study (return against drawdown)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import optuna
import pytest
from optimize_builders import SYMBOLS, write_space
from test_optimize_objective import evaluation

from quantum_trader.config import Settings
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.optimize.objective import Objective, Score
from quantum_trader.optimize.runner import OptimizeRequest, run_optimize

CAUTIOUS = {
    "orchestrator.min_confidence_trending": 0.6,
    "sizing.stop_atr_multiple": 3.0,
    "monitor.trail_mode_trend_follow": "LOOSE",
}
EAGER = {
    "orchestrator.min_confidence_trending": 0.1,
    "sizing.stop_atr_multiple": 1.0,
    "monitor.trail_mode_trend_follow": "AGGRESSIVE",
}


@pytest.mark.slow
def test_a_trial_worse_than_the_median_at_a_fold_is_pruned_after_that_fold(
    tmp_path: Path,
) -> None:
    e = evaluation(tmp_path, bundled_sample_dir())
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    for params in (CAUTIOUS, EAGER):
        study.enqueue_trial(params)
    study.optimize(Objective(e), n_trials=2)
    first, second = study.trials
    fold_1 = [t.intermediate_values[1] for t in (first, second)]
    assert fold_1[0] != fold_1[1]  # the two settings do differ on fold 1
    if fold_1[1] < fold_1[0]:
        assert second.state is optuna.trial.TrialState.PRUNED
        assert len(second.user_attrs["folds"]) == 1  # stopped after fold 1: no fold-2 backtest
    else:
        assert second.state is optuna.trial.TrialState.COMPLETE
        assert len(second.user_attrs["folds"]) == 2


@pytest.mark.slow
def test_the_multi_objective_study_keeps_a_pareto_front_of_return_and_drawdown(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    request = OptimizeRequest(
        space=write_space(tmp_path),
        trials=2,
        seed=4,
        symbols=SYMBOLS,
        end=datetime(2025, 10, 14, tzinfo=UTC),
        fold_days=2,
        folds=1,
        holdout_days=2,
        score=Score.RETURN_OVER_DRAWDOWN,
        multi=True,
    )
    results = run_optimize(settings, request, lambda done, total: None)
    assert results.objective.startswith("NSGA-II")
    (fold,) = results.folds
    assert results.best_values == [
        fold["out_of_sample"]["return_pct"],
        fold["out_of_sample"]["max_drawdown_pct"],
    ]
    assert results.pareto_front
    assert results.best_trial in {row["trial"] for row in results.pareto_front}
