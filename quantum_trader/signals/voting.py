"""From calibrated model outputs to one decision per row (SPEC §3.1 voting, money-based rule).

Each model first decides for itself, from its calibrated outputs for the two sides (P(win) and
expected R after costs, signals/calibration.py):
- side source `models`: the side with the higher expected R, if that expected R exceeds
  `min_expected_r` (the decision rule in money), else HOLD;
- side source `rules` (meta-labeling): the rule agent proposes the side; the model takes it when
  its expected R for that side exceeds `min_expected_r`, else HOLD (HOLD where the rules hold).
Its vote's weight is the calibrated probability of the side it chose (a HOLD vote weighs the
probability that the best trade it saw would lose).

Then the votes are counted over the models that did not abstain (SPEC §3.1):
- fewer than `min_models` votes → no signal;
- an action with 3+ votes → strong consensus;
- otherwise an action with exactly 2 votes → weak consensus; in a 2–2 split the action with more
  weight wins, an exact tie → HOLD;
- otherwise → HOLD.
A winning BUY/SELL carries the mean calibrated probability and the mean expected R of the
models that voted for it: the confidence is a probability that the trade ends in profit after
costs, and the expected R is what it is worth; a winning HOLD has confidence 0.
"""

from __future__ import annotations

import numpy as np

from quantum_trader.domain import FloatArray
from quantum_trader.signals.models.base import BoolArray, Int8Array

STRONG_VOTES = 3
WEAK_VOTES = 2


def member_votes(
    probability: FloatArray,
    expected_r: FloatArray,
    present: BoolArray,
    proposed: Int8Array | None,
    min_expected_r: float,
) -> tuple[Int8Array, FloatArray, FloatArray]:
    """One model's (action, weight, expected R) per row from its (n, 2) calibrated outputs."""
    n = present.shape[0]
    if proposed is None:
        column = np.where(expected_r[:, 1] > expected_r[:, 0], 1, 0)
        candidate = np.ones(n, dtype=np.bool_)
    else:
        column = np.where(proposed < 0, 1, 0)
        candidate = proposed != 0
    rows = np.arange(n)
    p, r = probability[rows, column], expected_r[rows, column]
    take = present & candidate & (r > min_expected_r)
    action = np.where(take, np.where(column == 0, 1, -1), 0).astype(np.int8)
    weight = np.where(take, p, np.where(candidate, 1.0 - p, 1.0))
    return action, np.where(present, weight, 0.0), np.where(take, r, 0.0)


def vote(
    actions: Int8Array, weights: FloatArray, present: BoolArray, min_models: int
) -> tuple[Int8Array, BoolArray]:
    """Count (models, rows) votes; return the action per row and which models voted for it."""
    classes = np.array([-1, 0, 1], dtype=np.int8)
    member = (actions[None, :, :] == classes[:, None, None]) & present[None, :, :]
    counts = member.sum(axis=1)
    weight = (member * weights[None, :, :]).sum(axis=1)
    top = counts.max(axis=0)
    ranked = np.where(counts == top[None, :], weight, -1.0)
    best = np.argmax(ranked, axis=0)
    tied = (ranked == ranked.max(axis=0)[None, :]).sum(axis=0) > 1
    enough = present.sum(axis=0) >= min_models
    strong = enough & (top >= STRONG_VOTES)
    weak = enough & (top == WEAK_VOTES) & ~tied
    action = np.where(strong | weak, classes[best], 0).astype(np.int8)
    winners = present & (actions == action[None, :]) & (action[None, :] != 0)
    return action, winners


def mean_of_winners(values: FloatArray, winners: BoolArray) -> FloatArray:
    """Mean over the models that voted for the winning action (0 where none did)."""
    count = winners.sum(axis=0)
    total = np.where(winners, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def decide(
    actions: Int8Array,
    weights: FloatArray,
    expected_r: FloatArray,
    present: BoolArray,
    min_models: int,
) -> tuple[Int8Array, FloatArray, FloatArray]:
    """(action, confidence = calibrated P(win), expected R) per row from the models' votes."""
    action, winners = vote(actions, weights, present, min_models)
    confidence = mean_of_winners(weights, winners)
    expected = mean_of_winners(expected_r, winners)
    return action, np.where(action != 0, confidence, 0.0), np.where(action != 0, expected, 0.0)
