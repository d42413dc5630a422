"""The summary's signals line of a run that traded without trained models."""

from __future__ import annotations

from quantum_trader.report.provenance import Provenance, Sample


def test_a_run_without_models_says_none_were_used_whether_there_were_none_or_refused() -> None:
    """Was `rules (no trained models)`, printed beside the row `trained models not used: …`
    that names a refused model set (an outside probe, 2026-12-06): both could not be true."""
    assert Provenance("rules", Sample.UNTRAINED).describe() == "rules (no trained models used)"
