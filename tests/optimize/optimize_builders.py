"""Small studies on a few days of the bundled sample: the space, the command, the market."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
from child_env import child_env

from quantum_trader.clock import ms_from_utc
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.market.layout import file_stem

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
# Two folds of two days and a two-day holdout before 2025-10-14: busy days around the
# 2025-10-10 liquidation cascade, so the rule agent trades in most blocks.
WINDOW = (
    "--symbols",
    ",".join(SYMBOLS),
    "--end",
    "2025-10-14",
    "--fold-days",
    "2",
    "--folds",
    "2",
    "--holdout-days",
    "2",
    "--objective",
    "return_over_drawdown",
)
# One fold: the cheapest study that still has an in-sample and an out-of-sample block.
ONE_FOLD = tuple("1" if WINDOW[i - 1] == "--folds" else a for i, a in enumerate(WINDOW))
SPACE = """\
[space]
"orchestrator.min_confidence_trending" = { low = 0.10, high = 0.60 }
"sizing.stop_atr_multiple" = { low = 1.0, high = 3.0 }
"monitor.trail_mode_trend_follow" = { choices = ["AGGRESSIVE", "BALANCED", "LOOSE"] }
"""


def write_space(directory: Path, text: str = SPACE) -> Path:
    path = directory / "space.toml"
    path.write_text(text, encoding="utf-8")
    return path


def copy_market(target: Path, symbols: tuple[str, ...] = SYMBOLS) -> Path:
    """The bundled sample's files of `symbols` (and its rules file) in a directory of ours."""
    target.mkdir(parents=True)
    prefixes = (*(file_stem(s) + "-" for s in symbols), "exchange-info-")
    for source in bundled_sample_dir().iterdir():
        if source.name.startswith(prefixes):
            shutil.copyfile(source, target / source.name)
    return target


def perturb(market: Path, start: datetime, end: datetime) -> None:
    """Lift every price of the bars opening in [start, end) on a ramp from 0 % to +20 %: a
    different market there, with no jump large enough for the loader to call it a spike."""
    first, last = ms_from_utc(start), ms_from_utc(end)
    for path in sorted(market.glob("*-futures.feather")):
        table = feather.read_table(path)
        ms = table["date"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
        inside = (ms >= first) & (ms < last)
        factor = np.where(inside, 1.0 + 0.2 * (ms - first) / (last - first), 1.0)
        for name in ("open", "high", "low", "close"):
            column = table.column_names.index(name)
            values = table[name].to_numpy() * factor
            table = table.set_column(column, name, pa.array(values, pa.float64()))
        feather.write_feather(table, path)


def optimize_cli(
    cwd: Path, *args: str, timeout_s: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`quantum-trader optimize ARGS` in `cwd` with its own data directory (and `env`)."""
    return subprocess.run(
        optimize_command(*args),
        cwd=cwd,
        env={**clean_env(cwd), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def optimize_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "quantum_trader", "optimize", *args]


def clean_env(cwd: Path) -> dict[str, str]:
    clean = child_env()
    return {**clean, "QT_DATA_DIR": str(cwd / "data")}
