"""Out-of-sample scores in money: R after costs and hit rate, with block-bootstrap intervals.

A "trade" here is one (symbol, hour) where a decision said BUY or SELL; its outcome is that
row's triple-barrier label for the chosen side (R after costs). Trades of the same day overlap
(bars, symbols and the trades' own windows are correlated), so confidence intervals come from a
block bootstrap with blocks of one UTC day: days are resampled with replacement, and the 2.5 %
and 97.5 % percentiles of the resampled mean R and hit rate are the 95 % interval. Calibration
metrics (Brier score, reliability curve) are scikit-learn's.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from quantum_trader.domain import FloatArray
from quantum_trader.record import record
from quantum_trader.signals.models.base import BoolArray, Int8Array

DAY_MS = 86_400_000
BOOTSTRAP_SAMPLES = 2_000
RANDOM_DRAWS = 1_000
RELIABILITY_BINS = 10


@record
class Interval:
    value: float
    low: float
    high: float


@record
class TradeStats:
    """Trades taken, mean R after costs and hit rate (R > 0), with 95 % intervals."""

    trades: int
    rows: int
    mean_r: Interval
    hit_rate: Interval

    @property
    def total_r(self) -> float:
        return self.mean_r.value * self.trades if self.trades else 0.0


@record
class Reliability:
    """Calibrated probability vs observed frequency on quantile bins, and the Brier score."""

    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    brier: float
    n: int

    @property
    def max_gap(self) -> float:
        gaps = [abs(p - o) for p, o in zip(self.predicted, self.observed, strict=True)]
        return max(gaps) if gaps else math.nan


def outcomes_of(action: Int8Array, outcome_r: FloatArray) -> FloatArray:
    """The R of the chosen side per row (NaN where the action is HOLD)."""
    column = np.where(action < 0, 1, 0)
    chosen = outcome_r[np.arange(action.shape[0]), column]
    return np.where(action != 0, chosen, np.nan)


def trade_stats(
    action: Int8Array, outcome_r: FloatArray, time_ms: npt.NDArray[np.int64], seed: int
) -> TradeStats:
    """Stats of the trades `action` takes, with day-block bootstrap intervals."""
    r = outcomes_of(action, outcome_r)
    taken = action != 0
    return _stats(r[taken], time_ms[taken], int(action.shape[0]), seed)


def _stats(r: FloatArray, time_ms: npt.NDArray[np.int64], rows: int, seed: int) -> TradeStats:
    if r.size == 0:
        nothing = Interval(math.nan, math.nan, math.nan)
        return TradeStats(0, rows, nothing, nothing)
    days = time_ms // DAY_MS
    _, day = np.unique(days, return_inverse=True)
    n_days = int(day.max()) + 1
    count = np.bincount(day, minlength=n_days).astype(np.float64)
    total = np.bincount(day, weights=r, minlength=n_days)
    wins = np.bincount(day, weights=(r > 0).astype(np.float64), minlength=n_days)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_days, size=(BOOTSTRAP_SAMPLES, n_days))
    n = count[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = total[picks].sum(axis=1) / n
        hits = wins[picks].sum(axis=1) / n
    return TradeStats(
        int(r.size),
        rows,
        _interval(float(r.mean()), means),
        _interval(float((r > 0).mean()), hits),
    )


def _interval(value: float, samples: FloatArray) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(value, math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(value, float(low), float(high))


def random_entries(
    trades: int, outcome_r: FloatArray, rows: BoolArray, seed: int
) -> tuple[Interval, Interval]:
    """Mean R and hit rate of `trades` random (row, side) entries with the same exits.

    Drawn RANDOM_DRAWS times without replacement among `rows`; the value is the median draw and
    the interval the 2.5–97.5 % range of the draws (what luck alone gives with that many trades).
    """
    pool = np.concatenate([outcome_r[rows, 0], outcome_r[rows, 1]])
    if trades == 0 or pool.size == 0:
        nothing = Interval(math.nan, math.nan, math.nan)
        return nothing, nothing
    rng = np.random.default_rng(seed)
    size = min(trades, pool.size)
    draws = np.stack([rng.choice(pool, size=size, replace=False) for _ in range(RANDOM_DRAWS)])
    means, hits = draws.mean(axis=1), (draws > 0).mean(axis=1)
    return _median_interval(means), _median_interval(hits)


def _median_interval(samples: FloatArray) -> Interval:
    low, mid, high = np.percentile(samples, [2.5, 50.0, 97.5])
    return Interval(float(mid), float(low), float(high))


def reliability(probability: FloatArray, won: BoolArray) -> Reliability:
    """Reliability curve on quantile bins (scikit-learn) and the Brier score."""
    if probability.size < RELIABILITY_BINS:
        return Reliability((), (), math.nan, int(probability.size))
    clipped = np.clip(probability, 0.0, 1.0)
    observed, predicted = calibration_curve(
        won, clipped, n_bins=RELIABILITY_BINS, strategy="quantile"
    )
    return Reliability(
        tuple(float(p) for p in predicted),
        tuple(float(o) for o in observed),
        float(brier_score_loss(won, clipped)),
        int(probability.size),
    )
