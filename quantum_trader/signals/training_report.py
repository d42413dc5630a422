"""Out-of-sample classification metrics and the training report (per model, ensemble, baselines).

All metrics are computed on the same walk-forward test rows. A prediction of HOLD (or an
abstention) counts as HOLD for accuracy. Precision of BUY is the share of BUY predictions whose
label is BUY (NaN when the model never said BUY); likewise SELL. `avg_return_bps` is the mean
forward log return over the horizon, signed by the prediction, over BUY/SELL predictions only
(before costs), in basis points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import FloatArray
from quantum_trader.signals.models.base import Int8Array


@dataclass(frozen=True, slots=True)
class Metrics:
    n: int
    accuracy: float
    precision_buy: float
    precision_sell: float
    buy_signals: int
    sell_signals: int
    avg_return_bps: float

    def as_dict(self) -> dict[str, float]:
        return {
            "n": float(self.n),
            "accuracy": self.accuracy,
            "precision_buy": self.precision_buy,
            "precision_sell": self.precision_sell,
            "buy_signals": float(self.buy_signals),
            "sell_signals": float(self.sell_signals),
            "avg_return_bps": self.avg_return_bps,
        }


def score(predicted: Int8Array, labels: Int8Array, forward_return: FloatArray) -> Metrics:
    """Metrics of predictions (−1/0/+1) against labels on the same rows."""
    buys, sells = predicted == 1, predicted == -1
    signals = buys | sells
    signed = np.sign(predicted[signals]) * forward_return[signals]
    return Metrics(
        n=int(labels.shape[0]),
        accuracy=_mean(predicted == labels),
        precision_buy=_mean(labels[buys] == 1),
        precision_sell=_mean(labels[sells] == -1),
        buy_signals=int(buys.sum()),
        sell_signals=int(sells.sum()),
        avg_return_bps=_mean(signed) * 1e4,
    )


def class_balance(labels: Int8Array) -> dict[str, float]:
    """Share of SELL, HOLD and BUY labels."""
    n = max(int(labels.shape[0]), 1)
    return {
        "SELL": float((labels == -1).sum()) / n,
        "HOLD": float((labels == 0).sum()) / n,
        "BUY": float((labels == 1).sum()) / n,
    }


def _mean(values: npt.NDArray[np.bool_] | FloatArray) -> float:
    return float(np.mean(values)) if values.size else math.nan


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What `quantum-trader train` did and how well each model predicted out of sample."""

    symbols: tuple[str, ...]
    start: datetime
    end: datetime
    horizon_h: int
    label_threshold: float
    rows: int
    test_rows: int
    folds: tuple[tuple[datetime, datetime], ...]
    embargo_h: int
    class_balance_train: Mapping[str, float]
    class_balance_test: Mapping[str, float]
    models: Mapping[str, Metrics]
    ensemble: Metrics | None
    baselines: Mapping[str, Metrics]
    skipped: Mapping[str, str] = field(default_factory=dict)
    saved: tuple[str, ...] = ()

    def to_markdown(self) -> str:
        """A self-contained Markdown report."""
        lines = [
            "# Ensemble training report",
            "",
            f"- symbols: {', '.join(self.symbols)}",
            f"- data: {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC (1h bars)",
            f"- label: {self.horizon_h} h forward return beyond ±{self.label_threshold:.2%}"
            " → BUY/SELL, else HOLD",
            f"- rows: {self.rows} (symbol × hour); out-of-sample: {self.test_rows}",
            f"- walk-forward: {len(self.folds)} folds, embargo {self.embargo_h} h after each "
            "training label window",
            *(
                f"  - fold {i + 1}: {a:%Y-%m-%d %H:%M} .. {b:%Y-%m-%d %H:%M}"
                for i, (a, b) in enumerate(self.folds)
            ),
            f"- class balance, all rows: {_balance(self.class_balance_train)}",
            f"- class balance, out-of-sample: {_balance(self.class_balance_test)}",
            "",
            "| model | n | accuracy | precision BUY | precision SELL | BUY / SELL signals "
            "| avg signed return (bps) |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = {**self.models}
        if self.ensemble is not None:
            rows["**ensemble**"] = self.ensemble
        rows.update({f"baseline: {k}": v for k, v in self.baselines.items()})
        lines += [_row(name, m) for name, m in rows.items()]
        if self.skipped:
            lines += ["", *(f"- {name} not trained: {why}" for name, why in self.skipped.items())]
        if self.saved:
            lines += ["", f"Saved artifacts: {', '.join(self.saved)}"]
        return "\n".join(lines) + "\n"


def _balance(balance: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.1%}" for k, v in balance.items())


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def _row(name: str, m: Metrics) -> str:
    bps = "n/a" if math.isnan(m.avg_return_bps) else f"{m.avg_return_bps:+.1f}"
    return (
        f"| {name} | {m.n} | {_pct(m.accuracy)} | {_pct(m.precision_buy)} | "
        f"{_pct(m.precision_sell)} | {m.buy_signals} / {m.sell_signals} | {bps} |"
    )
