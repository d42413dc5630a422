"""The paper account file after a year of paper trading: its size and a save, before and after
pruning (execution/paper_retention.py).

Run: .venv/bin/python -m benchmarks.bench_paper_age [--days 365] [--symbols 4] [--repeats 5]

1. A year of round trips through the real PaperExchange on a fake clock, with no state file
   (as a backtest: nothing pruned, nothing saved while it runs), at the rates of the bundled
   market's paper run (docs/BENCHMARKS.md, "Operations: a year of service": 85 orders,
   38 fills and 18 funding settlements in 50.2 simulated hours): on each of `--symbols`
   symbols, back to back every 10.5 hours, a market entry with a stop and a take-profit,
   every other trip the stop moved once (cancel, place), then both cancelled and a market
   exit 8 hours after the entry (one funding settlement held across each time).
2. Before: the whole account written as the daemon wrote it (`save_state`, with fsync),
   timed (median of `--repeats`), its size, and `load_state` timed.
3. After: a PaperExchange opened on that file as the daemon opens it, one step later (its
   first catch-up prunes and saves); then the same save and load timed on the pruned
   account, and what `prune` itself costs on the year-old account (once, at the upgrade)
   and on the pruned one (at most once a simulated hour).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import Bars, MarketRules, OrderKind, OrderRequest, OrderSide
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_retention import prune
from quantum_trader.execution.paper_state import PaperState, load_state, save_state
from quantum_trader.market.replay import FundingSeries
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

T0 = datetime(2025, 1, 1, tzinfo=UTC)
BAR_MS = 300_000
TRIP_EVERY = timedelta(hours=10, minutes=30)
HELD_FOR = timedelta(hours=8)
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def rules(symbol: str) -> MarketRules:
    return MarketRules(
        symbol=symbol,
        tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"),
        min_quantity=Decimal("0.001"),
        min_notional=Decimal("5"),
        max_leverage=20,
    )


def bars(symbol: str, days: int) -> Bars:
    """5m bars swinging ±1 % about 20,000 each day: no stop or target below is reached."""
    count = (days + 2) * 288
    steps = np.arange(count, dtype=np.float64)
    close = 20000.0 * (1 + 0.01 * np.sin(steps * 2 * np.pi / 288))
    return Bars(
        symbol=symbol,
        timeframe_ms=BAR_MS,
        time_ms=ms_from_utc(T0) + BAR_MS * np.arange(count, dtype=np.int64),
        open=close.copy(),
        high=close * 1.0005,
        low=close * 0.9995,
        close=close,
        volume=np.ones(count, dtype=np.float64),
    )


def funding(days: int) -> FundingSeries:
    times = ms_from_utc(T0) + 8 * 3_600_000 * np.arange((days + 2) * 3, dtype=np.int64)
    return FundingSeries.from_rates(times, np.full(times.shape, 0.0001))


def exchange(clock: ManualClock, symbols: list[str], days: int, path: Path | None) -> PaperExchange:
    return PaperExchange(
        rules={s: rules(s) for s in symbols},
        costs=CostModel(CostSettings()),
        clock=clock,
        initial_balance_usdt=Decimal(100_000),
        bars={s: bars(s, days) for s in symbols},
        funding={s: funding(days) for s in symbols},
        state_path=path,
    )


def request(cid: str, symbol: str, side: OrderSide, trigger: str | None = None) -> OrderRequest:
    if trigger is None:
        kind, price = OrderKind.MARKET, None
    else:
        kind = OrderKind.STOP_MARKET if trigger == "15000" else OrderKind.TAKE_PROFIT_MARKET
        price = Decimal(trigger)
    return OrderRequest(cid, symbol, side, kind, Decimal("0.01"), price, side is SELL)


Step = tuple[datetime, int, Callable[[], Awaitable[object]]]


async def trade_a_year(
    paper: PaperExchange, clock: ManualClock, symbols: list[str], days: int
) -> int:
    """Round trips on every symbol, staggered, until `days` have passed; the trips made."""
    end, steps = T0 + timedelta(days=days), []
    for k, symbol in enumerate(symbols):
        start, n = T0 + timedelta(hours=1) + TRIP_EVERY * k / len(symbols), 0
        while start + HELD_FOR < end:
            steps += round_trip(paper, symbol, start, f"{symbol}-{n}", moved=n % 2 == 1)
            start, n = start + TRIP_EVERY, n + 1
    steps.sort(key=lambda step: step[:2])
    for moment, _, action in steps:
        clock.set(moment)
        await action()
    clock.set(end)
    await paper.fetch_balance()
    return sum(1 for step in steps if step[1] == 0)


def round_trip(
    paper: PaperExchange, symbol: str, start: datetime, cid: str, moved: bool
) -> list[Step]:
    """A trip's steps: (when, its order at that instant, what)."""
    stop = f"{cid}-s2" if moved else f"{cid}-s"
    steps: list[Step] = [
        (start, 0, lambda: paper.place_order(request(f"{cid}-e", symbol, BUY))),
        (start, 1, lambda: paper.place_order(request(f"{cid}-s", symbol, SELL, "15000"))),
        (start, 2, lambda: paper.place_order(request(f"{cid}-t", symbol, SELL, "25000"))),
        (start + HELD_FOR, 3, lambda: paper.cancel_conditional_order(symbol, stop)),
        (start + HELD_FOR, 4, lambda: paper.cancel_conditional_order(symbol, f"{cid}-t")),
        (start + HELD_FOR, 5, lambda: paper.place_order(request(f"{cid}-x", symbol, SELL))),
    ]
    if moved:
        middle = start + HELD_FOR / 2
        steps += [
            (middle, 6, lambda: paper.cancel_conditional_order(symbol, f"{cid}-s")),
            (middle, 7, lambda: paper.place_order(request(stop, symbol, SELL, "15000"))),
        ]
    return steps


