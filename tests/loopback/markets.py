"""The stand-in's markets: exchangeInfo rows, candles, and mark prices that move along a
deterministic (seeded) path on the stand-in's clock."""

from __future__ import annotations

import functools
import math
import random
import statistics
import zlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class LoopbackMarket:
    market_id: str
    base: str
    mark_price: Decimal  # the price at rest (the path, when one is set, moves around it)
    tick_size: str
    step_size: str
    min_quantity: str = "0.001"
    min_notional: str = "5"
    onboard_ms: int = 1569398400000
    max_leverage: int = 125
    status: str = "TRADING"
    max_quantity: str = "100000000"  # LOT_SIZE maxQty (limit orders)
    market_max_quantity: str = "1000000"  # MARKET_LOT_SIZE maxQty: above it, -4005


DEFAULT_MARKETS = (
    # Binance's BTCUSDT maxima: 1000 for limit orders (LOT_SIZE), 120 for market ones
    LoopbackMarket(
        "BTCUSDT",
        "BTC",
        Decimal("100000.0"),
        "0.10",
        "0.001",
        "0.001",
        "100",
        max_quantity="1000",
        market_max_quantity="120",
    ),
    LoopbackMarket("ETHUSDT", "ETH", Decimal("3500.00"), "0.01", "0.001", "0.001", "20"),
    LoopbackMarket("SOLUSDT", "SOL", Decimal("180.00"), "0.01", "1", "1"),
    LoopbackMarket("BNBUSDT", "BNB", Decimal("600.00"), "0.01", "0.01", "0.01"),
    LoopbackMarket("XRPUSDT", "XRP", Decimal("2.0000"), "0.0001", "0.1", "0.1"),
    LoopbackMarket("DOGEUSDT", "DOGE", Decimal("0.200000"), "0.000010", "1", "1"),
    LoopbackMarket("BCHUSDT", "BCH", Decimal("500.00"), "0.01", "0.001", "0.001", "20"),
    LoopbackMarket("INJUSDT", "INJ", Decimal("20.000"), "0.001", "0.1", "0.1"),
)


def generated_markets(count: int) -> tuple[LoopbackMarket, ...]:
    """The default markets plus generated ones (GEN001USDT...), `count` in all: for the
    request-weight measurement at 50 symbols."""
    extra = [
        LoopbackMarket(f"GEN{i:03d}USDT", f"GEN{i:03d}", Decimal(10 + i), "0.001", "0.1", "0.1")
        for i in range(1, max(0, count - len(DEFAULT_MARKETS)) + 1)
    ]
    return (*DEFAULT_MARKETS, *extra)[:count]


@dataclass(frozen=True, slots=True)
class MarkPath:
    """Mark price = rest price × (1 + a slow swing + per-second noise), a pure function of
    (seed, symbol, second): any two runs with one seed see the same prices at the same times.

    `swing` is the relative amplitude of a sine of period `period_s`; `noise` the relative
    standard deviation of the per-second term.
    """

    seed: int
    swing: float = 0.01
    period_s: float = 600.0
    noise: float = 0.0005

    def price(self, market: LoopbackMarket, now_ms: int) -> Decimal:
        second = now_ms // 1000
        phase = _phase(self.seed, market.market_id)
        swing = self.swing * math.sin(2 * math.pi * second / self.period_s + phase)
        noise = self.noise * _standard_normal(f"{self.seed}:{market.market_id}:{second}")
        raw = market.mark_price * Decimal(repr(1 + swing + noise))
        tick = Decimal(market.tick_size)
        return (raw / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick

    def kline(
        self, market: LoopbackMarket, open_ms: int, step: int, now_ms: int, samples: int = 12
    ) -> list[Any]:
        """The candle of the path opening at `open_ms` (up to `now_ms` while it forms): open
        and close are the marks at its ends, high and low the extremes of `samples` marks."""
        last = min(open_ms + step - 1, now_ms)
        times = [open_ms + (last - open_ms) * i // samples for i in range(samples + 1)]
        prices = [self.price(market, t) for t in times]
        return [
            open_ms,
            str(prices[0]),
            str(max(prices)),
            str(min(prices)),
            str(prices[-1]),
            "100",
            open_ms + step - 1,
            "0",
            100,
            "0",
            "0",
            "0",
        ]


@functools.lru_cache(maxsize=4096)
def _phase(seed: int, market_id: str) -> float:
    return random.Random(f"{seed}:{market_id}").uniform(0, 2 * math.pi)


def _standard_normal(key: str) -> float:
    """A standard normal draw that is a pure function of `key` (cheap: candles sample the
    path thousands of times)."""
    unit = (zlib.crc32(key.encode()) + 0.5) / 2**32
    return _NORMAL.inv_cdf(unit)


_NORMAL = statistics.NormalDist()


def symbol_info(m: LoopbackMarket) -> dict[str, Any]:
    """One exchangeInfo `symbols[]` row, as Binance documents it."""
    return {
        "symbol": m.market_id,
        "pair": m.market_id,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": m.onboard_ms,
        "status": m.status,
        "baseAsset": m.base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "triggerProtect": "0.0500",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "tickSize": m.tick_size,
                "minPrice": m.tick_size,
                "maxPrice": "10000000",
            },
            {
                "filterType": "LOT_SIZE",
                "stepSize": m.step_size,
                "minQty": m.min_quantity,
                "maxQty": m.max_quantity,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": m.step_size,
                "minQty": m.min_quantity,
                "maxQty": m.market_max_quantity,
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": m.min_notional},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


BRACKET_TIERS = (  # (notional cap USDT, leverage ceiling, maintenance margin ratio)
    (50_000, 125, "0.004"),
    (250_000, 50, "0.005"),
    (1_000_000, 20, "0.01"),
    (10_000_000, 10, "0.025"),
    (50_000_000, 5, "0.05"),
    (100_000_000, 1, "0.5"),
)


def leverage_brackets(m: LoopbackMarket) -> dict[str, Any]:
    """One GET /fapi/v1/leverageBracket row, as Binance documents it: the tiers above, each
    capped at the market's `max_leverage`."""
    rows, floor, cum = [], 0, Decimal(0)
    previous_ratio = Decimal(0)
    for number, (cap, leverage, ratio) in enumerate(BRACKET_TIERS, start=1):
        cum += floor * (Decimal(ratio) - previous_ratio)
        rows.append({
            "bracket": number, "initialLeverage": min(leverage, m.max_leverage),
            "notionalCap": cap, "notionalFloor": floor, "maintMarginRatio": float(ratio),
            "cum": float(cum),
        })  # fmt: skip
        floor, previous_ratio = cap, Decimal(ratio)
    return {"symbol": m.market_id, "brackets": rows}


def kline(market: LoopbackMarket, open_ms: int, step: int) -> list[Any]:
    """A deterministic candle of `market` opening at `open_ms`."""
    base = float(market.mark_price)
    phase = open_ms // step
    open_, close = (base * (1 + 0.002 * math.sin(p / 7)) for p in (phase - 1, phase))
    high, low = max(open_, close) * 1.001, min(open_, close) * 0.999
    return [
        open_ms,
        f"{open_:.6f}",
        f"{high:.6f}",
        f"{low:.6f}",
        f"{close:.6f}",
        f"{100 + phase % 10}",
        open_ms + step - 1,
        "0",
        100,
        "0",
        "0",
        "0",
    ]
