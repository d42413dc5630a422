"""Recorded candles and funding rates from Feather (Arrow IPC) files, freqtrade's layout.

File names: `BTC_USDT_USDT-5m-futures.feather`, `BTC_USDT_USDT-1h-funding_rate.feather`.
Columns: `date` (UTC open time), `open`, `high`, `low`, `close`, `volume`; funding files hold
the rate in `open`. Every load is validated: a NaN, a non-positive price, an unsorted or
duplicate timestamp is a MarketDataError naming the file and the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from quantum_trader.domain import Bars, FloatArray, IntArray
from quantum_trader.errors import MarketDataError

TIMEFRAME_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "8h": 28_800_000,
    "1d": 86_400_000,
}
PRICE_COLUMNS = ("open", "high", "low", "close")


def bundled_sample_dir() -> Path:
    """The compact recorded market shipped inside the package."""
    return Path(str(resources.files("quantum_trader") / "resources" / "sample"))


def file_stem(symbol: str) -> str:
    """`BTC/USDT:USDT` → `BTC_USDT_USDT` (freqtrade's naming)."""
    return symbol.replace("/", "_").replace(":", "_")


class CandleStore:
    """Reads recorded candles for ccxt symbols from one directory."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise MarketDataError(f"recorded market directory not found: {directory}")
        self.directory = directory

    def candle_path(self, symbol: str, timeframe: str) -> Path:
        return self.directory / f"{file_stem(symbol)}-{timeframe}-futures.feather"

    def funding_path(self, symbol: str) -> Path:
        return self.directory / f"{file_stem(symbol)}-1h-funding_rate.feather"

    def available_symbols(self, timeframe: str) -> list[str]:
        suffix = f"-{timeframe}-futures.feather"
        found = []
        for path in sorted(self.directory.glob(f"*{suffix}")):
            base, quote, settle = path.name.removesuffix(suffix).split("_")
            found.append(f"{base}/{quote}:{settle}")
        return found

    def load_bars(self, symbol: str, timeframe: str) -> Bars:
        """All recorded bars of `symbol`; raises MarketDataError for unknown or bad data."""
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(f"unsupported timeframe {timeframe!r}")
        path = self.candle_path(symbol, timeframe)
        if not path.is_file():
            known = ", ".join(self.available_symbols(timeframe)) or "none"
            raise MarketDataError(
                f"unknown symbol {symbol!r} for {timeframe}: no {path.name} (recorded: {known})"
            )
        table = _read(path)
        time_ms = _time_ms(table, path)
        columns = {name: _floats(table, name, path) for name in (*PRICE_COLUMNS, "volume")}
        validate_bars(path.name, time_ms, columns, TIMEFRAME_MS[timeframe])
        return Bars(
            symbol,
            TIMEFRAME_MS[timeframe],
            time_ms,
            columns["open"],
            columns["high"],
            columns["low"],
            columns["close"],
            columns["volume"],
        )

    def load_funding(self, symbol: str) -> tuple[IntArray, FloatArray]:
        """Funding settlement times (ms) and rates; empty arrays when none are recorded."""
        path = self.funding_path(symbol)
        if not path.is_file():
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        table = _read(path)
        times = _time_ms(table, path)
        rates = _floats(table, "open", path)
        if np.isnan(rates).any():
            raise MarketDataError(
                f"{path.name}: NaN funding rate at row {int(np.argmax(np.isnan(rates)))}"
            )
        return times, rates


def _read(path: Path) -> pa.Table:
    try:
        return feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise MarketDataError(f"{path.name}: not a readable Feather file ({error})") from error


def _time_ms(table: pa.Table, path: Path) -> IntArray:
    if "date" not in table.column_names:
        raise MarketDataError(f"{path.name}: no 'date' column")
    column = table["date"]
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(table: pa.Table, name: str, path: Path) -> FloatArray:
    if name not in table.column_names:
        raise MarketDataError(f"{path.name}: no {name!r} column")
    return np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=np.float64)


def validate_bars(
    label: str, time_ms: IntArray, columns: Mapping[str, FloatArray], timeframe_ms: int
) -> None:
    """Raise MarketDataError, naming `label` and the row, for the first bad value.

    Bad: a non-finite value in any column, a non-positive open/high/low/close, a timestamp
    (ms) not strictly increasing or not on the `timeframe_ms` grid.
    """
    for name, values in columns.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise MarketDataError(f"{label}: {name} is not a number at row {int(bad[0])}")
    for name in PRICE_COLUMNS:
        bad = np.flatnonzero(columns[name] <= 0)
        if bad.size:
            raise MarketDataError(f"{label}: non-positive {name} at row {int(bad[0])}")
    steps = np.diff(time_ms)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        raise MarketDataError(
            f"{label}: timestamps not strictly increasing at row {int(bad[0]) + 1}"
        )
    off_grid = np.flatnonzero(time_ms % timeframe_ms)
    if off_grid.size:
        raise MarketDataError(f"{label}: timestamp off the bar grid at row {int(off_grid[0])}")
