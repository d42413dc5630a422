"""`quantum-trader download-data` (SPEC §10.1): recorded candles and funding rates from the
public Binance USD-M API into `data_dir/market`, the candle-store layout the replay reads, and
the exchange's market rules beside them (market.rules). `import-data` (cli_import) brings
candles a user already has into the same directory.

No API keys are needed. Registered on `quantum_trader.cli.app` when this module is imported.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quantum_trader.cli import ConfigOption, _settings, app, console, parse_symbols
from quantum_trader.clock import LiveClock
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError, MarketDataError
from quantum_trader.market.candle_store import TIMEFRAME_MS
from quantum_trader.market.download import download
from quantum_trader.market.rules import parse_rules, rules_file_name, write_rules
from quantum_trader.market.source import market_dir
from quantum_trader.ops.data_dir import prepare_data_dir
from quantum_trader.record import record, replace

if TYPE_CHECKING:  # the importer loads pyarrow's CSV and Parquet readers: import-data only
    from quantum_trader.market.importer import Imported

__all__ = ["download_market_data", "market_dir", "parse_request"]
TIMEFRAMES = tuple(t for t in TIMEFRAME_MS if t != "8h")


def parse_request(symbols: str, timeframe: str, days: float) -> tuple[str, ...]:
    """The symbols as a tuple; ConfigurationError naming each bad option."""
    problems = []
    if timeframe not in TIMEFRAMES:
        problems.append(f"--timeframe: expected one of {', '.join(TIMEFRAMES)}, got {timeframe!r}")
    if not math.isfinite(days) or days <= 0:
        problems.append(f"--days: must be a positive number of days, got {days}")
    try:
        parsed = parse_symbols(symbols)
    except ConfigurationError as error:
        problems += error.problems
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

    The exchange's market rules (exchangeInfo) are saved first, dated `now`, beside the
    candles. `api_urls` points the client elsewhere (the loopback tests). An unknown symbol is
    a MarketDataError naming it.
    """
    from quantum_trader.app_exchange import public_exchange  # ccxt: only for this command

    exchange = public_exchange(settings.exchange, api_urls)
    try:
        info = await exchange.fetch_exchange_info()
        write_rules(market_dir(settings), info, now)
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
    prepare_data_dir(market_dir(settings), "the downloaded market data are written there")
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
        f"Wrote {out} (candles, funding and the exchange's market rules). run, train and "
        f"backtest read it by default"
        + ("." if timeframe == "5m" else f" with QT_MARKET__TIMEFRAME={timeframe}.")
    )


def _progress_bar(target: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=target,
    )


