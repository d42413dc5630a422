"""The real daemon pointed at a Binance stand-in by settings alone: `quantum-trader run` in
testnet mode with exchange.rest_url / ws_url on the loopback stand-in running in its own
process, in wall time, as an outsider would run it against theirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from daemon_harness import Daemon, eventually
from loopback.fixtures import API_KEY, API_SECRET


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`python -m loopback` in a subprocess; yields its addresses."""
    output = tmp_path / "standin.out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    with output.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopback", "--seed", "3"], env=env, stdout=stdout
        )
    try:
        line = eventually(lambda: output.read_text().strip(), 20, "the stand-in's addresses")
        yield json.loads(line.splitlines()[0])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


@pytest.mark.slow
def test_the_daemon_runs_on_a_standin_named_by_settings(
    standin: dict[str, str], tmp_path: Path
) -> None:
    daemon = Daemon.start(
        tmp_path / "data",
        QT_EXCHANGE__MODE="testnet",
        QT_EXCHANGE__API_KEY=API_KEY,
        QT_EXCHANGE__API_SECRET=API_SECRET,
        QT_EXCHANGE__REST_URL=standin["rest_url"],
        QT_EXCHANGE__WS_URL=standin["ws_url"],
        QT_SIGNALS__SOURCE="rules",
        QT_MARKET__SYMBOLS="BTC/USDT:USDT,ETH/USDT:USDT",
    )
    try:
        eventually(lambda: daemon.logged_so_far("cycle_completed"), 60, "a first cycle")
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0, daemon.stderr[-2000:]
    assert daemon.named("exchange_account_prepared")
    assert daemon.named("runtime_ready")[0]["mode"] == "testnet"
    assert API_SECRET not in daemon.output.read_text() + daemon.stderr
