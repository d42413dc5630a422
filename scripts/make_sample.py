"""Derive the bundled sample market from the team's recorded Binance data.

Run once by a developer who has ../shared/data; the output under
quantum_trader/resources/sample/ is committed, so neither the daemon nor the tests need
../shared. Usage: python scripts/make_sample.py [SOURCE_DIR]

It also writes the sample's market rules file with the same code download-data uses
(market.rules.write_rules), in Binance's exchangeInfo / leverageBracket format, from the
filter values below (see the sample's README for where they come from).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from quantum_trader.market.rules import write_rules

BASES = ("BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "BCH", "INJ")
ONE_MINUTE_BASES = ("BTC", "ETH", "SOL", "XRP")
# 5m: three months that include the 2025-10-10 liquidation cascade (governor scenarios).
WINDOW_5M = (datetime(2025, 9, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
# 1h and funding: nine months, enough for 90 days of training plus walk-forward validation.
WINDOW_1H = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
# 1m: two weeks of real intrabar paths for trailing-stop replays.
WINDOW_1M = (datetime(2025, 5, 5, tzinfo=UTC), datetime(2025, 5, 19, tzinfo=UTC))
# base: (tick size, step size, min notional USDT, max leverage of the first bracket, listed).
# Filters of /fapi/v1/exchangeInfo (BTC ETH BCH XRP BNB read from a recorded answer; SOL DOGE INJ
# the published values); first-bracket leverage as published; listing month approximate.
RULES = {
    "BTC": ("0.10", "0.001", "100", 125, "2019-09-25"),
    "ETH": ("0.01", "0.001", "20", 125, "2019-11-01"),
    "SOL": ("0.0100", "1", "5", 100, "2020-09-01"),
    "BNB": ("0.010", "0.01", "5", 75, "2020-02-01"),
    "XRP": ("0.0001", "0.1", "5", 75, "2020-01-01"),
    "DOGE": ("0.000010", "1", "5", 75, "2020-07-01"),
    "BCH": ("0.01", "0.001", "20", 75, "2019-12-01"),
    "INJ": ("0.001000", "0.1", "5", 50, "2020-10-01"),
}
RULES_AS_OF = datetime(2025, 12, 1, tzinfo=UTC)
RULES_SOURCE = (
    "Binance USD-M exchangeInfo and leverageBracket format, written by scripts/make_sample.py "
    "from recorded and published filter values (see README.md)"
)
OUT = Path(__file__).resolve().parents[1] / "quantum_trader" / "resources" / "sample"


def cut(source: Path, target: Path, window: tuple[datetime, datetime]) -> int:
    table = feather.read_table(source)
    start = pa.scalar(window[0], type=table.schema.field("date").type)
    end = pa.scalar(window[1], type=table.schema.field("date").type)
    mask = pc.and_(pc.greater_equal(table["date"], start), pc.less(table["date"], end))
    sliced = table.filter(mask).replace_schema_metadata(None)
    feather.write_feather(sliced, target, compression="zstd", compression_level=19)
    return int(sliced.num_rows)


def decimals(step: str) -> int:
    return len(step.split(".")[1].rstrip("0")) if "." in step else 0


def symbol_entry(base: str) -> dict[str, object]:
    """One `symbols[]` entry of /fapi/v1/exchangeInfo, as Binance sends it."""
    tick, step, notional, _, listed = RULES[base]
    onboard = int(datetime.fromisoformat(listed).replace(tzinfo=UTC).timestamp() * 1000)
    return {
        "symbol": f"{base}USDT",
        "pair": f"{base}USDT",
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": onboard,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": decimals(tick),
        "quantityPrecision": decimals(step),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": tick, "minPrice": tick},
            {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": step, "minQty": step},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": notional},
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def write_sample_rules() -> Path:
    info = {"timezone": "UTC", "symbols": [symbol_entry(base) for base in BASES]}
    brackets = [
        {"symbol": f"{base}USDT", "brackets": [{"bracket": 1, "initialLeverage": RULES[base][3]}]}
        for base in BASES
    ]
    return write_rules(OUT, info, RULES_AS_OF, brackets, source=RULES_SOURCE)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/binance")
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{write_sample_rules().name}: {len(BASES)} symbols")
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
