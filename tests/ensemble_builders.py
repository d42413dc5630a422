"""A tiny ensemble for tests that need trained models: two tree models, a week of data, ten
rounds, trained in well under a second; its signals carry votes, as the daemon's do."""

from __future__ import annotations

from quantum_trader.signals.settings import EnsembleSettings

TINY = EnsembleSettings(
    training_days=7,
    walk_forward_folds=1,
    validation_fraction=0.3,
    embargo_h=8,
    tree_rounds=10,
    models=("xgboost", "lightgbm"),
)
