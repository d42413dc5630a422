"""The validation report of a training run: every model, the ensemble and the baselines, scored
out of sample in R after costs and hit rate, fold by fold, with calibration diagnostics.

Rows scored: the test blocks after the first (the first block's predictions only calibrate the
second's; signals/training.py). Sources, each deciding per (symbol, hour):
- each model alone: the side with the higher calibrated expected R when it exceeds the margin;
- the ensemble (SPEC §3.1 voting over the models' decisions, signals/voting.py);
- the ensemble with meta-labeling: the rule agent proposes, the models decide;
- baselines: the rule agent alone (every side it proposes); the majority side (in each block,
  always the side that won more often in that block's training rows); random entries with the
  same exits and as many trades as the ensemble.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import FloatArray
from quantum_trader.market.resample import HOUR_MS
from quantum_trader.record import record
from quantum_trader.signals.calibration import Calibration
from quantum_trader.signals.evaluation import (
    Interval,
    Reliability,
    TradeStats,
    outcomes_of,
    random_entries,
    reliability,
    trade_stats,
)
from quantum_trader.signals.figures import ReliabilityFigure, reliability_png
from quantum_trader.signals.models.base import BoolArray, Int8Array
from quantum_trader.signals.panel import Folds, Panel, exit_reason_shares
from quantum_trader.signals.voting import decide, member_votes

if TYPE_CHECKING:
    from quantum_trader.config import Settings

ENSEMBLE = "ensemble"
META = "ensemble, meta-labeling"
RULES = "baseline: rule agent"
MAJORITY = "baseline: majority side"
RANDOM = "baseline: random entries"


@record
class ModelRun:
    """One model's walk-forward output: raw out-of-fold scores (n, 2), the rows it answered,
    walk-forward calibrated P(win) and expected R (n, 2; NaN outside blocks 2..), and the
    calibration fitted on every out-of-fold score (the one saved with the model)."""

    scores: FloatArray
    present: BoolArray
    probability: FloatArray
    expected_r: FloatArray
    calibration: Calibration


@record
class TrainingReport:
    """What `train_models` did and how each source did out of sample."""

    symbols: tuple[str, ...]
    start: datetime
    end: datetime
    rows: int
    evaluated_rows: int
    folds: tuple[tuple[datetime, datetime], ...]
    embargo_h: int
    min_expected_r: float
    label_summary: Mapping[str, float]
    exits: str
    stats: Mapping[str, TradeStats]
    random: tuple[Interval, Interval]
    by_fold: Mapping[str, tuple[TradeStats, ...]]
    calibration: Mapping[str, Reliability]
    figures_data: Mapping[str, ReliabilityFigure]
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def model_metrics(self, name: str) -> dict[str, float | None]:
        """A model's out-of-sample numbers for its manifest entry (None where undefined: no
        trade or no row scored, so the manifest is plain JSON, never NaN)."""
        s = self.stats[name]
        values = {
            "trades": float(s.trades),
            "mean_r": s.mean_r.value,
            "mean_r_low": s.mean_r.low,
            "mean_r_high": s.mean_r.high,
            "hit_rate": s.hit_rate.value,
            "brier": self.calibration[name].brier,
        }
        return {k: v if math.isfinite(v) else None for k, v in values.items()}

    def figures(self) -> dict[str, bytes]:
        """One reliability diagram (PNG) per model and for the ensemble."""
        return {
            f"reliability_{_slug(n)}.png": reliability_png(f) for n, f in self.figures_data.items()
        }

    def to_markdown(self) -> str:
        """A self-contained Markdown report."""
        return "\n".join([*self._header(), *self._main_table(), *self._folds(), *self._calib()])

    def _header(self) -> list[str]:
        first, *scored = self.folds
        return [
            "# Ensemble training report",
            "",
            f"- symbols: {', '.join(self.symbols)}",
            f"- data: {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC (1h bars),"
            f" {self.rows} (symbol, hour) rows",
            f"- labels: {self.exits}",
            f"- all labels: {_summary(self.label_summary)}",
            f"- walk-forward: {len(self.folds)} blocks (scikit-learn TimeSeriesSplit), training"
            f" rows purged of labels that end within {self.embargo_h} h of the block",
            f"  - block 1 (calibration only): {first[0]:%Y-%m-%d %H:%M} .. "
            f"{first[1]:%Y-%m-%d %H:%M}",
            *(
                f"  - block {i + 2}: {a:%Y-%m-%d %H:%M} .. {b:%Y-%m-%d %H:%M}"
                for i, (a, b) in enumerate(scored)
            ),
            self._scored_line(),
            *(f"- note: {note}" for note in self.notes),
            "",
        ]

    def _scored_line(self) -> str:
        rule = f"decision rule: trade when expected R after costs > {self.min_expected_r:+.2f}"
        if len(self.folds) < 2:
            return (
                "- out of sample: nothing: the one walk-forward block only calibrates "
                f"(ensemble.walk_forward_folds ≥ 2 scores the models out of sample); {rule}"
            )
        return f"- out of sample (blocks 2..{len(self.folds)}): {self.evaluated_rows} rows; {rule}"

    def _main_table(self) -> list[str]:
        lines = [
            "| source | trades | share of rows | mean R after costs [95 % CI] "
            "| hit rate [95 % CI] | total R |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in self.stats.items():
            share = f"{s.trades / s.rows:.1%}" if s.rows else "–"
            lines.append(
                f"| {name} | {s.trades} | {share} | {_ci(s.mean_r, '+.3f')} "
                f"| {_ci(s.hit_rate, '.1%')} | {s.total_r:+.1f} |"
            )
        mean, hit = self.random
        trades = self.stats[ENSEMBLE].trades if ENSEMBLE in self.stats else 0
        lines.append(
            f"| {RANDOM} (×{trades}, median of 1,000 draws [2.5–97.5 %]) | {trades} | – "
            f"| {_ci(mean, '+.3f')} | {_ci(hit, '.1%')} | – |"
        )
        if self.skipped:
            lines += ["", *(f"- {n} not trained: {why}" for n, why in self.skipped.items())]
        return [*lines, ""]

    def _folds(self) -> list[str]:
        names = list(self.by_fold)
        header = "| block | " + " | ".join(names) + " |"
        lines = ["## Block by block (trades / mean R / hit rate)", "", header]
        lines.append("|---" * (len(names) + 1) + "|")
        for k in range(len(self.folds) - 1):
            cells = [_cell(self.by_fold[n][k]) for n in names]
            lines.append(f"| {k + 2} | " + " | ".join(cells) + " |")
        return [*lines, ""]

    def _calib(self) -> list[str]:
        lines = [
            "## Calibration (out of sample)",
            "",
            "| model | (row, side) pairs | Brier score | largest gap, predicted vs observed "
            "(10 quantile bins) | figure |",
            "|---|---|---|---|---|",
        ]
        for name, r in self.calibration.items():
            lines.append(
                f"| {name} | {r.n} | {_number(r.brier, '.4f')} | {_number(r.max_gap, '.3f')} "
                f"| reliability_{_slug(name)}.png |"
            )
        return [*lines, ""]


def _summary(summary: Mapping[str, float]) -> str:
    return ", ".join(
        f"{k} {v:+.3f}" if k.endswith("mean R") else f"{k} {v:.1%}" for k, v in summary.items()
    )


def _slug(name: str) -> str:
    return name.split(",")[0].replace(" ", "_")


def _number(value: float, spec: str) -> str:
    return f"{value:{spec}}" if math.isfinite(value) else "n/a"


def _ci(value: Interval, spec: str) -> str:
    if math.isnan(value.value):
        return "n/a"
    return f"{value.value:{spec}} [{value.low:{spec}}, {value.high:{spec}}]"


def _cell(s: TradeStats) -> str:
    if s.trades == 0:
        return "0"
    return f"{s.trades} / {s.mean_r.value:+.3f} / {s.hit_rate.value:.0%}"


def build_report(
    panel: Panel,
    folds: Folds,
    runs: Mapping[str, ModelRun],
    settings: Settings,
    symbols: tuple[str, ...],
    skipped: Mapping[str, str],
) -> TrainingReport:
    """Score every source on blocks 2.. of the walk-forward."""
    s = settings.ensemble
    evaluated = np.logical_or.reduce([np.zeros(panel.rows, np.bool_), *folds.test[1:]])
    decisions, confidence = _decisions(panel, folds, runs, settings, evaluated)
    stats = {n: _score(a, panel, evaluated, s.seed) for n, a in decisions.items()}
    trades = stats[ENSEMBLE].trades if ENSEMBLE in stats else 0
    by_fold = {
        n: tuple(_score(a, panel, test, s.seed) for test in folds.test[1:])
        for n, a in decisions.items()
    }
    calibration, figures = _calibration(panel, runs, evaluated, decisions, confidence)
    return TrainingReport(
        symbols=symbols,
        start=utc_from_ms(int(panel.time_ms.min())),
        end=utc_from_ms(int(panel.time_ms.max()) + HOUR_MS),
        rows=panel.rows,
        evaluated_rows=int(evaluated.sum()),
        folds=tuple((utc_from_ms(a), utc_from_ms(b)) for a, b in folds.blocks),
        embargo_h=s.embargo_h,
        min_expected_r=s.min_expected_r,
        label_summary=_label_summary(panel),
        exits=_exits_text(settings),
        stats=stats,
        random=random_entries(trades, panel.outcome_r, evaluated, s.seed),
        by_fold=by_fold,
        calibration=calibration,
        figures_data=figures,
        skipped=dict(skipped),
        notes=panel.notes,
    )


def _score(action: Int8Array, panel: Panel, rows: BoolArray, seed: int) -> TradeStats:
    return trade_stats(action[rows], panel.outcome_r[rows], panel.time_ms[rows], seed)


def _decisions(
    panel: Panel,
    folds: Folds,
    runs: Mapping[str, ModelRun],
    settings: Settings,
    evaluated: BoolArray,
) -> tuple[dict[str, Int8Array], FloatArray]:
    """Every source's action per row (HOLD outside `evaluated`) and the ensemble's confidence."""
    s = settings.ensemble
    members = {}
    for meta in (False, True):
        for name, run in runs.items():
            ok = run.present & evaluated & np.isfinite(run.expected_r).all(axis=1)
            p, r = np.nan_to_num(run.probability), np.nan_to_num(run.expected_r)
            proposed = panel.rule_action if meta else None
            members[(name, meta)] = (*member_votes(p, r, ok, proposed, s.min_expected_r), ok)
    out: dict[str, Int8Array] = {n: members[(n, False)][0] for n in runs}
    confidence = np.zeros(panel.rows)
    for meta, label in ((False, ENSEMBLE), (True, META)):
        chosen = [members[(n, meta)] for n in runs]
        if not chosen:
            continue
        action, conf, _ = decide(
            np.stack([m[0] for m in chosen]),
            np.stack([m[1] for m in chosen]),
            np.stack([m[2] for m in chosen]),
            np.stack([m[3] for m in chosen]),
            s.min_models,
        )
        out[label] = action
        if not meta:
            confidence = conf
    out[RULES] = np.where(evaluated, panel.rule_action, 0).astype(np.int8)
    out[MAJORITY] = _majority(panel, folds, evaluated)
    return out, confidence


def _majority(panel: Panel, folds: Folds, evaluated: BoolArray) -> Int8Array:
    """In each block, always the side that won more often in the block's training rows."""
    out = np.zeros(panel.rows, np.int8)
    for train, test in zip(folds.train, folds.test, strict=True):
        if train.any():
            wins = (panel.outcome_r[train] > 0).mean(axis=0)
            out[test & evaluated] = 1 if wins[0] >= wins[1] else -1
    return out


