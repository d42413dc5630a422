"""A model set's manifest (`manifest.json`): what the set was trained on and with, and per model
its file, sha256, size, calibration and out-of-sample metrics; read back only when it holds
what a `train` writes (else ModelSetError, the whole set refused with one line)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Any

from quantum_trader import __version__
from quantum_trader.errors import ModelArtifactError
from quantum_trader.record import record
from quantum_trader.signals.calibration import Calibration

FORMAT_VERSION = 2
MODEL_FILES = {
    "xgboost": "xgboost.json",
    "lightgbm": "lightgbm.txt",
    "nhits": "nhits.pt",
    "patchtst": "patchtst.pt",
}


class ModelSetError(ModelArtifactError):
    """The model set as a whole cannot be used (missing, incomplete, or made for other settings)."""


@record
class ModelEntry:
    """One model of a set: its file and everything needed to use it."""

    name: str
    file: str
    sha256: str
    size_bytes: int
    calibration: Calibration
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    """Out-of-sample numbers; None (JSON null) where undefined (no trade scored)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "calibration": self.calibration.to_json(),
            "params": dict(self.params),
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelEntry:
        name = str(data["name"])
        if MODEL_FILES.get(name) != data["file"]:
            raise ValueError(f"unexpected file {data['file']!r} for {name!r}")
        return cls(
            name=name,
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            calibration=Calibration.from_json(data["calibration"]),
            params=dict(data["params"]),
            metrics={
                str(k): None if v is None else float(v) for k, v in dict(data["metrics"]).items()
            },
        )


@record
class SetSpec:
    """What a model set must have been trained for, to be usable with these settings."""

    features: tuple[str, ...]
    lookback_bars: int
    horizon_h: int
    exit_rules: Mapping[str, Any]


@record
class Manifest:
    """A model set's description (`manifest.json`).

    `training_start` .. `training_end` is the data the set's labels read: from the open of the
    first labelled hour to the close of the last bar of the training data (a label scans up to
    there when its trade is still open). A backtest inside it is in-sample. `symbols` are those
    its rows came from: a symbol left out of training (no usable row) is not among them.
    """

    set_id: str
    trained_at: datetime
    spec: SetSpec
    symbols: tuple[str, ...]
    training_start: datetime
    training_end: datetime
    models: tuple[ModelEntry, ...]
    format_version: int = FORMAT_VERSION
    package_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "package_version": self.package_version,
                "set_id": self.set_id,
                "trained_at": self.trained_at.isoformat(),
                "features": list(self.spec.features),
                "lookback_bars": self.spec.lookback_bars,
                "horizon_h": self.spec.horizon_h,
                "exit_rules": dict(self.spec.exit_rules),
                "symbols": list(self.symbols),
                "training_start": self.training_start.isoformat(),
                "training_end": self.training_end.isoformat(),
                "models": [m.to_json() for m in self.models],
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
            version = int(data["format_version"])
            if version != FORMAT_VERSION:
                raise ModelSetError(
                    f"model set format {version}, this program reads {FORMAT_VERSION};"
                    " retrain with `quantum-trader train`"
                )
            manifest = cls(
                set_id=str(data["set_id"]),
                trained_at=datetime.fromisoformat(str(data["trained_at"])),
                spec=SetSpec(
                    tuple(str(f) for f in data["features"]),
                    int(data["lookback_bars"]),
                    int(data["horizon_h"]),
                    dict(data["exit_rules"]),
                ),
                symbols=tuple(str(s) for s in data["symbols"]),
                training_start=datetime.fromisoformat(str(data["training_start"])),
                training_end=datetime.fromisoformat(str(data["training_end"])),
                models=tuple(ModelEntry.from_json(m) for m in data["models"]),
                format_version=version,
                package_version=str(data["package_version"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ModelSetError(f"unreadable model set manifest ({error!r})") from error
        damage = manifest._damage(data["symbols"])
        if damage:
            raise ModelSetError(
                f"model set {manifest.set_id}: manifest.json {damage}; retrain with"
                " `quantum-trader train`"
            )
        return manifest

    def _damage(self, symbols: object) -> str:
        """What a readable manifest holds that no `train` writes, or ''."""
        times = ("trained_at", "training_start", "training_end")
        naive = [t for t in times if getattr(self, t).tzinfo is None]
        if naive:
            return f"has {naive[0]} without a time zone"
        if not isinstance(symbols, list):  # a string would be read as one symbol per letter
            return f"has symbols {symbols!r}, not a list of symbols"
        names = [m.name for m in self.models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # each entry is a voter: one listed twice would vote twice
            return f"lists {', '.join(twice)} twice"
        if self.training_start > self.training_end:
            return (
                f"has training_start {self.training_start.isoformat()} after training_end"
                f" {self.training_end.isoformat()}"
            )
        return ""


@record
class ModelProvenance:
    """Where a loaded model learned: its set, when, the data its labels read and the symbols
    it learned from."""

    model: str
    set_id: str
    trained_at: datetime
    training_start: datetime
    training_end: datetime
    symbols: tuple[str, ...] = ()

    @classmethod
    def of(cls, manifest: Manifest, model: str) -> ModelProvenance:
        return cls(
            model,
            manifest.set_id,
            manifest.trained_at,
            manifest.training_start,
            manifest.training_end,
            manifest.symbols,
        )
