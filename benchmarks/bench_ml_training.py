"""Wall time of `train_models` on the bundled sample (8 symbols, 1h), per stage and in total.

Run: .venv/bin/python -m benchmarks.bench_ml_training [--days 90] [--out DIR] [--report FILE]
    [--source DIR] [--end YYYY-MM-DD] [--threads 2]
Trains all four models with the default settings except `training_days` (the SPEC's default is
90; 270 = the bundled sample's nine months), `training_end` and `torch_threads`, on this
machine's 2 cores: exactly what `quantum-trader train` runs. Publishes the model set under --out
(a temporary directory by default) and copies the Markdown report to --report if given.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.scratch import scratch_dir
from quantum_trader.config import DEFAULT_SYMBOLS, MarketSettings, Settings
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.signals.training import train_models

TRAINED_AT = datetime(2025, 12, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--end", type=str, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--symbols", type=str, default=",".join(DEFAULT_SYMBOLS))
    args = parser.parse_args()
    symbols = tuple(args.symbols.split(","))
    base = Settings(market=MarketSettings(symbols=symbols))
    ensemble = base.ensemble.model_copy(
        update={
            "training_days": args.days,
            "training_end": None
            if args.end is None
            else datetime.fromisoformat(args.end).replace(tzinfo=UTC),
            "torch_threads": args.threads,
        }
    )
    settings = base.model_copy(update={"ensemble": ensemble})
    out = args.out or scratch_dir("qt-models-")
    started = time.perf_counter()
    stage_started = [started, 0.0]
    last_stage = ["start"]

    def progress(stage: str, fraction: float) -> None:
        now = time.perf_counter()
        took = now - stage_started[0]
        print(f"{now - started:7.1f} s  {fraction:4.0%}  {last_stage[0]} took {took:.1f} s")
        stage_started[0] = now
        last_stage[0] = stage

    result = train_models(
        settings, args.source or bundled_sample_dir(), symbols, out, TRAINED_AT, progress
    )
    report = result.report
    total = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.to_markdown())
    print(f"training_days={args.days}: total {total:.1f} s, peak RSS {peak_mb:.0f} MB")
    print(f"model set {result.set_dir}")
    if args.report:
        args.report.write_text(report.to_markdown())


if __name__ == "__main__":
    main()