def timed_ms(action: Callable[[], object], repeats: int) -> float:
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def describe(name: str, path: Path, state: PaperState, repeats: int) -> None:
    raw = json.loads(path.read_text())
    funding_rows = sum(len(e) for e in raw["funding"].values())
    print(
        f"{name}: {path.stat().st_size / 2**20:.2f} MB; {len(raw['orders'])} orders, "
        f"{len(raw['fills'])} fills ({state.fill_count()} counted), {funding_rows} settlements"
    )
    print(
        f"  save (save_state, fsync): {timed_ms(lambda: save_state(path, state), repeats):.1f} ms"
    )
    print(f"  load (load_state): {timed_ms(lambda: load_state(path), repeats):.1f} ms")


async def main_async(days: int, symbol_count: int, repeats: int, directory: Path) -> None:
    symbols = [f"S{k}/USDT:USDT" for k in range(symbol_count)]
    clock = ManualClock(T0)
    whole = exchange(clock, symbols, days, None)
    started = time.perf_counter()
    trips = await trade_a_year(whole, clock, symbols, days)
    print(f"{days} days, {trips} round trips, simulated in {time.perf_counter() - started:.0f} s")
    path = directory / "paper_exchange.json"
    state = whole._ledger.state  # a backtest's account: nothing pruned
    save_state(path, state)
    describe("before (every order, fill and settlement)", path, state, repeats)

    year_old = load_state(path)
    assert year_old is not None
    once = timed_ms(lambda: prune(year_old, year_old.last_ms), 1)
    print(f"  prune, once, on the year-old account: {once:.1f} ms")
    clock.set(clock.now() + timedelta(minutes=1))
    daemon = exchange(clock, symbols, days, path)
    await daemon.fetch_balance()  # its first catch-up prunes, and saves
    pruned = daemon._ledger.state
    describe("after (pruned at the first step)", path, pruned, repeats)
    hourly = timed_ms(lambda: prune(pruned, pruned.last_ms), repeats)
    print(f"  prune, on the pruned account: {hourly:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qt-paper-age-") as directory:
        asyncio.run(main_async(options.days, options.symbols, options.repeats, Path(directory)))


if __name__ == "__main__":
    main()
