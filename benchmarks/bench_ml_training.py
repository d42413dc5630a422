"""Wall time of `train_models` on the bundled sample (8 symbols, 1h), per stage and in total.

Run: .venv/bin/python benchmarks/bench_ml_training.py [--days 270] [--out DIR] [--report FILE]
Trains all four models with the default settings except `training_days` (270 = the sample's
nine months; the SPEC's default is 90), on this machine's 2 cores. Writes the artifacts to
--out (a temporary directory by default) and the Markdown report to --report if given.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from quantum_trader.config import DEFAULT_SYMBOLS
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.signals.settings import EnsembleSettings
from quantum_trader.signals.training import train_models

TRAINED_AT = datetime(2025, 12, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=270)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    settings = EnsembleSettings(training_days=args.days)
    out = args.out or Path(tempfile.mkdtemp(prefix="qt-models-"))
    started = time.perf_counter()
    stage_started = [started, 0.0]
    last_stage = ["start"]

    def progress(stage: str, fraction: float) -> None:
        now = time.perf_counter()
        took = now - stage_started[0]
        print(f"{now - started:7.1f} s  {fraction:4.0%}  {last_stage[0]} took {took:.1f} s")
        stage_started[0] = now
        last_stage[0] = stage

    report = train_models(
        settings, bundled_sample_dir(), DEFAULT_SYMBOLS, out, TRAINED_AT, progress
    )
    total = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.to_markdown())
    print(f"training_days={args.days}: total {total:.1f} s, peak RSS {peak_mb:.0f} MB")
    print(f"artifacts in {out}")
    if args.report:
        args.report.write_text(report.to_markdown())


if __name__ == "__main__":
    main()
