"""`quantum-trader download-data` (SPEC §10.1): recorded candles and funding rates from the
public Binance USD-M API into `data_dir/market`, the candle-store layout the replay reads.

No API keys are needed. Registered on `quantum_trader.cli.app` when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quantum_trader.cli import ConfigOption, _settings, app, console
from quantum_trader.clock import LiveClock
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.market.candle_store import TIMEFRAME_MS
from quantum_trader.market.download import download

MARKET_SUBDIR = "market"
TIMEFRAMES = tuple(t for t in TIMEFRAME_MS if t != "8h")


def market_dir(settings: Settings) -> Path:
    """Where download-data writes: `data_dir/market`."""
    return settings.data_dir / MARKET_SUBDIR


def parse_request(symbols: str, timeframe: str, days: float) -> tuple[str, ...]:
    """The symbols as a tuple; ConfigurationError naming each bad option."""
    problems = []
    if timeframe not in TIMEFRAMES:
        problems.append(f"--timeframe: expected one of {', '.join(TIMEFRAMES)}, got {timeframe!r}")
    if days <= 0:
        problems.append(f"--days: must be positive, got {days}")
    try:
        parsed = MarketSettings(symbols=symbols).symbols
    except ValidationError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ")
        problems.append(f"--symbols: {message}")
        parsed = ()
    if problems:
        raise ConfigurationError(problems)
    return parsed


async def download_market_data(
    settings: Settings,
    symbols: Sequence[str],
    timeframe: str,
    days: float,
    now: datetime,
    *,
    api_urls: Mapping[str, str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Download into `market_dir(settings)` from the public exchange; bars written per symbol.

    `api_urls` points the client elsewhere (the loopback tests). An unknown symbol is a
    MarketDataError naming it.
    """
    from quantum_trader.app_exchange import public_exchange  # ccxt: only for this command

    exchange = public_exchange(settings.exchange, api_urls)
    try:
        return await download(
            exchange, symbols, timeframe, days, market_dir(settings), now, progress
        )
    finally:
        await exchange.close()


@app.command("download-data")
def download_data(
    symbols: Annotated[
        str, typer.Option(help="Comma-separated ccxt symbols, e.g. BTC/USDT:USDT,ETH/USDT:USDT.")
    ],
    timeframe: Annotated[str, typer.Option(help="Candle timeframe: 1m, 5m, 15m, 1h or 1d.")] = "5m",
    days: Annotated[float, typer.Option(help="How many days back from now.")] = 30.0,
    config: ConfigOption = None,
) -> None:
    """Download recorded candles and funding rates into the data directory."""
    import uvloop

    wanted = parse_request(symbols, timeframe, days)
    settings = _settings(config)
    with _progress_bar(console) as bar:
        tasks = {s: bar.add_task(s, total=None) for s in wanted}

        def advance(symbol: str, done: int, expected: int) -> None:
            bar.update(tasks[symbol], completed=done, total=max(expected, done))

        written = uvloop.run(
            download_market_data(
                settings, wanted, timeframe, days, LiveClock().now(), progress=advance
            )
        )
    out = market_dir(settings)
    for symbol, count in written.items():
        console.print(f"{symbol}: {count} {timeframe} candles")
    console.print(
        f"Wrote {out}. To replay it: QT_MARKET__REPLAY_DIR={out} "
        f"(and QT_MARKET__TIMEFRAME={timeframe} if it is not the default)."
    )


def _progress_bar(target: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=target,
    )
