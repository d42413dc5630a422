"""Settings search: a declared space → Optuna trials scored by out-of-sample walk-forward
backtests → the best settings as a TOML file `run --config` accepts, scored once on a holdout.

space.py (the space file, checked against the settings), folds.py (blocks, holdout, the market
each block may see), objective.py (a trial's score), study.py (store, samplers, workers),
runner.py (the command end to end), results.py (table, JSON, TOML).
"""
