"""Which trials the study may choose: those that ran every fold and made at least
`--min-trades` trades in their out-of-sample blocks together (freqtrade's hyperopt rule:
fewer trades, not eligible as best).

The choice is made from each trial's recorded folds, not from its state alone: a trial the
objective pruned for too few trades under a higher `--min-trades` becomes eligible when the
same command is run again with a lower one (no trial runs again), and a complete trial stored
before the rule, or under a lower `--min-trades`, is set aside when it falls short.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState

from quantum_trader.optimize.objective import (
    DRAWDOWN_FLOOR_PCT,
    TOO_FEW_TRADES,
    objective_values,
    oos_trades,
)
from quantum_trader.record import record


@record
class Scored:
    """A trial that ran every fold: its objective values and its out-of-sample trades."""

    trial: FrozenTrial
    values: tuple[float, ...]
    trades: int


def scored(trials: Sequence[FrozenTrial], multi: bool) -> list[Scored]:
    """The trials that ran every fold: complete, or pruned for too few trades only."""
    found = []
    for trial in trials:
        folds = trial.user_attrs.get("folds", [])
        if trial.state is TrialState.COMPLETE:
            values = tuple(trial.values)
        elif trial.state is TrialState.PRUNED and TOO_FEW_TRADES in trial.user_attrs:
            computed = objective_values(folds, multi)  # a pruned trial's value is its last fold's
            values = tuple(computed) if isinstance(computed, Sequence) else (computed,)
        else:
            continue
        found.append(Scored(trial, values, oos_trades(folds)))
    return found


def best(eligible: Sequence[Scored], multi: bool) -> Scored:
    """The highest mean score; with `multi`, of the Pareto front the best return per unit of
    drawdown. `eligible` holds at least one trial."""
    if not multi:
        return max(eligible, key=lambda s: s.values[0])
    return max(pareto_front(eligible), key=lambda s: s.values[0] / _drawdown(s))


def pareto_front(candidates: Sequence[Scored]) -> list[Scored]:
    """The trials no other trial beats on both return (higher) and drawdown (lower), in trial
    order; equal points are all kept, as Optuna keeps them."""
    front: list[Scored] = []
    lowest = float("inf")
    for s in sorted(candidates, key=lambda s: (-s.values[0], s.values[1])):
        if s.values[1] < lowest or (front and front[-1].values == s.values):
            front.append(s)
            lowest = min(lowest, s.values[1])
    return sorted(front, key=lambda s: s.trial.number)


def _drawdown(s: Scored) -> float:
    return max(s.values[1], DRAWDOWN_FLOOR_PCT)
