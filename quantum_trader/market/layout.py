"""File names of recorded market data, freqtrade's layout, parsed strictly.

    BTC_USDT_USDT-5m-futures.feather       perpetual candles (ccxt symbol BTC/USDT:USDT)
    BTC_USDT_USDT-1h-funding_rate.feather  funding settlements, the rate in `open`
    BTC_USDT_USDT-1h-mark.feather          mark-price candles (not used for trading)
    BTC_USDT-1h.feather                    spot candles

Formats: `.feather` (Arrow IPC), `.parquet`, `.json` / `.json.gz` (freqtrade's list of
[ms, open, high, low, close, volume] rows) and `.csv` (a header naming date, open, high, low,
close, volume). A name that does not match says what was expected instead of guessing.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from quantum_trader.errors import MarketDataError
from quantum_trader.record import record

TIMEFRAME_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "8h": 28_800_000,
    "1d": 86_400_000,
}
FORMATS = (".feather", ".parquet", ".json.gz", ".json", ".csv")
_ASSET = r"[A-Z0-9]+"
_NAME = re.compile(
    rf"^(?P<base>{_ASSET})_(?P<quote>{_ASSET})(?:_(?P<settle>{_ASSET}))?"
    r"-(?P<timeframe>\d+[mhdw])(?:-(?P<kind>futures|mark|funding_rate))?$"
)
EXAMPLE = "BTC_USDT_USDT-5m-futures.feather"


class CandleKind(StrEnum):
    FUTURES = "futures"
    MARK = "mark"
    FUNDING_RATE = "funding_rate"
    SPOT = "spot"


@record
class CandleFile:
    """What a file name says: the perpetual it belongs to, its timeframe, kind and format."""

    symbol: str
    timeframe: str
    kind: CandleKind
    suffix: str

    @property
    def timeframe_ms(self) -> int:
        return TIMEFRAME_MS[self.timeframe]


def file_stem(symbol: str) -> str:
    """`BTC/USDT:USDT` → `BTC_USDT_USDT` (freqtrade's naming)."""
    return symbol.replace("/", "_").replace(":", "_")


def candle_file_name(symbol: str, timeframe: str, kind: CandleKind = CandleKind.FUTURES) -> str:
    return f"{file_stem(symbol)}-{timeframe}-{kind}.feather"


def parse_file_name(path: Path) -> CandleFile:
    """Parse a data file name; MarketDataError with the expected pattern when it does not fit.

    Spot files (`BTC_USDT-1h.feather`) map to the USDT-settled perpetual of the same pair.
    """
    name = path.name
    suffix = next((s for s in FORMATS if name.lower().endswith(s)), None)
    if suffix is None:
        raise MarketDataError(
            f"{name}: unsupported file type; expected one of {', '.join(FORMATS)} "
            f"named like {EXAMPLE}"
        )
    found = _NAME.match(name[: -len(suffix)])
    if found is None:
        raise MarketDataError(_explain(name))
    base, quote, settle = found["base"], found["quote"], found["settle"]
    kind = CandleKind(found["kind"]) if found["kind"] else CandleKind.SPOT
    if (settle is None) != (kind is CandleKind.SPOT):
        raise MarketDataError(_explain(name))
    if found["timeframe"] not in TIMEFRAME_MS:
        raise MarketDataError(
            f"{name}: timeframe {found['timeframe']!r} is not supported; "
            f"use one of {', '.join(TIMEFRAME_MS)}"
        )
    return CandleFile(f"{base}/{quote}:{settle or quote}", found["timeframe"], kind, suffix)


def _explain(name: str) -> str:
    hint = ""
    if re.match(rf"^{_ASSET}_{_ASSET}-\d+[mhdw]-(futures|mark|funding_rate)", name):
        hint = " (a futures file names the settle currency too: BTC_USDT_USDT, not BTC_USDT)"
    return (
        f"{name}: cannot tell the market from the file name{hint}; expected freqtrade's layout, "
        f"BASE_QUOTE_SETTLE-TIMEFRAME-futures (e.g. {EXAMPLE}), "
        "…-funding_rate, …-mark, or BASE_QUOTE-TIMEFRAME for spot candles"
    )
