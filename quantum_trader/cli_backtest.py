"""`quantum-trader backtest` and `quantum-trader walk-forward`.

Both stop cleanly on SIGTERM/SIGINT, and on SIGHUP unless `nohup` ignores it (the replay
ends at its next step, the partial output is removed, the previous outputs stay as they were;
exit 1) and print a summary that names the
sample (OUT-OF-SAMPLE / IN-SAMPLE), the signal source and the models' training window.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from quantum_trader.cli import (
    ConfigOption,
    _parse_day,
    _settings,
    app,
    console,
    log_market_data,
    parse_symbols,
)
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.helper_process import FALLBACK_WARNINGS
from quantum_trader.log import configure_logging
from quantum_trader.stop_signals import add_stop_handlers, remove_stop_handlers

T = TypeVar("T")

Start = Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (UTC).")]
End = Annotated[str | None, typer.Option(help="Day after the last, YYYY-MM-DD (UTC).")]
Symbols = Annotated[str | None, typer.Option(help="Comma-separated ccxt symbols.")]


def _quiet(config: Path | None, symbols: tuple[str, ...] | None) -> Settings:
    """The settings, after the first log line names the data; then only errors are logged,
    the warning of a helper process whose work this process took over, and those of optional
    inputs missing from the data (the run's results are without them)."""
    from quantum_trader.market.setup import MISSING_INPUT_WARNINGS

    settings = _settings(config)
    _refuse_an_account_that_cannot_trade(settings)
    log_market_data(settings, symbols)
    if settings.log.level != "DEBUG":  # a year is a million lines, all in the report: summary
        shown = FALLBACK_WARNINGS | MISSING_INPUT_WARNINGS
        configure_logging(settings.log.format, "ERROR", shown=shown)
    return settings


def _refuse_an_account_that_cannot_trade(settings: Settings) -> None:
    """A replay's fresh paper account below the risk guard's minimum trades nothing, and the
    summary said only `trades 0` (a daemon says it: health CRITICAL on the balance, then a
    clean stop; an optimize trial drawing it is set aside for too few trades)."""
    balance, minimum = settings.exchange.paper_initial_balance_usdt, settings.risk.min_balance_usdt
    if balance < minimum:
        raise ConfigurationError(
            [
                f"exchange.paper_initial_balance_usdt: must be at least risk.min_balance_usdt "
                f"({minimum:g}), or the risk guard refuses every entry; got {balance:g}"
            ]
        )


def _symbols(value: str | None) -> tuple[str, ...] | None:
    """`--symbols`, checked (None: not given, the configured universe)."""
    return None if value is None else parse_symbols(value)


async def until_signalled(run: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `run(stopping)` with the stop signals (stop_signals.py) setting `stopping` instead
    of killing."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    add_stop_handlers(loop, stopping.set)
    try:
        return await run(stopping)
    finally:
        remove_stop_handlers(loop)


@app.command()
def backtest(
    config: ConfigOption = None,
    start: Start = None,
    end: End = None,
    symbols: Symbols = None,
    out: Annotated[
        Path, typer.Option(help="Output directory (replaced whole when the run completes).")
    ] = Path("reports/backtest"),
    allow_in_sample: Annotated[
        bool,
        typer.Option(
            "--allow-in-sample",
            help="Run even if the window overlaps the models' training window; every output "
            "is then stamped IN-SAMPLE.",
        ),
    ] = False,
) -> None:
    """Run the daemon's pipeline over recorded data on a simulated clock, as fast as possible."""
    import uvloop

    from quantum_trader.backtest import BacktestRequest, run_backtest
    from quantum_trader.collector import leave_to_exit
    from quantum_trader.report.summary import print_backtest_summary

    settings = _quiet(config, _symbols(symbols))
    request = BacktestRequest(
        start=_parse_day("--start", start),
        end=_parse_day("--end", end),
        symbols=_symbols(symbols),
        out_dir=out,
        allow_in_sample=allow_in_sample,
        helper_processes=_spare_core(),
    )
    report = uvloop.run(until_signalled(lambda stop: run_backtest(settings, request, stop)))
    print_backtest_summary(console, report, out)
    leave_to_exit()


def _spare_core() -> bool:
    """Whether this process may use more than one core (the backtest's helper processes)."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return (len(cores) if cores is not None else os.cpu_count() or 1) > 1


@app.command("walk-forward")
def walk_forward(
    config: ConfigOption = None,
    start: Start = None,
    end: End = None,
    symbols: Symbols = None,
    out: Annotated[
        Path, typer.Option(help="Output directory (replaced whole when the run completes).")
    ] = Path("reports/walk-forward"),
    block_days: Annotated[int, typer.Option(min=1, help="Days traded by each set of models.")] = 30,
    training_days: Annotated[
        int | None,
        typer.Option(min=7, help="Days each set is trained on (default ensemble.training_days)."),
    ] = None,
) -> None:
    """Retrain before every block and backtest it out of sample; one stitched report."""
    import uvloop

    from quantum_trader.report.summary import print_backtest_summary
    from quantum_trader.walk_forward import WalkForwardRequest, run_walk_forward

    settings = _quiet(config, _symbols(symbols))
    request = WalkForwardRequest(
        block_days=block_days,
        training_days=training_days or settings.ensemble.training_days,
        start=_parse_day("--start", start),
        end=_parse_day("--end", end),
        symbols=_symbols(symbols),
        out_dir=out,
    )
    report = uvloop.run(
        until_signalled(
            lambda stop: run_walk_forward(settings, request, stop, progress=console.print)
        )
    )
    print_backtest_summary(console, report, out)
