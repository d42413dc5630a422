"""Where a backtest's signals came from, and whether its window is out of sample.

A backtest must not silently evaluate models on the data they were trained on. The models'
training window is read from their model set's manifest (`training_start` .. `training_end`
in data_dir/models/<set>/manifest.json: the data their labels read). A window that overlaps it, or
models that do not record it, are refused unless the caller explicitly allows an in-sample
run, which is then stamped IN-SAMPLE in every output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from quantum_trader.errors import ConfigurationError
from quantum_trader.record import record
from quantum_trader.signals.manifest import ModelProvenance

IN_SAMPLE_FLAG = "--allow-in-sample"
TRAIN_ON_THEM = (
    "train on them (list them in market.symbols, then `quantum-trader train`) or leave them out "
    "of the symbols traded"
)


class Sample(StrEnum):
    """What the backtest's numbers are: the stamp on every output."""

    OUT_OF_SAMPLE = "OUT-OF-SAMPLE"
    IN_SAMPLE = "IN-SAMPLE"
    UNTRAINED = "RULES (NO TRAINED MODELS)"


@record
class TrainingWindow:
    """The data a set of models learned from: [start, end), UTC."""

    start: datetime
    end: datetime
    models: tuple[str, ...]

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    def describe(self) -> str:
        return f"{self.start.isoformat()} .. {self.end.isoformat()}"


@record
class SignalPeriod:
    """Signals over [start, end) came from models trained on `training` (None: unknown)."""

    start: datetime
    end: datetime
    training: TrainingWindow | None
    models_dir: str


@record
class Provenance:
    """The signal source, the sample stamp and, for trained models, where they learned."""

    signal_source: str
    sample: Sample
    periods: tuple[SignalPeriod, ...] = ()

    def describe(self) -> str:
        """One line for the summary: the source and the models' training window(s)."""
        if not self.periods:
            return f"{self.signal_source} (no trained models used)"  # none, or refused
        windows = "; ".join(
            f"{p.start.date()}..{p.end.date()} from models trained on "
            + (p.training.describe() if p.training else "an unrecorded window")
            for p in self.periods
        )
        return f"{self.signal_source}: {windows}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal_source": self.signal_source,
            "sample": self.sample.value,
            "periods": [
                {
                    "start": p.start.isoformat(),
                    "end": p.end.isoformat(),
                    "models_dir": p.models_dir,
                    "models": list(p.training.models) if p.training else [],
                    "training_start": p.training.start.isoformat() if p.training else None,
                    "training_end": p.training.end.isoformat() if p.training else None,
                }
                for p in self.periods
            ],
        }


def training_window(metadata: Mapping[str, ModelProvenance]) -> TrainingWindow | None:
    """The union of the models' training windows; None when any model does not record one."""
    starts = [m.training_start for m in metadata.values()]
    ends = [m.training_end for m in metadata.values()]
    if not metadata or None in starts or None in ends:
        return None
    return TrainingWindow(
        min(s for s in starts if s is not None),
        max(e for e in ends if e is not None),
        tuple(sorted(metadata)),
    )


def in_sample_replay(
    metadata: Mapping[str, ModelProvenance],
    models_dir: Path,
    window: tuple[datetime, datetime],
) -> str | None:
    """The warning of a paper run whose replay covers hours its models learned from, or None.

    A backtest refuses such a window; a paper run over recorded data (often right after
    `train` on the same data) is not refused, but must not look like an honest result.
    """
    trained = training_window(metadata)
    start, end = window
    if trained is None or not trained.overlaps(start, end):
        return None
    later = (
        f", start the replay at {trained.end.isoformat()} or later (market.replay_start)"
        if trained.end < end
        else ""
    )
    return (
        f"the replay {start.isoformat()} .. {end.isoformat()} overlaps the training window "
        f"{trained.describe()} of the models in {models_dir}: their signals there are "
        "in-sample (the models learned from those hours), so this run does not show how they "
        f"trade a market they have not seen; retrain with ensemble.training_end = "
        f"{start.date().isoformat()} or earlier{later}, or use `quantum-trader walk-forward`"
    )


def not_trained_on(
    metadata: Mapping[str, ModelProvenance], symbols: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The symbols of `symbols` no model learned from, and the symbols the models learned from."""
    trained = tuple(sorted({s for m in metadata.values() for s in m.symbols}))
    return tuple(s for s in symbols if s not in trained), trained


def not_trained_on_line(untrained: Sequence[str], trained: Sequence[str], models_dir: Path) -> str:
    """The caveat of a run that trades `untrained` with models trained on `trained` only."""
    return (
        f"the models in {models_dir} were not trained on {', '.join(untrained)} (trained on "
        f"{', '.join(trained) or 'no symbol recorded'}): their signals there come from markets "
        f"they have not learned; {TRAIN_ON_THEM}"
    )


def check_window(
    source_name: str,
    metadata: Mapping[str, ModelProvenance] | None,
    models_dir: Path,
    window: tuple[datetime, datetime],
    allow_in_sample: bool,
) -> Provenance:
    """The provenance of a backtest over `window`; refuse an in-sample one unless allowed.

    `metadata` None: the source is not trained (the rule agent). Raise ConfigurationError
    (one line naming both windows and the flag) when the window overlaps the models'
    training window, or the models do not record it, and `allow_in_sample` is False.
    """
    if metadata is None:
        return Provenance(source_name, Sample.UNTRAINED)
    start, end = window
    trained = training_window(metadata)
    period = (SignalPeriod(start, end, trained, str(models_dir)),)
    if trained is not None and not trained.overlaps(start, end):
        return Provenance(source_name, Sample.OUT_OF_SAMPLE, period)
    if not allow_in_sample:
        raise ConfigurationError([_refusal(start, end, trained, models_dir)])
    return Provenance(source_name, Sample.IN_SAMPLE, period)


def _refusal(
    start: datetime, end: datetime, trained: TrainingWindow | None, models_dir: Path
) -> str:
    window = f"{start.isoformat()} .. {end.isoformat()}"
    if trained is None:
        return (
            f"backtest {window}: the models in {models_dir} do not record their training "
            "window, so the result may be in-sample; retrain them (`quantum-trader train`), "
            f"use `quantum-trader walk-forward`, or pass {IN_SAMPLE_FLAG} to run anyway, "
            "stamped IN-SAMPLE"
        )
    return (
        f"backtest {window} overlaps the training window {trained.describe()} of the models "
        f"in {models_dir}: the result would be in-sample; backtest outside it, use "
        f"`quantum-trader walk-forward`, or pass {IN_SAMPLE_FLAG} to run anyway, stamped "
        "IN-SAMPLE"
    )


def walk_forward_provenance(periods: Sequence[SignalPeriod]) -> Provenance:
    """Walk-forward blocks: each must be traded by models that finished learning before it."""
    for period in periods:
        if period.training is None or period.training.end > period.start:
            raise AssertionError(f"walk-forward block {period.start} trained on its own data")
    return Provenance("walk-forward ensemble", Sample.OUT_OF_SAMPLE, tuple(periods))
