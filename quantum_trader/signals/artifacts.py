"""Model artifacts on disk: one model file and one metadata JSON per model, never a pickle.

Layout in the models directory: `<model>.json` (metadata) next to `<model>.<ext>` (XGBoost
UBJSON, LightGBM text, or a PyTorch state_dict read with `weights_only=True`). The metadata
holds the features, window, symbols, version, metrics, hyper-parameters, the sha256 of the
model file and `trained_at` (given by the caller). Loading checks the format version, the
hash and the feature list before any model library parses a byte: a mismatch or corruption
is a ModelArtifactError naming the model and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from quantum_trader.errors import ModelArtifactError

FORMAT_VERSION = 1
MODEL_EXTENSIONS = {"xgboost": "ubj", "lightgbm": "txt", "nhits": "pt", "patchtst": "pt"}


@dataclass(frozen=True, slots=True)
class ArtifactMetadata:
    """What a model was trained on and how well it did out of sample.

    `training_start` .. `training_end` is the data its labels read: from the open of the first
    labelled hour to the close of the last bar a label looked at (None: not recorded, as in
    artifacts written before this field existed). A backtest inside it is in-sample.
    """

    model: str
    model_file: str
    sha256: str
    features: tuple[str, ...]
    lookback_bars: int
    horizon_h: int
    label_threshold: float
    symbols: tuple[str, ...]
    trained_at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    package_version: str = "0.1.0"
    training_start: datetime | None = None
    training_end: datetime | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["features"] = list(self.features)
        data["symbols"] = list(self.symbols)
        data["trained_at"] = self.trained_at.isoformat()
        for name in ("training_start", "training_end"):
            moment = getattr(self, name)
            data[name] = moment.isoformat() if moment is not None else None
        data["metrics"] = dict(self.metrics)
        data["params"] = dict(self.params)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, model: str) -> ArtifactMetadata:
        try:
            data = json.loads(text)
            meta = cls(
                model=str(data["model"]),
                model_file=str(data["model_file"]),
                sha256=str(data["sha256"]),
                features=tuple(str(f) for f in data["features"]),
                lookback_bars=int(data["lookback_bars"]),
                horizon_h=int(data["horizon_h"]),
                label_threshold=float(data["label_threshold"]),
                symbols=tuple(str(s) for s in data["symbols"]),
                trained_at=datetime.fromisoformat(str(data["trained_at"])),
                metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
                params=dict(data["params"]),
                format_version=int(data["format_version"]),
                package_version=str(data["package_version"]),
                training_start=_optional_time(data.get("training_start")),
                training_end=_optional_time(data.get("training_end")),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ModelArtifactError(f"{model}: unreadable metadata ({error})") from error
        if meta.trained_at.tzinfo is None:
            raise ModelArtifactError(f"{model}: trained_at has no time zone")
        return meta


def _optional_time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def metadata_path(models_dir: Path, model: str) -> Path:
    return models_dir / f"{model}.json"


def write_artifact(models_dir: Path, metadata: ArtifactMetadata, payload: bytes) -> Path:
    """Write the model file then its metadata (each atomically); return the metadata path.

    `metadata.sha256` and `metadata.model_file` are filled in here from `payload`.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    model_file = f"{metadata.model}.{MODEL_EXTENSIONS[metadata.model]}"
    final = ArtifactMetadata(
        **{
            **{name: getattr(metadata, name) for name in metadata.__dataclass_fields__},
            "model_file": model_file,
            "sha256": sha256_hex(payload),
        }
    )
    _write_atomic(models_dir / model_file, payload)
    path = metadata_path(models_dir, metadata.model)
    _write_atomic(path, final.to_json().encode())
    return path


def read_artifact(
    models_dir: Path, model: str, expected_features: Sequence[str]
) -> tuple[ArtifactMetadata, bytes]:
    """Return the verified metadata and model bytes, or raise ModelArtifactError."""
    try:
        text = metadata_path(models_dir, model).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelArtifactError(f"{model}: cannot read metadata ({error})") from error
    meta = ArtifactMetadata.from_json(text, model)
    _check(meta, model, expected_features)
    try:
        payload = (models_dir / meta.model_file).read_bytes()
    except OSError as error:
        raise ModelArtifactError(f"{model}: cannot read {meta.model_file} ({error})") from error
    if sha256_hex(payload) != meta.sha256:
        raise ModelArtifactError(f"{model}: {meta.model_file} does not match its sha256")
    return meta, payload


def _check(meta: ArtifactMetadata, model: str, expected_features: Sequence[str]) -> None:
    if meta.format_version != FORMAT_VERSION:
        raise ModelArtifactError(
            f"{model}: artifact format {meta.format_version}, this program reads {FORMAT_VERSION}"
        )
    if meta.model != model:
        raise ModelArtifactError(f"{model}: metadata describes {meta.model!r}")
    expected_file = f"{model}.{MODEL_EXTENSIONS[model]}"
    if meta.model_file != expected_file:
        raise ModelArtifactError(f"{model}: unexpected model file {meta.model_file!r}")
    if tuple(meta.features) != tuple(expected_features):
        raise ModelArtifactError(
            f"{model}: trained on {len(meta.features)} features that differ from this "
            f"program's {len(expected_features)}; retrain with `quantum-trader train`"
        )


def _write_atomic(path: Path, payload: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(payload)
    os.replace(temporary, path)
