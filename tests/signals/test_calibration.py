"""Calibration on synthetic trades whose win probability is known by construction.

A score that ranks trades correctly but is badly scaled (the true probability cubed, and for
the short side reversed in scale) is calibrated on one half of the rows and judged on the
other half (out of fold), on 10 quantile bins of 4,000 (row, side) pairs each.

Tolerance: a bin's observed frequency has a binomial standard error ≤ √(0.25 / 4,000) = 0.0079,
and the fitted curve is piecewise linear over 50 quantile bins of the calibration half, whose
within-bin spread of the true probability is ≤ 0.6 / 50 = 0.012. So |predicted − observed| ≤
0.035 per bin (≈ 3σ + the binning spread); expected R per bin within 0.1 R (an outcome's
standard deviation is ≤ 1.25 R, so the standard error per bin is ≤ 0.02 R).
"""

from __future__ import annotations

import numpy as np

from quantum_trader.signals.calibration import Calibration, Curve
from quantum_trader.signals.evaluation import reliability

N = 80_000
WIN_R, LOSS_R = 1.5, -1.0


def synthetic(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores (n, 2), outcomes in R (n, 2), true P(win) (n, 2))."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(N, 2))
    truth = 0.2 + 0.6 * x**2
    won = rng.uniform(size=(N, 2)) < truth
    outcome = np.where(won, WIN_R, LOSS_R)
    scores = np.column_stack([truth[:, 0] ** 3, 10.0 * truth[:, 1] - 3.0])
    return scores, outcome, truth


def test_out_of_fold_calibration_matches_the_known_probability() -> None:
    scores, outcome, truth = synthetic(seed=1)
    fit_rows = np.zeros(N, dtype=np.bool_)
    fit_rows[: N // 2] = True
    calibration = Calibration.fit(scores, outcome, fit_rows)
    held_out = ~fit_rows
    probability, expected = calibration.apply(scores[held_out])
    won = outcome[held_out] > 0
    before = reliability(np.clip(scores[held_out, 0], 0, 1), won[:, 0])
    after = [reliability(probability[:, s], won[:, s]) for s in (0, 1)]
    assert before.max_gap > 0.2  # the raw score was far off
    for curve in after:
        assert curve.max_gap <= 0.035
    assert np.abs(probability - truth[held_out]).mean() < 0.02
    for side in (0, 1):
        order = np.argsort(expected[:, side])
        for chunk in np.array_split(order, 10):
            realized = outcome[held_out][chunk, side].mean()
            assert abs(expected[chunk, side].mean() - realized) < 0.1


def test_a_curve_is_monotone_clipped_and_survives_its_json() -> None:
    scores, outcome, _ = synthetic(seed=2)
    curve = Curve.fit(scores[:, 0], (outcome[:, 0] > 0).astype(float))
    assert all(b >= a for a, b in zip(curve.y, curve.y[1:], strict=False))
    again = Curve.from_json(curve.to_json())
    probe = np.array([-1.0, 0.0, 0.01, 0.2, 0.5, 2.0])
    np.testing.assert_array_equal(curve(probe), again(probe))
    assert curve(np.array([-5.0]))[0] == curve.y[0]
    assert curve(np.array([5.0]))[0] == curve.y[-1]


def test_too_few_rows_calibrate_to_the_base_rate() -> None:
    curve = Curve.fit(np.array([0.1, 0.9, 0.5]), np.array([1.0, 0.0, 1.0]))
    assert curve(np.array([0.0, 1.0])).tolist() == [2 / 3, 2 / 3]
