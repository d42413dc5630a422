"""How the backtest's time grows with the number of symbols and with the window's length.

    .venv/bin/python -m benchmarks.bench_scaling                  # 4, 8, 16 symbols; 1-4 months
    .venv/bin/python -m benchmarks.bench_scaling --only symbols   # or: --only months

Needs ../shared/data (not part of the project). Its futures folder holds 5 m candles of 19
perpetuals but Binance's market rules for none of them; the project ships rules for 8 (the
bundled sample's `exchange-info` file). To replay more, this script builds a scratch market
folder: links to the recorded files, and a rules file with the 8 shipped listings plus
**synthesized** ones for the others (tick ≈ 1/10,000 of the price, step worth ≈ 1 USDT,
5 USDT minimum notional). They are good enough to time the pipeline, not to trade: the
figures below measure work, and the trades of a synthesized symbol mean nothing.

Symbols: the 16 with candles over the whole window (2025-12-01 → 2026-02-01 by default; five
of the 19 were listed during 2025, three only in 2026). 32 cannot be run: there are 19.
Each run is a fresh process of `quantum-trader backtest` (imports, loading, replay and report,
as a user runs it); CPU, wall and peak RSS are that process's own (os.wait4).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_backtest import SHARED_FUTURES
from benchmarks.scratch import scratch_dir
from quantum_trader.config import DEFAULT_SYMBOLS
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.rules import newest_rules_file

SHIPPED = list(DEFAULT_SYMBOLS)  # the 8 symbols the bundled rules file lists
OTHERS = [
    "OP/USDT:USDT",
    "ORCA/USDT:USDT",
    "ZEC/USDT:USDT",
    "PIPPIN/USDT:USDT",
    "HYPE/USDT:USDT",
    "WLFI/USDT:USDT",
    "NAORIS/USDT:USDT",
    "RIVER/USDT:USDT",
]
MONTHS = ["2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01", "2026-01-01"]


def _power_of_ten(value: float) -> str:
    return f"{10.0 ** math.floor(math.log10(value)):.10f}".rstrip("0").rstrip(".") or "1"


def synthesized_listing(symbol: str, last_price: float) -> dict[str, Any]:
    """A PERPETUAL listing in Binance's exchangeInfo format, for timing only (see above)."""
    base = symbol.split("/")[0]
    tick = _power_of_ten(last_price / 10_000)
    step = _power_of_ten(1.0 / last_price)
    return {
        "symbol": f"{base}USDT",
        "pair": f"{base}USDT",
        "contractType": "PERPETUAL",
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": tick, "minPrice": tick},
            {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": step, "minQty": step},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
    }


def scratch_market(folder: Path) -> Path:
    """Links to every recorded file and a rules file: the shipped listings + synthesized."""
    for path in SHARED_FUTURES.iterdir():
        (folder / path.name).symlink_to(path)
    shipped = newest_rules_file(bundled_sample_dir())
    assert shipped is not None, "the bundled sample's rules file is missing"
    document = json.loads(shipped.read_text())
    store = CandleStore(folder)
    for symbol in OTHERS:
        close = store.load_bars(symbol, "5m").close
        document["exchangeInfo"]["symbols"].append(
            synthesized_listing(symbol, float(np.nanmedian(close[-10_000:])))
        )
    document["leverageBrackets"] = []
    (folder / shipped.name).write_text(json.dumps(document))
    return folder


def run(symbols: list[str], start: str, end: str, market: Path) -> dict[str, Any]:
    out = scratch_dir("qt-scaling-") / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env |= {
        "QT_SIGNALS__SOURCE": "rules",
        "QT_DATA_DIR": str(scratch_dir("qt-scaling-data-")),
        "QT_MARKET__REPLAY_DIR": str(market),
        "QT_BACKTEST__OPERATOR_RESET_AFTER": "86400",
    }
    command = [sys.executable, "-m", "quantum_trader", "backtest", "--out", str(out)]
    command += ["--start", start, "--end", end, "--symbols", ",".join(symbols)]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"backtest of {len(symbols)} symbols {start}..{end} failed")
    report = json.loads((out / "report.json").read_text())
    return {
        "symbols": len(symbols),
        "window": f"{start} → {end}",
        "candles": int(report["candles"]),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "rss_mb": usage.ru_maxrss / 1024,
        "trades": int(report["trades"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["symbols", "months"])
    options = parser.parse_args()
    if not SHARED_FUTURES.is_dir():
        print(f"skipped: {SHARED_FUTURES} not present")
        return
    market = scratch_market(scratch_dir("qt-scaling-market-"))
    rows = []
    if options.only in (None, "symbols"):
        for count in (4, 8, 16):
            rows.append(run((SHIPPED + OTHERS)[:count], "2025-12-01", "2026-02-01", market))
    if options.only in (None, "months"):
        for months in (1, 2, 4):
            rows.append(run(SHIPPED, MONTHS[-1 - months], MONTHS[-1], market))
    print(
        "| symbols | window | candles | CPU s | wall s | CPU µs per candle | peak RSS MB | trades |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['symbols']} | {r['window']} | {r['candles']:,} | {r['cpu_s']:.1f} | "
            f"{r['wall_s']:.1f} | {r['cpu_s'] / r['candles'] * 1e6:.0f} | {r['rss_mb']:.0f} | "
            f"{r['trades']} |"
        )


if __name__ == "__main__":
    main()