@app.command("import-data")
def import_data(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or directories in freqtrade's layout (feather, json, csv …)."),
    ] = None,
    exchange_info: Annotated[
        Path | None,
        typer.Option(help="A saved answer of Binance's /fapi/v1/exchangeInfo: the market rules."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Import recorded candles (and market rules) into the data directory, validated."""
    from quantum_trader.market.importer import collect, import_file, rules_beside

    settings = _settings(config)
    if not paths and exchange_info is None:
        raise ConfigurationError(["import-data: name the files or directories to import"])
    out = market_dir(settings)
    prepare_data_dir(out, "the imported market data are written there")
    found = collect(paths) if paths else []
    exchange_info = exchange_info or rules_beside(paths or [])
    checked = read_exchange_info(exchange_info) if exchange_info is not None else None
    # Every file is validated into a staging folder first: one refused, nothing is imported.
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
    try:
        staged = [import_file(path, parsed, staging) for path, parsed in found]
        targets = [out / item.target.name for item in staged if item.target is not None]
        if checked is not None:
            targets.append(out / rules_file_name(checked.saved_at))
        _refuse_non_files(targets)
        if checked is not None:
            saved = write_rules(out, checked.exchange_info, checked.saved_at, checked.brackets)
            console.print(f"market rules: {saved.name} from {exchange_info}")
        imported = [_moved_into(item, out) for item in staged]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for item in imported:
        console.print(describe_import(item))
    _report_missing_rules(settings, [i.parsed.symbol for i in imported if i.target is not None])
    console.print(f"Imported {sum(i.target is not None for i in imported)} file(s) into {out}.")


def _refuse_non_files(targets: list[Path]) -> None:
    """A directory (or anything but a file) where an imported file goes: its rename would
    fail there, after the rules and the files renamed before it."""
    taken = [path for path in targets if path.exists() and not path.is_file()]
    if taken:
        raise ConfigurationError(
            [
                f"import-data: {path} is not a file (a directory?): move it aside, then import "
                "again; nothing was imported"
                for path in taken
            ]
        )


def _moved_into(item: Imported, out: Path) -> Imported:
    """A staged file renamed into `out` (one rename each: no half-written file there)."""
    if item.target is None:
        return item
    target = out / item.target.name
    os.replace(item.target, target)
    return replace(item, target=target)


@record
class ExchangeInfoCopy:
    """A user's copy of Binance's market rules, checked, and the date it is saved under."""

    exchange_info: dict[str, Any]
    saved_at: datetime
    brackets: list[Any] | None  # leverageBracket rows a rules file saved by this program holds


FIX_EXCHANGE_INFO = (
    "save Binance's answer (https://fapi.binance.com/fapi/v1/exchangeInfo) as it came, or "
    "correct the entry named, then import it again"
)


def read_exchange_info(path: Path) -> ExchangeInfoCopy:
    """A user's copy of Binance's exchangeInfo answer (or a rules file this program saved, its
    leverage brackets kept), checked as the rules file it becomes is checked when read. Saved
    under its `serverTime`, else the `fetched_at` of a rules file saved by this program, else
    the file's modification time. ConfigurationError (exit 2) naming the file and the fix."""
    import json
    from datetime import UTC

    from quantum_trader.market.validation import EARLIEST_MS, LATEST_MS

    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigurationError(
            [f"--exchange-info: {path} is not readable JSON ({error})"]
        ) from None
    saved_at, brackets = None, None
    if isinstance(answer, dict) and isinstance(answer.get("exchangeInfo"), dict):
        saved_at = _fetched_at(answer.get("fetched_at"))  # a rules file saved by this program
        brackets = answer.get("leverageBrackets")
        answer = answer["exchangeInfo"]
    if not isinstance(answer, dict):
        raise ConfigurationError([f"--exchange-info: {path} is not an exchangeInfo answer"])
    stamp = answer.get("serverTime")
    if isinstance(stamp, int) and not EARLIEST_MS <= stamp < LATEST_MS:
        raise ConfigurationError(
            [
                f"--exchange-info: {path}: serverTime {stamp} is not an instant between 2010 "
                "and 2100 in epoch milliseconds; save Binance's answer as it came"
            ]
        )
    try:
        parse_rules({"exchangeInfo": answer, "leverageBrackets": brackets}, path)
    except MarketDataError as error:  # it names the file
        raise ConfigurationError([f"--exchange-info: {error}; {FIX_EXCHANGE_INFO}"]) from None
    if isinstance(stamp, int):
        saved_at = datetime.fromtimestamp(stamp / 1000, tz=UTC)
    moment = saved_at or datetime.fromtimestamp(os.path.getmtime(path), tz=UTC)
    return ExchangeInfoCopy(answer, moment, brackets if isinstance(brackets, list) else None)


def _fetched_at(value: object) -> datetime | None:
    """The `fetched_at` of a rules file saved by this program, when it is a time."""
    from datetime import UTC

    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def describe_import(item: Imported) -> str:
    """One summary line per imported file."""
    from quantum_trader.clock import utc_from_ms

    name = f"{item.parsed.symbol} {item.parsed.timeframe} {item.parsed.kind}"
    if item.target is None:
        return f"{item.source.name}: {item.note}"
    span = (
        f"{utc_from_ms(item.first_ms):%Y-%m-%d %H:%M} → {utc_from_ms(item.last_ms):%Y-%m-%d %H:%M}"
    )
    extras = [f"{item.removed_bars} bar(s) removed as spikes"] if item.removed_bars else []
    extras += [f"{item.gaps} gap(s): untradeable across them"] if item.gaps else []
    extras += [item.note] if item.note else []
    tail = f" ({'; '.join(extras)})" if extras else ""
    return f"{name}: {item.rows} rows {span} from {item.source.name}{tail}"


def _report_missing_rules(settings: Settings, symbols: Sequence[str]) -> None:
    from quantum_trader.market.rules import rules_for
    from quantum_trader.market.source import MarketData

    data = MarketData(market_dir(settings), "data_dir/market")
    for symbol in dict.fromkeys(symbols):
        try:
            rules_for([symbol], data.rules_files(), data.directory)
        except ConfigurationError as error:
            console.print(f"[yellow]warning[/yellow]: {error.problems[0]}")
