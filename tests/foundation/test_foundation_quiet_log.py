"""A quiet command logs errors only, and still the few warnings named to it: the backtest
shows a helper process's fallback warning (its work done by the command itself) and the
optional inputs its data lack among the year's ≈ 1,800 governor warnings it does not show."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env

from quantum_trader.helper_process import FALLBACK_WARNINGS
from quantum_trader.market.candle_store import bundled_sample_dir, file_stem
from quantum_trader.market.setup import MISSING_INPUT_WARNINGS
from quantum_trader.report.chart_inputs import CHART_NAMES

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"

QUIET = """
from quantum_trader.log import configure_logging, get_logger
configure_logging("json", "ERROR", shown={"kept"})
log = get_logger("test")
log.info("kept")
log.warning("kept")
log.warning("other")
log.error("failed")
try:
    raise ValueError("x")
except ValueError:
    log.exception("raised")
log.critical("critical")
"""


def test_a_quiet_level_shows_only_errors_and_the_warnings_named() -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUIET], capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["event"], e["level"]) for e in lines] == [
        ("kept", "warning"),
        ("failed", "error"),
        ("raised", "error"),
        ("critical", "critical"),
    ]


# Started first by any Python that finds it on its path: ends the chart process at once.
CHART_PROCESS_DIES = """
import os, sys
if "quantum_trader.report.chart_process" in sys.orig_argv:
    os._exit(3)
"""


def quiet_backtest(
    tmp_path: Path, arguments: list[str], env: dict[str, str]
) -> list[dict[str, object]]:
    """The JSON lines of `quantum-trader backtest ARGUMENTS` (rule signals, its own data
    directory, `env` added), which must succeed."""
    clean = child_env()
    done = subprocess.run(
        [sys.executable, "-m", "quantum_trader", "backtest", *arguments],
        env={
            **clean,
            "QT_DATA_DIR": str(tmp_path / "data"),
            "QT_SIGNALS__SOURCE": "rules",
            "QT_LOG__FORMAT": "json",
            **env,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_the_backtest_command_shows_a_helpers_fallback_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CHART_PROCESS_DIES)
    out = tmp_path / "report"
    window = ["--start", "2025-09-20", "--end", "2025-09-22", "--symbols", "BTC/USDT:USDT"]
    logged = quiet_backtest(tmp_path, [*window, "--out", str(out)], {"PYTHONPATH": str(site)})
    warnings = [e["event"] for e in logged if e["level"] == "warning"]
    assert warnings == ["chart_process_failed"]
    assert set(warnings) <= FALLBACK_WARNINGS
    assert "exit code 3" in next(str(e["error"]) for e in logged if e["level"] == "warning")
    assert {p.stem for p in (out / "charts").glob("*.png")} == set(CHART_NAMES)  # drawn here


@pytest.mark.slow
def test_the_backtest_command_shows_the_missing_inputs_warnings(tmp_path: Path) -> None:
    """Optional inputs the data lack qualify the results (report.json names them too:
    tests/report/test_report_missing_inputs.py)."""
    market = tmp_path / "market"
    market.mkdir()
    for path in bundled_sample_dir().glob(f"{file_stem(BTC)}-*.feather"):
        shutil.copy(path, market / path.name)
    for path in bundled_sample_dir().glob(f"{file_stem(ETH)}-*-futures.feather"):
        shutil.copy(path, market / path.name)  # ETH without its funding rates
    window = ["--start", "2025-09-20", "--end", "2025-09-21", "--symbols", f"{BTC},{ETH}"]
    logged = quiet_backtest(tmp_path, window, {"QT_MARKET__REPLAY_DIR": str(market)})
    warnings = [(e["event"], e.get("symbols")) for e in logged if e["level"] == "warning"]
    assert warnings == [("funding_unavailable", [ETH])]
    assert {event for event, _ in warnings} <= MISSING_INPUT_WARNINGS
