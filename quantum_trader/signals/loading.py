"""Load the current model set into an ensemble, refusing whatever cannot be trusted.

The set as a whole (signals/model_set.py): missing, incomplete or trained for other features or
settings → refused with one `model_set_refused` line; the daemon falls back to the rule agent
(or exits when `signals.source = "ensemble"` insists). Each model file: size and sha256 against
the manifest, then (tree models) its structure checked in this process and a trial load in a
child process, before the native library parses it here; a model that fails is logged as
`model_load_failed` with its name and reason, and abstains.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from quantum_trader.errors import ModelArtifactError
from quantum_trader.log import get_logger
from quantum_trader.market.replay import FundingSeries
from quantum_trader.signals.ensemble import Ensemble, LoadedModel
from quantum_trader.signals.features import MODEL_INPUTS
from quantum_trader.signals.labels import ExitRules
from quantum_trader.signals.manifest import (
    Manifest,
    ModelEntry,
    ModelProvenance,
    ModelSetError,
    SetSpec,
)
from quantum_trader.signals.model_set import current_set, read_manifest, read_model_bytes
from quantum_trader.signals.models.base import TREE_MODELS
from quantum_trader.signals.models.model_files import probe_in_child, probe_result
from quantum_trader.signals.models.registry import build_predictor
from quantum_trader.signals.rules import RuleAgent

if TYPE_CHECKING:
    from quantum_trader.config import Settings

log = get_logger("signals.loading")


def expected_spec(settings: Settings) -> SetSpec:
    """What a model set must have been trained for to serve these settings."""
    return SetSpec(
        features=MODEL_INPUTS,
        lookback_bars=settings.ensemble.lookback_bars,
        horizon_h=settings.ensemble.forecast_horizon_h,
        exit_rules=ExitRules.of(settings).fingerprint(),
    )


def load_ensemble(
    models_dir: Path,
    settings: Settings,
    funding: Mapping[str, FundingSeries] | None = None,
    not_used: list[str] | None = None,
) -> Ensemble | None:
    """The ensemble of the current set's models that load; None when none does. A set there
    that is refused, or of which no model loads, is also a line in `not_used` (a backtest
    shows it in its report)."""
    try:
        set_dir = current_set(models_dir)
        if set_dir is None:
            log.info("no_models_loaded", models_dir=str(models_dir))
            return None
        manifest = read_manifest(set_dir, expected_spec(settings))
    except ModelSetError as error:
        log.warning("model_set_refused", models_dir=str(models_dir), reason=str(error))
        if not_used is not None:
            not_used.append(f"the model set in {models_dir} was refused: {error}")
        return None
    loaded = _load_models(set_dir, manifest, settings)
    if not loaded:
        log.info("no_models_loaded", models_dir=str(models_dir), model_set=manifest.set_id)
        if not_used is not None:
            not_used.append(f"no model of set {manifest.set_id} loaded (model_load_failed)")
        return None
    rules = RuleAgent(settings.signals)
    listed = tuple(m.name for m in manifest.models)
    return Ensemble(loaded, settings.ensemble, manifest.trained_at, rules, funding, listed)


def _load_models(set_dir: Path, manifest: Manifest, settings: Settings) -> list[LoadedModel]:
    wanted = [e for e in manifest.models if e.name in settings.ensemble.models]
    payloads: dict[str, bytes] = {}
    for entry in wanted:
        try:
            payloads[entry.name] = read_model_bytes(set_dir, entry)
        except ModelArtifactError as error:
            log.warning("model_load_failed", model=entry.name, reason=str(error))
    trees = {
        e.name: (set_dir / e.file, e.sha256)
        for e in wanted
        if e.name in payloads and e.name in TREE_MODELS
    }
    child = probe_in_child(trees, len(MODEL_INPUTS)) if trees else None
    loaded: dict[str, LoadedModel] = {}
    for entry in wanted:
        if entry.name in payloads and entry.name not in trees:
            _build(entry, payloads[entry.name], manifest, settings, loaded)
    refused = probe_result(child, list(trees)) if child is not None else {}
    for entry in wanted:
        if entry.name in refused:
            reason = f"{entry.name}: {refused[entry.name]}"
            log.warning("model_load_failed", model=entry.name, reason=reason)
        elif entry.name in trees:
            _build(entry, payloads[entry.name], manifest, settings, loaded)
    return [loaded[e.name] for e in wanted if e.name in loaded]


def _build(
    entry: ModelEntry,
    payload: bytes,
    manifest: Manifest,
    settings: Settings,
    into: dict[str, LoadedModel],
) -> None:
    try:
        predictor = build_predictor(
            entry,
            payload,
            len(MODEL_INPUTS),
            manifest.spec.lookback_bars,
            manifest.spec.horizon_h,
            settings.ensemble.torch_threads,
        )
    except ModelArtifactError as error:
        log.warning("model_load_failed", model=entry.name, reason=str(error))
        return
    into[entry.name] = LoadedModel(
        predictor, entry.calibration, ModelProvenance.of(manifest, entry.name)
    )
