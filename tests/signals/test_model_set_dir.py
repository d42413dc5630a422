"""The models directory as a user keeps it: their own folders beside the sets, and a CURRENT
or a manifest that is not what `train` wrote (found by an outside probe of the ML commands)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from quantum_trader.signals.manifest import Manifest, SetSpec
from quantum_trader.signals.model_set import MANIFEST_FILE, publish_model_set


def empty_set(day: int) -> Manifest:
    """A set of no model, named as `train` names its sets."""
    trained_at = datetime(2025, 1, day, tzinfo=UTC)
    return Manifest(
        set_id=f"{trained_at:%Y%m%dT%H%M%SZ}-0000{day:02x}",
        trained_at=trained_at,
        spec=SetSpec((), 168, 8, {}),
        symbols=("BTC/USDT:USDT",),
        training_start=trained_at - timedelta(days=30),
        training_end=trained_at,
        models=(),
    )


def test_train_removes_only_its_own_older_sets_and_logs_each(tmp_path: Path) -> None:
    """Was: every folder holding a manifest.json counted as a set, sorted by name, so a user's
    `0-known-good` backup (sorting before the dates) was deleted by the next train."""
    models = tmp_path / "models"
    for mine in ("0-known-good", "my-copy", "zz-notes"):
        (models / mine).mkdir(parents=True)
        (models / mine / MANIFEST_FILE).write_text("{}")
    published = [empty_set(day) for day in range(1, 6)]
    with capture_logs() as logs:
        for manifest in published:
            publish_model_set(models, manifest, {})
    kept = sorted(p.name for p in models.iterdir() if p.is_dir())
    newest = [m.set_id for m in published[-3:]]
    assert kept == sorted(["0-known-good", "my-copy", "zz-notes", *newest])
    removed = [e for e in logs if e["event"] == "model_set_removed"]
    assert [e["model_set"] for e in removed] == [m.set_id for m in published[:2]]
    assert (models / "CURRENT").read_text().strip() == published[-1].set_id
