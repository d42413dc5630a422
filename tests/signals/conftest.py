"""Fixtures of the signal tests: one tiny trained model set per worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from ml_fixtures import train_tiny

from quantum_trader.signals.training import TrainingResult


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingResult]:
    """(data dir, training result) of the tiny set; never modify it (copy it first)."""
    data_dir = tmp_path_factory.mktemp("trained")
    return data_dir, train_tiny(data_dir)
