"""Operator commands: read the database while the daemon runs (`status`, `positions`,
`trades`), and file requests the running daemon carries out on its next monitor tick
(`close-all`, `reset-halt`, `lift-blacklist`), so the exchange account only ever has one writer.

A request is filed only while a daemon holds the data directory: with none running it is
refused (exit 1) rather than left to surprise whoever starts the daemon next. An unknown
symbol is a usage error (exit 2).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from quantum_trader.app import database_path
from quantum_trader.cli import ConfigOption, _settings, app, console
from quantum_trader.clock import LiveClock
from quantum_trader.config import Settings
from quantum_trader.daemon import ANALYTICS_FILE
from quantum_trader.errors import OperatorActionRequired, UsageError
from quantum_trader.ops.governor_keeper import EVENTS_NAMESPACE
from quantum_trader.ops.presence import daemon_presence, require_running_daemon
from quantum_trader.ops.requests import file_request
from quantum_trader.portfolio.ledger import STATS_NAMESPACE
from quantum_trader.storage.sqlite import SqliteRepository

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Read this database instead (e.g. a backtest's backtest.db)."),
]


async def _open_read_only(settings: Settings, db: Path | None = None) -> SqliteRepository:
    path = db or database_path(settings)
    if not path.is_file():
        raise OperatorActionRequired(
            f"no database at {path}: "
            + ("check --db" if db else "has the daemon run here? (--db reads another one)")
        )
    return await SqliteRepository.open(path, read_only=True)


@app.command()
def positions(config: ConfigOption = None) -> None:
    """Open positions with their managed and exchange-side stops."""

    settings = _settings(config)

    async def show() -> None:
        repository = await _open_read_only(settings)
        try:
            rows = await repository.open_positions()
        finally:
            await repository.close()
        table = Table(title=f"Open positions ({len(rows)})")
        for column in (
            "symbol",
            "side",
            "qty",
            "entry",
            "stop",
            "take profit",
            "opened",
            "stop order",
        ):
            table.add_column(column)
        for p in rows:
            table.add_row(
                p.symbol,
                p.side,
                str(p.quantity),
                str(p.entry_price),
                str(p.stop_price),
                str(p.take_profit_price),
                p.opened_at.isoformat(timespec="minutes"),
                p.stop_order_id or "MISSING",
            )
        console.print(table)

    asyncio.run(show())


@app.command()
def trades(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest trades.")] = 20,
    db: DbOption = None,
) -> None:
    """The newest closed trades."""

    settings = _settings(config)

    async def show() -> None:
        repository = await _open_read_only(settings, db)
        try:
            rows = (await repository.closed_trades())[-limit:]
        finally:
            await repository.close()
        table = Table(title=f"Closed trades (newest {len(rows)})")
        for column in ("closed", "symbol", "side", "entry", "exit", "reason", "PnL", "R"):
            table.add_column(column)
        for t in rows:
            table.add_row(
                t.closed_at.isoformat(timespec="minutes"),
                t.symbol,
                t.side,
                str(t.entry_price),
                str(t.exit_price),
                t.exit_reason,
                f"{t.pnl_usdt:.2f}",
                f"{t.r_multiple:.2f}",
            )
        console.print(table)

    asyncio.run(show())


@app.command()
def status(config: ConfigOption = None, db: DbOption = None) -> None:
    """Equity, positions, decisions by gate and reason, governor and pending operator requests."""

    settings = _settings(config)

    async def show() -> None:
        repository = await _open_read_only(settings, db)
        try:
            equity = await repository.equity_history()
            open_positions = await repository.open_positions()
            counts = await repository.decision_counts()
            trades_done = await repository.closed_trades()
            states = {
                ns: await repository.load_state(ns)
                for ns in ("governor", "operator", "replay", EVENTS_NAMESPACE)
            }
        finally:
            await repository.close()
        summary = Table(title="Quantum Trader status", show_header=False)
        summary.add_row("daemon", daemon_presence(settings.data_dir, LiveClock().now()).describe())
        last = equity[-1] if equity else None
        summary.add_row(
            "equity", f"{last.equity_usdt:.2f} USDT at {last.time.isoformat()}" if last else "—"
        )
        summary.add_row("open positions", str(len(open_positions)))
        summary.add_row("closed trades", str(len(trades_done)))
        summary.add_row("simulated time", str(states["replay"].get("clock", {}).get("now", "—")))
        summary.add_row("governor", _governor_line(states["governor"].get("state")))
        events = sorted(states[EVENTS_NAMESPACE].values(), key=lambda e: str(e["time"]))
        summary.add_row("governor events", _last_event_line(events))
        summary.add_row("operator requests", str(states["operator"] or "none"))
        console.print(summary)
        if db is None:  # the running daemon's analytics; a backtest keeps its own report
            console.print(_analytics_table(settings.data_dir / ANALYTICS_FILE))
        decisions = Table(title="Decisions by gate and reason")
        for column in ("gate", "reason", "count"):
            decisions.add_column(column)
        for (gate, reason), count in sorted(counts.items()):
            decisions.add_row(gate, reason, str(count))
        console.print(decisions)

    asyncio.run(show())


def _governor_line(state: dict[str, object] | None) -> str:
    if not state or not state.get("trips"):
        return "ACTIVE (no breaker in force)"
    until = state.get("until") or "an operator reset or its condition clearing"
    return f"{state['trading_state']}: {state['decision']} until {until}"


def _last_event_line(events: list[dict[str, object]]) -> str:
    if not events:
        return "none"
    last = events[-1]
    return (
        f"{len(events)}; last {last['time']}: {last['kind']} {last.get('breaker') or ''} "
        f"{last.get('detail') or ''}"
    ).strip()


ANALYTICS_ROWS = (
    ("equity_usdt", "equity (USDT)"),
    ("used_margin_usdt", "used margin (USDT)"),
    ("free_margin_usdt", "free margin (USDT)"),
    ("gross_exposure_usdt", "gross exposure (USDT)"),
    ("net_exposure_usdt", "net exposure (USDT)"),
    ("heat", "heat (risk at stops / equity)"),
    ("daily_drawdown", "daily drawdown"),
    ("drawdown_from_peak", "drawdown from peak"),
    ("var_historical_usdt", "VaR historical (USDT)"),
    ("var_parametric_usdt", "VaR parametric (USDT)"),
    ("expected_shortfall_usdt", "expected shortfall (USDT)"),
    ("effective_positions", "effective positions (1/Σw²)"),
)


def _analytics_table(path: Path) -> Table | str:
    """The daemon's latest portfolio analytics (written every heartbeat)."""
    if not path.is_file():
        return "portfolio analytics: none yet (the running daemon writes them every minute)"
    data = json.loads(path.read_text())
    table = Table(title="Portfolio analytics (SPEC §7)", show_header=False)
    for key, label in ANALYTICS_ROWS:
        value = data.get(key)
        table.add_row(label, f"{value:,.4f}" if isinstance(value, float) else str(value))
    for name in ("exposure_by_symbol_usdt", "exposure_by_sector_usdt"):
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(data.get(name, {}).items()))
        table.add_row(name.removesuffix("_usdt").replace("_", " "), shown or "—")
    return table


