"""Binance request weight of the whole daemon in steady state: 50 symbols, 20 open positions.

The daemon in testnet mode (the runtime and loops `quantum-trader run` uses: executor every
30 s, keeper every 5 s, the streams) against the loopback stand-in, on a simulated clock. The
20 positions are entered through the keeper (each with its reduce-only stop and target); the
signals then say HOLD, so what follows is steady state: candles for 50 symbols, the balance,
the keeper's ticks and its REST checks. The stand-in counts Binance's documented IP weight of
every request per simulated minute. Run:

    .venv/bin/python -m benchmarks.bench_request_weight [--minutes 10] [--speed 20]
        [--cases streams,stale,rest,rest3,streams3]

It measures with the streams (the default), with the streams and one held symbol the
mark-price stream never carries (its mark read over REST every tick), and with
exchange.use_streams = false, with 20 positions and with 3; and with the streams and 3
positions (the keeper's check then reads each held symbol's open algo orders: weight 1 each).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopback import WEIGHT_LIMIT_PER_MINUTE, LoopbackBinance, LoopbackState
from loopback.fixtures import loopback_settings
from loopback.markets import MarkPath, generated_markets
from loopback.state import START_MS

from benchmarks.scratch import scratch_dir
from quantum_trader.app import Runtime
from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.app_ops import open_operations
from quantum_trader.clock import SimulatedClock, ms_from_utc, utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.daemon import run_loops
from quantum_trader.domain import Bars, ExitMode, Side, SignalSeries, SizedOrder
from quantum_trader.ops.metrics import Metrics

SYMBOLS, POSITIONS = 50, 20


class Hold:
    """No new entries: steady state."""

    name = "hold"
    warmup_hours = 1
    history_hours = 1

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        out = {}
        for symbol, b in bars.items():
            action, confidence = np.zeros(len(b), dtype=np.int8), np.zeros(len(b))
            out[symbol] = SignalSeries(action, confidence, {self.name: (action, confidence)})
        return out


def sized(symbol: str, price: Decimal, quantity: Decimal) -> SizedOrder:
    return SizedOrder(
        symbol=symbol,
        side=Side.LONG,
        quantity=quantity,
        entry_price=price,
        stop_price=price * Decimal("0.9"),
        take_profit_price=price * Decimal("1.2"),
        leverage=3,
        notional_usdt=price * quantity,
        margin_usdt=price * quantity / 3,
        expected_loss_usdt=price * quantity / 10,
        expected_profit_usdt=price * quantity / 5,
        costs_usdt=Decimal(0),
        atr_pct=0.05,
        confidence=0.5,
        exit_mode=ExitMode.DEFENSIVE_TRAIL,
    )


async def enter_positions(runtime: Runtime, positions: int) -> None:
    exchange = runtime.exchange
    rules = await exchange.load_markets()
    symbols = list(runtime.settings.market.symbols)[:positions]
    prices = await exchange.fetch_mark_prices(symbols)
    for symbol in symbols:
        quantity = rules[symbol].round_quantity_down(Decimal(400) / prices[symbol])
        order = sized(symbol, prices[symbol], max(quantity, rules[symbol].step_size))
        await runtime.core.keeper.enter(order, runtime.clock.now())


async def measure(
    minutes: float, speed: float, streams: bool, left_out: bool = False, positions: int = POSITIONS
) -> tuple[list[int], dict[str, int]]:
    markets = generated_markets(SYMBOLS)
    state = LoopbackState(markets={m.market_id: m for m in markets})
    state.mark_path = MarkPath(7, swing=0.0005, period_s=3600.0, noise=0.00005)  # calm
    clock = SimulatedClock(utc_from_ms(START_MS + 3_600_000), speed)
    async with LoopbackBinance(state, clock=clock) as server:
        if left_out:  # the first symbol, held: its streamed mark is stale for good
            server.streams.faults.marks_left_out.add(markets[0].market_id)
        symbols = tuple(f"{m.base}/USDT:USDT" for m in markets)
        settings = Settings(
            data_dir=scratch_dir("qt-weight-"),
            exchange=loopback_settings(10.0, server, use_streams=streams),
            market=MarketSettings(symbols=symbols, history_bars=300),
            health={"latency_good_ms": 60_000, "latency_acceptable_ms": 60_000},
            server={"enabled": False},
        )
        async with AsyncExitStack() as stack:
            stopping = asyncio.Event()
            runtime = await open_exchange_runtime(
                settings, stack, stopping, clock=clock, source=Hold(), rate_limit=False
            )
            await enter_positions(runtime, positions)
            # Steady state from the fifth minute: by then the 300-bar history of 50 symbols is
            # loaded and the streams are seeded (the start costs ≈ 300 weight a minute, once).
            start_ms = ms_from_utc(clock.now()) + 240_000
            end_ms = start_ms + round(minutes * 60_000)

            async def stop_at_end() -> None:
                await clock.sleep_until(utc_from_ms(end_ms) + timedelta(seconds=1))
                stopping.set()

            ops = await open_operations(runtime, Metrics(), stack)
            await asyncio.gather(run_loops(runtime, ops, stopping), stop_at_end())
            held = len(runtime.core.keeper.positions)
        if held != positions:
            raise SystemExit(f"steady state lost: {held} positions instead of {positions}")
        return server.weight_per_minute(start_ms, end_ms), server.weight_by_route(start_ms, end_ms)


def report(label: str, per_minute: list[int], routes: dict[str, int], minutes: float) -> float:
    worst = max(per_minute)
    mean = sum(per_minute) / len(per_minute)
    print(f"{label}: weight per minute {per_minute} (mean {mean:.0f})")
    print(
        f"  worst minute {worst} = {100 * worst / WEIGHT_LIMIT_PER_MINUTE:.1f} % of "
        f"{WEIGHT_LIMIT_PER_MINUTE} (target ≤ 5 %)"
    )
    for route, weight in sorted(routes.items(), key=lambda item: -item[1]):
        print(f"  {route:45s} {weight / minutes:7.1f} /min")
    return worst


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "streams": ("with the streams", {"streams": True}),
    "stale": ("streams, one held symbol not streamed", {"streams": True, "left_out": True}),
    "rest": ("REST only (exchange.use_streams = false)", {"streams": False}),
    "rest3": ("REST only, 3 positions", {"streams": False, "positions": 3}),
    "streams3": ("with the streams, 3 positions", {"streams": True, "positions": 3}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    cases = [CASES[name] for name in args.cases.split(",")]
    measured = [(label, asyncio.run(measure(args.minutes, args.speed, **how)))
                for label, how in cases]  # fmt: skip
    print(f"{SYMBOLS} symbols, {POSITIONS} positions unless said, {args.minutes:g} simulated min")
    for label, (per_minute, routes) in measured:
        report(label, per_minute, routes, args.minutes)


if __name__ == "__main__":
    main()
