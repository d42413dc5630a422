"""Ensemble inference cost: the live path (tail=1) for 50 symbols, the backtest path, and RSS.

Run: .venv/bin/python -m benchmarks.bench_ml_inference [--models DIR] [--symbols 50]
DIR is a models directory (`data_dir/models`: CURRENT and the model sets).
Without --models it first trains the four models quickly (30 days, 10 forecaster steps: the
networks and trees have their full size, so inference costs the same as after a full run).
The 50 symbols are the bundled sample's 8 recorded 5m series, repeated under other names with
their prices scaled, each with `warmup_hours` of history: what the live cycle hands the
ensemble. Timings are the median and 95th percentile of 50 calls after 3 warm-up calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

from benchmarks.scratch import scratch_dir
from quantum_trader.config import DEFAULT_SYMBOLS, MarketSettings, Settings
from quantum_trader.domain import Bars
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.replay import FundingSeries
from quantum_trader.signals.ensemble import Ensemble
from quantum_trader.signals.loading import load_ensemble
from quantum_trader.signals.training import train_models

RUNS = 50


def quick_models(settings: Settings) -> Path:
    out = scratch_dir("qt-bench-models-")
    quick = settings.ensemble.model_copy(update={"training_days": 30, "forecaster_steps": 10})
    train_models(
        settings.model_copy(update={"ensemble": quick}),
        bundled_sample_dir(),
        DEFAULT_SYMBOLS,
        out,
        datetime(2025, 12, 1, tzinfo=UTC),
    )
    return out


def universe(store: CandleStore, count: int, history: int) -> dict[str, Bars]:
    recorded = [store.load_bars(s, "5m") for s in DEFAULT_SYMBOLS]
    bars = {}
    for i in range(count):
        b = recorded[i % len(recorded)]
        k = 1.0 + 0.01 * i
        window = b.slice(len(b) - history, len(b))
        name = DEFAULT_SYMBOLS[i] if i < len(DEFAULT_SYMBOLS) else f"S{i:02d}/USDT:USDT"
        bars[name] = Bars(
            name,
            b.timeframe_ms,
            window.time_ms,
            window.open * k,
            window.high * k,
            window.low * k,
            window.close * k,
            window.volume,
        )
    return bars


def timed(ensemble: Ensemble, bars: dict[str, Bars], tail: int | None, runs: int) -> list[float]:
    for _ in range(3):
        ensemble.evaluate(bars, tail=tail)
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        ensemble.evaluate(bars, tail=tail)
        out.append((time.perf_counter() - started) * 1000)
    return out


def report(label: str, samples: list[float]) -> None:
    p95 = float(np.percentile(samples, 95))
    print(f"{label}: median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args()
    settings = Settings(market=MarketSettings(symbols=DEFAULT_SYMBOLS))
    models = args.models or quick_models(settings)
    store = CandleStore(bundled_sample_dir())
    funding = {s: FundingSeries.from_rates(*store.load_funding(s)) for s in DEFAULT_SYMBOLS}
    ensemble = load_ensemble(models, settings, funding)
    assert ensemble is not None
    warmup_bars = ensemble.warmup_hours * 12
    print(f"models: {', '.join(ensemble.model_names)}; warmup {warmup_bars} 5m bars")
    live = universe(store, args.symbols, warmup_bars + 12)
    report(f"live cycle, {args.symbols} symbols, tail=1", timed(ensemble, live, 1, RUNS))
    for name in ensemble.model_names:
        one = settings.ensemble.model_copy(update={"models": (name,), "min_models": 1})
        alone = load_ensemble(models, settings.model_copy(update={"ensemble": one}), funding)
        assert isinstance(alone, Ensemble)
        report(f"  {name} alone (with features)", timed(alone, live, 1, 20))
    rss = psutil.Process().memory_info().rss / 2**20
    print(f"RSS with all models loaded after live cycles: {rss:.0f} MB")
    recorded = {s: store.load_bars(s, "5m") for s in DEFAULT_SYMBOLS}
    rows = sum(len(b) for b in recorded.values())
    started = time.perf_counter()
    ensemble.evaluate(recorded)
    seconds = time.perf_counter() - started
    print(f"backtest path: {len(recorded)} symbols x 5m, {rows} bars in {seconds:.2f} s")
    rss = psutil.Process().memory_info().rss / 2**20
    print(f"RSS after the backtest path: {rss:.0f} MB")


if __name__ == "__main__":
    main()
