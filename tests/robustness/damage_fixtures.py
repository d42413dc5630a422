"""A data directory as the real daemon leaves it (an open position, its stop on the paper
exchange), made once per test worker and copied into each test that damages something."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from daemon_harness import DATABASE, PAPER_STATE, Daemon, eventually

# A replay start where the rule agent opens a position within seconds at this speed.
TEMPLATE_ENV = {
    "QT_MARKET__REPLAY_START": "2025-09-12T00:00:00Z",
    "QT_MARKET__REPLAY_SPEED": "3000",
    "QT_SIGNALS__SOURCE": "rules",
}
KEPT = (DATABASE, PAPER_STATE)


@pytest.fixture(scope="session")
def stopped_daemon_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("template") / "data"
    daemon = Daemon.start(data_dir, **TEMPLATE_ENV)
    try:
        eventually(lambda: daemon.query("SELECT 1 FROM positions"), 120, "an open position")
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0, daemon.stderr
    for log in data_dir.glob("run-*"):
        log.unlink()
    return data_dir


@pytest.fixture
def data_dir(stopped_daemon_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of a stopped daemon's data directory."""
    copy = tmp_path / "data"
    shutil.copytree(stopped_daemon_template, copy)
    return copy


def contents(data_dir: Path, names: tuple[str, ...] = KEPT) -> dict[str, bytes | None]:
    """The bytes of the files that must survive a refusal untouched (None: absent)."""
    found: dict[str, bytes | None] = {}
    for name in names:
        path = data_dir / name
        found[name] = path.read_bytes() if path.is_file() else None
    return found
