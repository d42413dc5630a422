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
    # Fold 1 is scored on 2025-10-10 .. 10-12 (the cascade), where these two settings differ.
    e = evaluation(tmp_path, bundled_sample_dir(), datetime(2025, 10, 16, tzinfo=UTC))
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    for params in (EAGER, CAUTIOUS):
        study.enqueue_trial(params)
    study.optimize(Objective(e), n_trials=2)
    eager, cautious = study.trials
    assert eager.state is optuna.trial.TrialState.COMPLETE
    assert sorted(eager.intermediate_values) == [1, 2]  # one report per fold
    assert cautious.intermediate_values[1] < eager.intermediate_values[1]
    assert cautious.state is optuna.trial.TrialState.PRUNED
    assert sorted(cautious.intermediate_values) == [1]  # stopped after fold 1
    assert len(cautious.user_attrs["folds"]) == 1  # fold 2 was never backtested


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
