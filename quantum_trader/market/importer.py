"""import-data: candles a user already has → the market data directory, validated like every load.

Inputs are files or directories in freqtrade's layout (market.layout): Feather, Parquet,
JSON / JSON.gz (freqtrade's [[ms, open, high, low, close, volume], ...]) or CSV with a header
(`date` as ISO-8601 UTC or epoch milliseconds, then open, high, low, close, volume). Every name
must parse; candles pass market.validation (refused, or repaired and reported); funding rates
pass market.validation's `check_funding` (finite, within Binance's caps, increasing). Each
file is written as Feather and renamed into place.
Spot candles stand in for the perpetual of the same pair (without funding); mark candles are
skipped (the paper exchange trades on the candles).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from quantum_trader.domain import FloatArray, IntArray
from quantum_trader.errors import ConfigurationError, MarketDataError
from quantum_trader.market.download import write_feather
from quantum_trader.market.layout import (
    FORMATS,
    CandleFile,
    CandleKind,
    candle_file_name,
    parse_file_name,
)
from quantum_trader.market.rules import RULES_GLOB, newest_rules_file
from quantum_trader.market.validation import PRICE_COLUMNS, check_candles, check_funding
from quantum_trader.record import record

COLUMNS = ("date", *PRICE_COLUMNS, "volume")


@record
class Imported:
    """One file brought in: what it was, where it went, what validation did."""

    source: Path
    target: Path | None
    parsed: CandleFile
    rows: int
    first_ms: int
    last_ms: int
    removed_bars: int
    gaps: int
    note: str = ""


def collect(paths: Sequence[Path]) -> list[tuple[Path, CandleFile]]:
    """The data files named or contained (one level) in `paths`, parsed; ConfigurationError
    with one line per path that does not exist or name that does not parse."""
    files: list[Path] = []
    problems = []
    for path in paths:
        if path.is_dir():  # a rules file beside the candles is the rules (`rules_beside`)
            files += sorted(
                p
                for p in path.iterdir()
                if p.name.lower().endswith(FORMATS) and not fnmatch(p.name, RULES_GLOB)
            )
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    parsed, seen = [], set()
    by_content: dict[tuple[str, str, str], Path] = {}
    for path in files:
        if path.resolve() in seen:  # named twice (a file and its directory, say): once
            continue
        seen.add(path.resolve())
        try:
            candle_file = parse_file_name(path)
        except MarketDataError as error:
            problems.append(str(error))
            continue
        # Spot candles are stored as the perpetual's: keyed by the file each would become.
        stored = CandleKind.FUTURES if candle_file.kind is CandleKind.SPOT else candle_file.kind
        key = (candle_file.symbol, candle_file.timeframe, str(stored))
        other = by_content.setdefault(key, path)
        if other != path:  # the second would silently replace the first
            spot = CandleKind.SPOT in (candle_file.kind, parse_file_name(other).kind)
            why = ": spot candles are imported as the perpetual's" if spot else ""
            problems.append(
                f"{path}: the same candles as {other} ({', '.join(key)}{why}); import one"
            )
            continue
        parsed.append((path, candle_file))
    if not files and not problems:
        problems.append(f"no data files ({', '.join(FORMATS)}) in {', '.join(map(str, paths))}")
    if problems:
        raise ConfigurationError(problems)
    return parsed


def rules_beside(paths: Sequence[Path]) -> Path | None:
    """The newest rules file (`exchange-info-YYYY-MM-DD.json`) in the directories of `paths`,
    as download-data leaves one beside the candles; else the one `exchange-info-*.json` named
    otherwise (a user's saved answer: `exchange-info-binance.json`); None when there is none.

    ConfigurationError when there are several such files and none is dated: which one is
    meant cannot be told (was: all ignored, then "market rules: none for X")."""
    directories = [path for path in paths if path.is_dir()]
    found = [newest_rules_file(path) for path in directories]
    dated = sorted((p.name, p) for p in found if p is not None)
    if dated:
        return dated[-1][1]
    named = sorted({p for d in directories for p in d.glob(RULES_GLOB) if p.is_file()})
    if len(named) > 1:
        raise ConfigurationError(
            [
                f"import-data: {len(named)} rules files beside the candles "
                f"({', '.join(p.name for p in named)}): pass the one to use with "
                "--exchange-info FILE"
            ]
        )
    return named[0] if named else None


def import_file(path: Path, parsed: CandleFile, out_dir: Path) -> Imported:
    """Read, validate and write one file into `out_dir`; MarketDataError naming the file."""
    if parsed.kind is CandleKind.MARK:
        return Imported(path, None, parsed, 0, 0, 0, 0, 0, "skipped: mark-price candles")
    time_ms, columns = read_columns(path, parsed)
    if parsed.kind is CandleKind.FUNDING_RATE:
        return _import_funding(path, parsed, out_dir, time_ms, columns["open"])
    time_ms, checked, report = check_candles(path.name, time_ms, columns, parsed.timeframe_ms)
    target = out_dir / candle_file_name(parsed.symbol, parsed.timeframe)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_feather(target, time_ms, [checked[name] for name in (*PRICE_COLUMNS, "volume")])
    note = "spot candles as the perpetual: no funding" if parsed.kind is CandleKind.SPOT else ""
    return Imported(
        path,
        target,
        parsed,
        report.rows,
        int(time_ms[0]),
        int(time_ms[-1]),
        sum(len(r.times_ms) for r in report.repairs),
        len(report.untradeable_gaps),
        note,
    )


def _import_funding(
    path: Path, parsed: CandleFile, out_dir: Path, time_ms: IntArray, rates: FloatArray
) -> Imported:
    if time_ms.size == 0:
        raise MarketDataError(f"{path.name}: no funding rates (zero rows)")
    check_funding(path.name, time_ms, rates)
    target = out_dir / candle_file_name(parsed.symbol, "1h", CandleKind.FUNDING_RATE)
    out_dir.mkdir(parents=True, exist_ok=True)
    zeros = np.zeros_like(rates)
    write_feather(target, time_ms, [rates, zeros, zeros, zeros, zeros])
    return Imported(
        path, target, parsed, int(time_ms.size), int(time_ms[0]), int(time_ms[-1]), 0, 0
    )


def read_columns(path: Path, parsed: CandleFile) -> tuple[IntArray, dict[str, FloatArray]]:
    """The file's open times (ms) and float columns; MarketDataError naming what is wrong."""
    try:
        table = _read_table(path, parsed.suffix)
    except (pa.ArrowInvalid, OSError, ValueError, TypeError, json.JSONDecodeError) as error:
        raise MarketDataError(
            f"{path.name}: cannot read it as {parsed.suffix} ({error})"
        ) from error
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:  # the names found show capitals or another separator at a glance
        found = ", ".join(table.column_names)
        found = found if len(found) <= 200 else found[:200] + "…"
        raise MarketDataError(
            f"{path.name}: missing column(s) {', '.join(missing)} (found: {found}); name them "
            f"{', '.join(COLUMNS)}, in lower case (a CSV separated by commas)"
        )
    try:
        time_ms = _dates_ms(table["date"])
        columns = {
            name: np.asarray(table[name].cast(pa.float64()).to_numpy(zero_copy_only=False))
            for name in COLUMNS[1:]
        }
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError) as error:
        raise MarketDataError(f"{path.name}: unreadable values ({error})") from error
    return time_ms, columns


def _read_table(path: Path, suffix: str) -> pa.Table:
    if suffix == ".feather":
        return feather.read_table(path)
    if suffix == ".parquet":
        return pq.read_table(path)
    if suffix == ".csv":
        return pa_csv.read_csv(
            path, convert_options=pa_csv.ConvertOptions(strings_can_be_null=True)
        )
    opener: Any = gzip.open if suffix == ".json.gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) < 6 for r in rows):
        raise ValueError("expected freqtrade's [[ms, open, high, low, close, volume], ...]")
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)})


def _dates_ms(column: pa.ChunkedArray) -> IntArray:
    if column.null_count:
        raise ValueError("empty date values")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.cast(pc.strptime(column, format="%Y-%m-%dT%H:%M:%S", unit="ms"), pa.int64())
    elif pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
