"""Build the AVAX and LINK test fixtures from the team's recorded Binance data.

Real USD-M 1 m candles (shared/data/binance/futures-1m) aggregated to 5 m exactly as Binance
aggregates them (first open, max high, min low, last close, summed volume), ten days,
2025-05-05 → 2025-05-15, written in freqtrade's layout. Usage, from the repository root:
python tests/market/data/make_fixtures.py [SOURCE_DIR]
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

BASES = ("AVAX", "LINK")
WINDOW = (datetime(2025, 5, 5, tzinfo=UTC), datetime(2025, 5, 15, tzinfo=UTC))
FIVE_MINUTES_MS = 300_000
OUT = Path(__file__).resolve().parent / "futures"


def aggregate(table: pa.Table) -> pa.Table:
    ms = table["date"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
    start, end = (int(w.timestamp() * 1000) for w in WINDOW)
    keep = (ms >= start) & (ms < end)
    ms = ms[keep]
    cols = {n: table[n].to_numpy()[keep] for n in ("open", "high", "low", "close", "volume")}
    bucket = ms // FIVE_MINUTES_MS * FIVE_MINUTES_MS
    firsts = np.flatnonzero(np.diff(bucket, prepend=-1))
    lasts = np.append(firsts[1:], ms.size) - 1
    out = {
        "date": pa.array(bucket[firsts] * 1_000_000, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "open": cols["open"][firsts],
        "high": np.maximum.reduceat(cols["high"], firsts),
        "low": np.minimum.reduceat(cols["low"], firsts),
        "close": cols["close"][lasts],
        "volume": np.add.reduceat(cols["volume"], firsts),
    }
    return pa.table(out)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/binance")
    for base in BASES:
        source = root / "futures-1m" / f"{base}_USDT_USDT-1m-futures.feather"
        table = aggregate(feather.read_table(source))
        target = OUT / f"{base}_USDT_USDT-5m-futures.feather"
        feather.write_feather(table, target, compression="zstd", compression_level=19)
        print(f"{target.name}: {table.num_rows} rows")


if __name__ == "__main__":
    main()