def _request(settings: Settings, kind: str, operator: str, what: str) -> None:
    """File `kind` for the running daemon and say which daemon will carry it out."""
    now = LiveClock().now()
    presence = require_running_daemon(settings.data_dir, now, what)
    asyncio.run(file_request(database_path(settings), kind, now, operator))
    console.print(f"{what} requested: {presence.describe()}; it acts on its next monitor tick.")


@app.command("close-all")
def close_all(config: ConfigOption = None) -> None:
    """Ask the running daemon to flatten every position and cancel its orders."""
    _request(_settings(config), "close_all", "operator", "close-all")


@app.command("lift-blacklist")
def lift_blacklist(
    symbol: Annotated[str, typer.Argument(help="The blacklisted symbol, e.g. INJ/USDT:USDT.")],
    config: ConfigOption = None,
    operator: Annotated[str, typer.Option(help="Who lifts it (logged).")] = "operator",
) -> None:
    """Ask the running daemon to let a blacklisted symbol (20 losses in a row) trade again."""
    settings = _settings(config)
    traded = asyncio.run(_traded_symbols(settings))
    if symbol not in settings.market.symbols and symbol not in traded:
        raise UsageError(
            f"lift-blacklist: {symbol!r} is neither a configured symbol (market.symbols: "
            f"{', '.join(settings.market.symbols)}) nor one the daemon has traded"
        )
    _request(settings, f"lift_blacklist:{symbol}", operator, f"lift-blacklist {symbol}")


async def _traded_symbols(settings: Settings) -> set[str]:
    """Symbols with a trading record (only those can be blacklisted; with a volume universe
    they need not be in market.symbols)."""
    if not database_path(settings).is_file():
        return set()
    repository = await _open_read_only(settings)
    try:
        return set(await repository.load_state(STATS_NAMESPACE))
    finally:
        await repository.close()


@app.command("reset-halt")
def reset_halt(
    config: ConfigOption = None,
    operator: Annotated[str, typer.Option(help="Who resets the halt (logged).")] = "operator",
) -> None:
    """Ask the running daemon to clear an operator-level governor halt."""
    _request(_settings(config), "reset_halt", operator, "reset-halt")
