"""Derive the bundled sample market from the team's recorded Binance data.

Run once by a developer who has ../shared/data; the output under
quantum_trader/resources/sample/ is committed, so neither the daemon nor the tests need
../shared. Usage: python scripts/make_sample.py [SOURCE_DIR]
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

BASES = ("BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "BCH", "INJ")
ONE_MINUTE_BASES = ("BTC", "ETH", "SOL", "XRP")
# 5m: three months that include the 2025-10-10 liquidation cascade (governor scenarios).
WINDOW_5M = (datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
# 1h and funding: nine months, enough for 90 days of training plus walk-forward validation.
WINDOW_1H = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
# 1m: two weeks of real intrabar paths for trailing-stop replays.
WINDOW_1M = (datetime(2025, 5, 5, tzinfo=UTC), datetime(2025, 5, 19, tzinfo=UTC))
OUT = Path(__file__).resolve().parents[1] / "quantum_trader" / "resources" / "sample"


def cut(source: Path, target: Path, window: tuple[datetime, datetime]) -> int:
    table = feather.read_table(source)
    start = pa.scalar(window[0], type=table.schema.field("date").type)
    end = pa.scalar(window[1], type=table.schema.field("date").type)
    mask = pc.and_(pc.greater_equal(table["date"], start), pc.less(table["date"], end))
    sliced = table.filter(mask).replace_schema_metadata(None)
    feather.write_feather(sliced, target, compression="zstd", compression_level=19)
    return int(sliced.num_rows)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/binance")
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = []
    for base in BASES:
        stem = f"{base}_USDT_USDT"
        jobs.append((root / "futures" / f"{stem}-5m-futures.feather", WINDOW_5M))
        jobs.append((root / "futures" / f"{stem}-1h-futures.feather", WINDOW_1H))
        jobs.append((root / "futures" / f"{stem}-1h-funding_rate.feather", WINDOW_1H))
    for base in ONE_MINUTE_BASES:
        jobs.append((root / "futures-1m" / f"{base}_USDT_USDT-1m-futures.feather", WINDOW_1M))
    for source, window in jobs:
        rows = cut(source, OUT / source.name, window)
        print(f"{source.name}: {rows} rows")


if __name__ == "__main__":
    main()
