"""Which market data the commands use, and its rules: one answer for run, train and backtest.

Order: `market.replay_dir` when set; else `data_dir/market` — where download-data and
import-data write — when it holds candles; else the sample bundled with the package. Market
rules come from the newest rules file of that directory (market.rules), then from the bundled
sample's for the symbols it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.feather as feather

from quantum_trader.clock import utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.domain import MarketRules
from quantum_trader.errors import ConfigurationError
from quantum_trader.market.arrow_columns import epoch_ms
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.rules import RulesFile, newest_rules_file, read_rules, rules_for
from quantum_trader.market.validation import EARLIEST_MS, LATEST_MS
from quantum_trader.record import record

MARKET_SUBDIR = "market"
BUNDLED = "bundled sample"


@record
class MarketData:
    """A directory of recorded candles and where the choice came from."""

    directory: Path
    origin: str

    def store(self) -> CandleStore:
        return CandleStore(self.directory)

    def rules_files(self) -> list[RulesFile]:
        """This directory's newest rules file, then the bundled sample's."""
        found = []
        for directory in dict.fromkeys((self.directory, bundled_sample_dir())):
            path = newest_rules_file(directory)
            if path is not None:
                found.append(read_rules(path))
        return found

    def rules(self, symbols: Sequence[str], timeframe: str) -> dict[str, MarketRules]:
        """Rules of `symbols` after checking they have `timeframe` candles here;
        ConfigurationError (exit 2) naming each unknown symbol and how to get what it lacks."""
        self.require_symbols(symbols, timeframe)
        return rules_for(symbols, self.rules_files(), self.directory)

    def require_symbols(self, symbols: Sequence[str], timeframe: str, *or_also: str) -> None:
        """ConfigurationError (exit 2) naming each symbol with no `timeframe` candles here (nor
        candles of a timeframe in `or_also`) and how to get them."""
        store = self.store()
        unknown = [
            store.unknown_symbol_message(symbol, timeframe, *or_also)
            for symbol in symbols
            if not any(store.candle_path(symbol, t).is_file() for t in (timeframe, *or_also))
        ]
        if unknown:
            raise ConfigurationError(unknown)


def market_dir(settings: Settings) -> Path:
    """Where download-data and import-data write: `data_dir/market`."""
    return settings.data_dir / MARKET_SUBDIR


def resolve_market_data(settings: Settings) -> MarketData:
    """The market data every command reads (see the module docstring)."""
    configured = settings.market.replay_dir
    if configured is not None:
        if not configured.is_dir():
            raise ConfigurationError(
                [f"market.replay_dir: {configured} is not a directory of recorded candles"]
            )
        return MarketData(configured, "market.replay_dir")
    own = market_dir(settings)
    if own.is_dir() and any(own.glob("*-futures.feather")):
        return MarketData(own, "data_dir/market")
    return MarketData(bundled_sample_dir(), BUNDLED)


def describe(data: MarketData, symbols: Sequence[str], timeframe: str) -> dict[str, Any]:
    """Fields for the first log line of a command: directory, origin, symbols, time range.

    Reads only the date column of each candle file; a missing file is left to the loader.
    """
    firsts, lasts = [], []
    store = data.store()
    for symbol in symbols:
        path = store.candle_path(symbol, timeframe)
        if not path.is_file():
            continue
        try:
            dates = feather.read_table(path, columns=["date"])["date"]
        except (pa.ArrowInvalid, OSError, KeyError):
            continue
        if len(dates) and pa.types.is_timestamp(dates.type):
            try:
                ms = epoch_ms(dates)
            except ValueError:  # left to the loader, which says what is wrong with it
                continue
            if not (int(ms[0]) >= EARLIEST_MS and int(ms[-1]) < LATEST_MS):
                continue  # times in another unit: the loader says so
            firsts.append(int(ms[0]))
            lasts.append(int(ms[-1]))
    return {
        "directory": str(data.directory),
        "origin": data.origin,
        "timeframe": timeframe,
        "symbols": list(symbols),
        "first": utc_from_ms(min(firsts)).isoformat() if firsts else None,
        "last": utc_from_ms(max(lasts)).isoformat() if lasts else None,
    }
