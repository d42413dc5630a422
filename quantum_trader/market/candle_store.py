"""Recorded candles and funding rates from Feather (Arrow IPC) files, freqtrade's layout.

File names: `BTC_USDT_USDT-5m-futures.feather`, `BTC_USDT_USDT-1h-funding_rate.feather`
(market.layout). Columns: `date` (UTC open time), `open`, `high`, `low`, `close`, `volume`;
funding files hold the rate in `open`. Every load is validated by market.validation (refused,
repaired or reported per defect); repairs and gaps are logged once per load.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import Bars, FloatArray, IntArray
from quantum_trader.errors import MarketDataError
from quantum_trader.log import get_logger
from quantum_trader.market.arrow_columns import column_values, epoch_ms
from quantum_trader.market.layout import (
    TIMEFRAME_MS,
    CandleKind,
    candle_file_name,
    file_stem,
    parse_file_name,
)
from quantum_trader.market.validation import (
    PRICE_COLUMNS,
    CandleReport,
    Gap,
    check_candles,
    check_funding,
)

# The timeframes market.timeframe takes (the replay's execution bars).
REPLAY_TIMEFRAMES = ("1m", "5m", "15m", "1h")
__all__ = ["PRICE_COLUMNS", "TIMEFRAME_MS", "CandleStore", "bundled_sample_dir", "file_stem"]
log = get_logger("market")


def bundled_sample_dir() -> Path:
    """The compact recorded market shipped inside the package."""
    return Path(str(resources.files("quantum_trader") / "resources" / "sample"))


class CandleStore:
    """Reads recorded candles for ccxt symbols from one directory."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise MarketDataError(f"recorded market directory not found: {directory}")
        self.directory = directory

    def candle_path(self, symbol: str, timeframe: str) -> Path:
        return self.directory / candle_file_name(symbol, timeframe)

    def funding_path(self, symbol: str) -> Path:
        return self.directory / candle_file_name(symbol, "1h", CandleKind.FUNDING_RATE)

    def available_symbols(self, timeframe: str) -> list[str]:
        """Symbols with `timeframe` perpetual candles here; misnamed files are skipped."""
        return sorted(self._scan(timeframe)[0])

    def _scan(self, timeframe: str) -> tuple[list[str], list[str]]:
        found, misnamed = [], []
        for path in sorted(self.directory.glob(f"*-{timeframe}-futures.feather")):
            try:
                parsed = parse_file_name(path)
            except MarketDataError as error:
                misnamed.append(str(error))
                continue
            if parsed.kind is CandleKind.FUTURES and parsed.timeframe == timeframe:
                found.append(parsed.symbol)
        return found, misnamed

    def load_bars(self, symbol: str, timeframe: str) -> Bars:
        """All recorded bars of `symbol`; raises MarketDataError for unknown or bad data."""
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(f"unsupported timeframe {timeframe!r}")
        path = self.candle_path(symbol, timeframe)
        if not path.is_file():
            raise MarketDataError(self.unknown_symbol_message(symbol, timeframe))
        table = _read(path)
        time_ms = _time_ms(table, path)
        columns = {name: _floats(table, name, path) for name in (*PRICE_COLUMNS, "volume")}
        time_ms, columns, report = check_candles(
            path.name, time_ms, columns, TIMEFRAME_MS[timeframe]
        )
        log_report(path.name, report)
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

    def unknown_symbol_message(self, symbol: str, timeframe: str, *or_also: str) -> str:
        """Why `symbol` has no candles here, which symbols do, and how to get it; `or_also`:
        the other timeframes the command reads (`train`: 5m or 1h), not market.timeframe."""
        path = self.candle_path(symbol, timeframe)
        known, misnamed = self._scan(timeframe)
        message = (
            f"unknown symbol {symbol!r} for {timeframe}: no {path.name} in {self.directory} "
            f"(recorded: {', '.join(known) or 'none'}); get it with `quantum-trader "
            f"download-data --symbols {symbol} --timeframe {timeframe}` or `import-data`"
        )
        message += "".join(f"; ignored {m}" for m in misnamed)
        read = (timeframe, *or_also)
        others = [
            t for t in REPLAY_TIMEFRAMES if t not in read and self.candle_path(symbol, t).is_file()
        ]
        if others and or_also:
            message += (
                f"; {symbol} has {', '.join(others)} candles in {self.directory}, but this "
                f"command reads {' or '.join(read)} candles"
            )
        elif others:  # hourly candles only (spot imports): the setting that replays them
            message += (
                f"; {symbol} has {', '.join(others)} candles in {self.directory}: to replay "
                "them set market.timeframe (QT_MARKET__TIMEFRAME) to "
                + " or ".join(f'"{other}"' for other in others)
            )
        return message

    def load_funding(self, symbol: str) -> tuple[IntArray, FloatArray]:
        """Funding settlement times (ms) and rates; empty arrays when none are recorded."""
        path = self.funding_path(symbol)
        if not path.is_file():
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        table = _read(path)
        times = _time_ms(table, path)
        rates = _floats(table, "open", path)
        check_funding(path.name, times, rates)
        return times, rates


def log_report(label: str, report: CandleReport, said: set[Gap] | None = None) -> None:
    """One warning per kind of finding: bars removed (with why), gaps kept. With `said` (the
    gaps a window said before; left holding this report's), gaps said before are not said
    again: a live window holds a gap for as long as it spans it, and is checked at every
    refresh."""
    for repair in report.repairs:
        log.warning(
            "market_data_repaired",
            source=label,
            removed_bars=len(repair.times_ms),
            first=utc_from_ms(repair.times_ms[0]).isoformat(),
            reason=repair.reason,
        )
    gaps = report.untradeable_gaps
    if said is not None:
        held = gaps
        gaps = tuple(g for g in held if g not in said)
        said.clear()  # the gaps that left the window are forgotten
        said.update(held)
    if gaps:
        largest = max(gaps, key=lambda g: g.missing_bars)
        log.warning(
            "market_data_gaps",
            source=label,
            gaps=len(gaps),
            largest_missing_bars=largest.missing_bars,
            largest_from=utc_from_ms(largest.last_ms).isoformat(),
            largest_to=utc_from_ms(largest.resume_ms).isoformat(),
            policy="untradeable across each gap",
        )


def _read(path: Path) -> pa.Table:
    try:
        return feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise MarketDataError(f"{path.name}: not a readable Feather file ({error})") from error


def _time_ms(table: pa.Table, path: Path) -> IntArray:
    if "date" not in table.column_names:
        raise MarketDataError(f"{path.name}: no 'date' column")
    column = table["date"]
    try:
        if column.null_count:
            raise MarketDataError(f"{path.name}: empty 'date' values")
        if pa.types.is_timestamp(column.type):
            return epoch_ms(column)
        return np.asarray(column_values(column), dtype=np.int64)
    except (pa.ArrowInvalid, TypeError, ValueError) as error:
        raise MarketDataError(f"{path.name}: unreadable 'date' column ({error})") from error


def _floats(table: pa.Table, name: str, path: Path) -> FloatArray:
    if name not in table.column_names:
        raise MarketDataError(f"{path.name}: no {name!r} column")
    try:
        return np.array(column_values(table[name]), np.float64)
    except (pa.ArrowInvalid, TypeError, ValueError) as error:
        raise MarketDataError(f"{path.name}: {name!r} is not numeric ({error})") from error
