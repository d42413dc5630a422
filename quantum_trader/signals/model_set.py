"""A model set on disk: every model of one training run, published atomically, never a pickle.

Layout under the models directory:
  CURRENT                      the name of the set in use (replaced atomically)
  <set id>/manifest.json       what the set was trained on and with; per model its file, sha256,
                               size, parameters, calibration and out-of-sample metrics
  <set id>/<model file>        XGBoost JSON, LightGBM text, PyTorch state_dict (weights only)
  <set id>/VALIDATION.md, *.png the training report and its reliability diagrams
  .partial-<set id>/           a set being written (ignored by readers, swept by the next train)

`train` removes only folders named as it names its sets (`SET_ID`), keeping the newest KEEP_SETS
of them: any other folder (a user's backup, a copied set) is left alone, whatever it holds.

Publishing writes every file into `.partial-<id>/`, flushes it, renames the directory to `<id>`
and only then replaces CURRENT: a reader sees the previous complete set or the new complete set,
never a mix, whenever the writer stops. A set is used only when its manifest matches what the
program computes (format, features, lookback, horizon, the settings its labels were made with)
and every file it lists is present with its size; otherwise the whole set is refused with one
line saying why. A listed file that is present but damaged makes only that model abstain.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from quantum_trader.errors import ModelArtifactError
from quantum_trader.log import get_logger
from quantum_trader.signals.calibration import Calibration
from quantum_trader.signals.manifest import (
    MODEL_FILES,
    Manifest,
    ModelEntry,
    ModelSetError,
    SetSpec,
)
from quantum_trader.stop_signals import stop_signals

MODELS_SUBDIR = "models"
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
PARTIAL_PREFIX = ".partial-"
KEEP_SETS = 3
SET_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
"""How `new_set_id` names a set: the only folders `train` ever removes."""

log = get_logger("signals.model_set")


def new_set_id(now: datetime) -> str:
    """A new set's name: its training time (names sort by time) and a random suffix."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def entry_for(name: str, payload: bytes, calibration: Calibration, **extra: Any) -> ModelEntry:
    """The manifest entry of a model file about to be published."""
    return ModelEntry(
        name, MODEL_FILES[name], sha256_hex(payload), len(payload), calibration, **extra
    )


