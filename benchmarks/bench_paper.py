"""Time the paper exchange's catch-up step: 8 symbols, 8 open stops, a year of 5m bars.

The bundled sample holds 91 days of 5m bars; each symbol's path is tiled (scaled to stay
continuous) to 365 days, with 8-hourly funding from the sample's rates. Every symbol holds a
long with a reduce-only stop 3 % below; when a stop fills, the position and its stop are
re-opened at the next step. Each step advances a manual clock by 5 minutes and catches up.

Run: .venv/bin/python benchmarks/bench_paper.py
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

import numpy as np

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.domain import Bars, MarketRules, OrderKind, OrderRequest, OrderSide
from quantum_trader.execution.paper import PaperExchange, default_market_rules
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.replay import FundingSeries
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

YEAR_BARS = 365 * 288
EIGHT_HOURS_MS = 8 * 3_600_000


def tile_year(bars: Bars) -> Bars:
    """Repeat the recorded path to a year, each copy scaled to start where the last ended."""
    pieces: list[tuple[np.ndarray, ...]] = []
    scale, count = 1.0, 0
    while count < YEAR_BARS:
        columns = (bars.open, bars.high, bars.low, bars.close)
        pieces.append(tuple(column * scale for column in columns))
        scale *= float(bars.close[-1] / bars.open[0])
        count += len(bars)
    o, h, low, c = (np.concatenate([p[i] for p in pieces])[:YEAR_BARS] for i in range(4))
    times = int(bars.time_ms[0]) + bars.timeframe_ms * np.arange(YEAR_BARS, dtype=np.int64)
    return Bars(bars.symbol, bars.timeframe_ms, times, o, h, low, c, np.ones(YEAR_BARS))


def tile_funding(rates: np.ndarray, start_ms: int) -> FundingSeries:
    count = 365 * 3
    times = start_ms + EIGHT_HOURS_MS * np.arange(1, count + 1, dtype=np.int64)
    return FundingSeries.from_rates(times, np.resize(rates, count).astype(np.float64))


async def protect(
    paper: PaperExchange, rules: MarketRules, symbol: str, price: Decimal, number: int
) -> None:
    """Open a ~1,000 USDT long at 3x and place its stop 3 % below."""
    quantity = max(rules.round_quantity_down(Decimal(1000) / price), rules.min_quantity)
    buy = OrderRequest(f"e{number}", symbol, OrderSide.BUY, OrderKind.MARKET, quantity)
    await paper.place_order(buy)
    trigger = rules.round_price(price * Decimal("0.97"))
    stop = OrderRequest(
        f"s{number}", symbol, OrderSide.SELL, OrderKind.STOP_MARKET, quantity, trigger, True
    )
    await paper.place_order(stop)


async def main() -> None:
    store = CandleStore(bundled_sample_dir())
    symbols = store.available_symbols("5m")
    bars = {s: tile_year(store.load_bars(s, "5m")) for s in symbols}
    start_ms = max(int(b.time_ms[0]) for b in bars.values())
    funding = {s: tile_funding(store.load_funding(s)[1], start_ms) for s in symbols}
    rules = default_market_rules(symbols)
    clock = ManualClock(utc_from_ms(start_ms))
    paper = PaperExchange(
        rules=rules,
        costs=CostModel(CostSettings()),
        clock=clock,
        initial_balance_usdt=Decimal(1_000_000),
        bars=bars,
        funding=funding,
    )
    for symbol in symbols:
        await paper.set_leverage(symbol, 3)
    number = 0
    prices = await paper.fetch_mark_prices(symbols)
    for symbol in symbols:
        await protect(paper, rules[symbol], symbol, prices[symbol], number := number + 1)
    steps, step_seconds, reopened = YEAR_BARS - 2, 0.0, 0
    for _ in range(steps):
        clock.advance(300)
        began = time.perf_counter()
        totals = paper.totals  # every public call catches up first; this one does nothing else
        step_seconds += time.perf_counter() - began
        open_stops = {o.symbol for o in await paper.fetch_open_conditional_orders()}
        if len(open_stops) < len(symbols):
            prices = await paper.fetch_mark_prices(symbols)
            for symbol in sorted(set(symbols) - open_stops):
                await protect(paper, rules[symbol], symbol, prices[symbol], number := number + 1)
                reopened += 1
    span = clock.now() - utc_from_ms(start_ms)
    print(f"symbols={len(symbols)} steps={steps} span={span / timedelta(days=1):.0f} days")
    print(f"catch-up per step: {step_seconds / steps * 1e6:.1f} us (total {step_seconds:.2f} s)")
    print(f"stops triggered and re-placed: {reopened}")
    print(
        f"wallet={totals.wallet_usdt:.2f} realized={totals.realized_pnl_usdt:.2f} "
        f"fees={totals.fees_usdt:.2f} funding={totals.funding_usdt:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