def _calibration(
    panel: Panel,
    runs: Mapping[str, ModelRun],
    evaluated: BoolArray,
    decisions: Mapping[str, Int8Array],
    confidence: FloatArray,
) -> tuple[dict[str, Reliability], dict[str, ReliabilityFigure]]:
    """Reliability of each model's (row, side) probabilities and of the ensemble's trades."""
    won = panel.outcome_r > 0
    table: dict[str, Reliability] = {}
    figures: dict[str, ReliabilityFigure] = {}
    for name, run in runs.items():
        ok = run.present & evaluated & np.isfinite(run.probability).all(axis=1)
        table[name] = reliability(run.probability[ok].ravel(), won[ok].ravel())
        figures[name] = ReliabilityFigure.of(
            name, table[name], run.expected_r[ok].ravel(), panel.outcome_r[ok].ravel()
        )
    if ENSEMBLE in decisions:
        taken = decisions[ENSEMBLE] != 0
        r = outcomes_of(decisions[ENSEMBLE], panel.outcome_r)[taken]
        table[ENSEMBLE] = reliability(confidence[taken], r > 0)
        figures[ENSEMBLE] = ReliabilityFigure.of(ENSEMBLE, table[ENSEMBLE], None, None)
    return table, figures


def _label_summary(panel: Panel) -> dict[str, float]:
    r = panel.outcome_r
    summary = {
        "long mean R": float(r[:, 0].mean()),
        "short mean R": float(r[:, 1].mean()),
        "long hit rate": float((r[:, 0] > 0).mean()),
        "short hit rate": float((r[:, 1] > 0).mean()),
    }
    summary.update({f"exit {k}": v for k, v in exit_reason_shares(panel).items()})
    return summary


def _exits_text(settings: Settings) -> str:
    o, m = settings.orchestrator, settings.monitor
    return (
        f"a long and a short at each hour's close, exited as the product would: stop "
        f"{settings.sizing.stop_atr_multiple:g} × ATR%, target {o.tp_r_multiple_trending:g} R "
        f"trending / {o.tp_r_multiple_ranging:g} R ranging / {o.tp_r_multiple_default:g} R "
        f"otherwise, break-even at +{m.break_even_trigger:.0%}, trailing from "
        f"+{m.trailing_trigger:.0%}, partial at +{m.partial_tp_trigger:.0%}, time exit after "
        f"{m.max_hold_h:g} h; outcome in R after taker fees, slippage and funding"
    )