def publish_model_set(
    models_dir: Path,
    manifest: Manifest,
    payloads: Mapping[str, bytes],
    extras: Mapping[str, bytes] | None = None,
) -> Path:
    """Write the set under a temporary name, rename it into place, then point CURRENT at it.

    `payloads` maps each model of the manifest to its file's bytes; `extras` maps other file
    names (the report, its figures) to bytes. Returns the published set's directory.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = models_dir / f"{PARTIAL_PREFIX}{manifest.set_id}"
    final = models_dir / manifest.set_id
    try:
        partial.mkdir()
        for entry in manifest.models:
            _write_synced(partial / entry.file, payloads[entry.name])
        for name, payload in (extras or {}).items():
            _write_synced(partial / name, payload)
        _write_synced(partial / MANIFEST_FILE, manifest.to_json().encode())
        _sync_directory(partial)
        with _signals_deferred():  # the two renames are the commit: finish them
            os.rename(partial, final)
            _write_synced(models_dir / f"{CURRENT_FILE}.tmp", f"{manifest.set_id}\n".encode())
            os.replace(models_dir / f"{CURRENT_FILE}.tmp", models_dir / CURRENT_FILE)
            _sync_directory(models_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _prune(models_dir, manifest.set_id)
    return final


def models_dir_in(data_dir: Path) -> Path:
    """Where `train` publishes model sets and where the daemon and backtest load them from."""
    return data_dir / MODELS_SUBDIR


def current_set(models_dir: Path) -> Path | None:
    """The directory CURRENT names, or None when no set was ever published (no models
    directory, or one with neither CURRENT nor a set). Sets without a usable CURRENT (missing,
    a directory) and a models path that is a file are a ModelSetError: whoever trained must
    hear why the models are not used, not see the rule agent trade in silence."""
    if not models_dir.exists():
        return None
    if not models_dir.is_dir():
        raise ModelSetError(
            f"{models_dir} is a file, not the directory model sets are kept in; move it aside,"
            " then retrain with `quantum-trader train`"
        )
    pointer = models_dir / CURRENT_FILE
    if not pointer.exists():
        sets = published_sets(models_dir)
        if not sets:
            return None
        raise ModelSetError(
            f"{pointer} is missing, though {models_dir} holds model sets"
            f" ({', '.join(sets[-KEEP_SETS:])}); write the name of the set to use into it"
            " or retrain with `quantum-trader train`"
        )
    if not pointer.is_file():
        raise ModelSetError(
            f"{pointer} is not a file (a directory?); move it aside, then write the name of"
            " the set to use into it or retrain with `quantum-trader train`"
        )
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelSetError(f"{pointer}: unreadable ({error})") from error
    if not name or "/" in name or name.startswith("."):
        raise ModelSetError(f"{pointer}: does not name a model set ({name!r})")
    return models_dir / name


def published_sets(models_dir: Path) -> list[str]:
    """The folders holding a manifest (the sets, a user's copies too), by name."""
    return sorted(
        p.name
        for p in models_dir.iterdir()
        if not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()
    )


def read_manifest(set_dir: Path, spec: SetSpec) -> Manifest:
    """The set's manifest, checked against `spec` and for completeness; else ModelSetError."""
    try:
        text = (set_dir / MANIFEST_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelSetError(
            f"model set {set_dir.name}: no readable manifest ({error.__class__.__name__});"
            " retrain with `quantum-trader train`"
        ) from error
    manifest = Manifest.from_json(text)
    mismatch = _mismatch(manifest.spec, spec)
    if mismatch:
        raise ModelSetError(
            f"model set {manifest.set_id} was trained with {mismatch}; retrain with"
            " `quantum-trader train` (or restore the settings it was trained with)"
        )
    for entry in manifest.models:
        path = set_dir / entry.file
        if not path.is_file() or path.stat().st_size != entry.size_bytes:
            raise ModelSetError(
                f"model set {manifest.set_id} is incomplete: {entry.file} is missing or not"
                f" {entry.size_bytes} bytes; retrain with `quantum-trader train`"
            )
    return manifest


def read_model_bytes(set_dir: Path, entry: ModelEntry) -> bytes:
    """A model file's bytes after checking its size and sha256; else ModelArtifactError."""
    try:
        payload = (set_dir / entry.file).read_bytes()
    except OSError as error:
        raise ModelArtifactError(f"{entry.name}: cannot read {entry.file} ({error})") from error
    if len(payload) != entry.size_bytes or sha256_hex(payload) != entry.sha256:
        raise ModelArtifactError(f"{entry.name}: {entry.file} does not match its sha256")
    return payload


def sweep_partials(models_dir: Path) -> list[str]:
    """Remove sets a stopped writer left half-written; return their names."""
    if not models_dir.is_dir():
        return []
    swept = []
    for path in models_dir.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)
        swept.append(path.name)
    return swept


def _mismatch(trained: SetSpec, wanted: SetSpec) -> str:
    """'what = trained value, settings ask for wanted value' for the first difference, or ''."""
    if trained.features != wanted.features:
        return (
            f"{len(trained.features)} features that differ from this program's"
            f" {len(wanted.features)}"
        )
    if trained.lookback_bars != wanted.lookback_bars:
        return f"lookback {trained.lookback_bars} h, settings ask for {wanted.lookback_bars} h"
    if trained.horizon_h != wanted.horizon_h:
        return f"horizon {trained.horizon_h} h, settings ask for {wanted.horizon_h} h"
    for key, value in _flatten(wanted.exit_rules).items():
        old = _flatten(trained.exit_rules).get(key)
        if old != value:
            return f"{key} = {old}, settings ask for {value}"
    return ""


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold the stop signals back until the block is done (main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _write_synced(path: Path, payload: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _prune(models_dir: Path, current: str) -> None:
    """Keep the newest KEEP_SETS sets `train` published (by name: ids sort by time) and
    `current`; remove the older ones, each logged. Other folders are a user's: kept."""
    sets = sorted(
        p
        for p in models_dir.iterdir()
        if SET_ID.fullmatch(p.name) and p.is_dir() and (p / MANIFEST_FILE).is_file()
    )
    for old in sets[:-KEEP_SETS]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
            log.info("model_set_removed", model_set=old.name, models_dir=str(models_dir))
