"""The systemd unit `make service-unit` prints, held to the daemon it runs: what the unit
assumes of the daemon (its stop signal, how long a stop takes, which exits are worth a
restart) is checked against the real daemon. No systemd runs on the project's machines;
`systemd-analyze verify` on the rendered unit is a manual check (README)."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from daemon_harness import Daemon, eventually

from quantum_trader.config import Settings
from quantum_trader.ops.settings import MAX_SHUTDOWN_FLUSH_S

Unit = dict[str, dict[str, str]]


def rendered() -> tuple[str, Unit]:
    """The unit as `make -s service-unit` prints it in the checkout, and its settings."""
    text = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "service-unit"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    unit: Unit = {}
    section: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section[key] = value
    return text, unit


def test_the_unit_runs_this_checkouts_daemon_as_the_user_without_secrets() -> None:
    text, unit = rendered()
    service = unit["Service"]
    assert service["ExecStart"] == f"{REPO}/.venv/bin/quantum-trader run"
    assert service["WorkingDirectory"] == str(REPO)
    assert service["User"] == pwd.getpwuid(os.getuid()).pw_name  # as `id -un` names it
    assert "@ROOT@" not in text
    assert "@USER@" not in text
    assert "API_SECRET" not in text  # the keys only in the EnvironmentFile
    assert service["EnvironmentFile"].startswith("-/etc/")  # optional, outside the checkout
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_stop_timeout_outlasts_the_daemons_grace() -> None:
    service = rendered()[1]["Service"]
    settings = Settings()
    grace_s, flush_s = settings.executor.shutdown_grace_s, settings.notify.shutdown_flush_s
    # The grace for an order in flight, the same again for the operator requests pending,
    # the notifications' flush, then the database's flush and the exit.
    assert float(service["TimeoutStopSec"]) >= 2 * grace_s + flush_s + 10
    assert float(service["TimeoutStopSec"]) >= MAX_SHUTDOWN_FLUSH_S
    assert service["KillMode"] == "mixed"  # the daemon first; its helpers only at the timeout


def test_a_configuration_error_exits_with_a_status_the_unit_does_not_restart(
    tmp_path: Path,
) -> None:
    service = rendered()[1]["Service"]
    daemon = Daemon.start(tmp_path, QT_EXECUTOR__SHUTDOWN_GRACE_S="-1")
    code = daemon.process.wait(timeout=60)
    assert "configuration error: executor.shutdown_grace_s" in daemon.stderr
    assert str(code) in service["RestartPreventExitStatus"].split()
    assert service["Restart"] == "on-failure"  # so exit 1 and a crash are restarted


@pytest.mark.slow
def test_the_units_stop_signal_is_the_daemons_clean_stop_within_its_timeout(
    tmp_path: Path,
) -> None:
    service = rendered()[1]["Service"]
    daemon = Daemon.start(tmp_path, QT_MARKET__REPLAY_SPEED="600")
    eventually(lambda: daemon.logged_so_far("runtime_ready"), 60, "the daemon to start")
    stop = signal.Signals[service["KillSignal"]]
    code = daemon.stop(stop, timeout_s=float(service["TimeoutStopSec"]))
    assert code == 0, daemon.stderr[-2000:]  # exit 0: Restart=on-failure leaves it stopped
    assert daemon.events[-1]["event"] == "daemon_stopped"
