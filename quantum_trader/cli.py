"""The command line (SPEC §10.1). Exit codes: 0 clean stop, 2 bad configuration or usage (one
line per problem, naming the setting), 1 anything else."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.exceptions import TyperException

from quantum_trader.config import Settings
from quantum_trader.config_load import load_settings
from quantum_trader.errors import (
    ConfigurationError,
    QuantumTraderError,
    UsageError,
    lasting_failure,
)
from quantum_trader.log import configure_logging

app = typer.Typer(
    name="quantum-trader",
    help="Risk-managed, ML-driven trading daemon for Binance USD-M perpetual futures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
# No `:name:` emoji codes in our output (and rich's table of them, ≈ 3–7 ms to import, not loaded).
console = Console(emoji=False)
# What an operator typed (a reason, a name) or the daemon stored is printed as it is: never
# read as Rich markup (`[/bold]` would raise, `[link=…]` would become a terminal escape), and a
# line is not wrapped at 80 columns when the output is not a terminal.
plain_console = Console(markup=False, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file (default: config/default.toml if present)."),
]


def _settings(config: Path | None) -> Settings:
    settings = load_settings(config)
    configure_logging(settings.log.format, settings.log.level)
    return settings


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    import uvloop

    from quantum_trader.daemon import run_daemon

    settings = _settings(config)
    raise typer.Exit(uvloop.run(run_daemon(settings)))


def log_market_data(settings: Settings, symbols: tuple[str, ...] | None = None) -> None:
    """The first log line of a command that reads recorded data: which data, which range."""
    from quantum_trader.log import get_logger
    from quantum_trader.market.source import describe, resolve_market_data

    data = resolve_market_data(settings)
    chosen = symbols or settings.market.symbols
    if symbols is None and settings.market.universe.rule != "fixed":  # the rule picks among these
        chosen = tuple(data.store().available_symbols(settings.market.timeframe))
    get_logger("market").info(
        "market_data_selected", **describe(data, chosen, settings.market.timeframe)
    )


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective settings as JSON, secrets redacted."""
    settings = load_settings(config)
    console.print_json(json.dumps(settings.redacted()))


def parse_symbols(value: str) -> tuple[str, ...]:
    """A `--symbols` option's list, checked as `market.symbols` is (ccxt perpetual symbols,
    at least one, none twice); ConfigurationError naming the option otherwise."""
    from pydantic import ValidationError

    from quantum_trader.config import MarketSettings

    try:
        return MarketSettings(symbols=value).symbols
    except ValidationError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigurationError([f"--symbols: {message} (given {value!r})"]) from None


def _parse_day(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigurationError([f"{option}: expected YYYY-MM-DD, got {value!r}"]) from None


def main() -> None:
    """Entry point of `quantum-trader` and `python -m quantum_trader`."""
    # Importing these registers their commands on `app`.
    from quantum_trader import (
        cli_backtest,
        cli_data,
        cli_ml,
        cli_operator,
        cli_optimize,
        cli_requests,
    )

    del cli_backtest, cli_data, cli_ml, cli_operator, cli_optimize, cli_requests
    try:
        code = app(standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (QuantumTraderError, TyperException, typer.Abort, OSError) as error:
        sys.exit(_reported(error))
    sys.exit(code if isinstance(code, int) else 0)


def _reported(error: Exception) -> int:
    """Say what went wrong in one line per problem (usage errors: typer's text); the exit
    code. An OSError other than a write failure that lasts is not ours to explain: raised."""
    if isinstance(error, ConfigurationError):
        for problem in error.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        return 2
    if isinstance(error, UsageError):
        print(f"error: {error}", file=sys.stderr)
        return 2
    if isinstance(error, TyperException):  # usage errors: exit code 2
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {error.format_message()}", file=sys.stderr)
        return int(error.exit_code)
    if isinstance(error, typer.Abort):
        return 1
    failed = error if isinstance(error, QuantumTraderError) else lasting_failure(error)
    if failed is None:  # the disk full under any command is one line, not a traceback
        raise error
    print(f"error: {failed}", file=sys.stderr)
    return 1
