"""Operator commands that read: `status`, `positions` and `trades` read the database while
the daemon runs (or a backtest's with `--db`); with `--json` each prints one JSON document on
stdout (stable keys, Decimals as strings; ops/operator_view.py builds them). The requests the
daemon carries out (`pause`, `resume`, `close-all`, ...) are in cli_requests.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from quantum_trader.app import database_path
from quantum_trader.cli import ConfigOption, _settings, app
from quantum_trader.cli import plain_console as console
from quantum_trader.clock import LiveClock
from quantum_trader.config import Settings
from quantum_trader.domain import ClosedTrade, Position
from quantum_trader.errors import OperatorActionRequired, UsageError
from quantum_trader.gates.governor import GovernorState
from quantum_trader.ops.operator_view import (
    MARKS_FILE,
    StatusData,
    positions_document,
    read_marks,
    read_status,
    status_document,
    trades_document,
)
from quantum_trader.ops.presence import daemon_presence
from quantum_trader.ops.snapshot import pause_line
from quantum_trader.storage.sqlite import SqliteRepository

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Read this database instead (e.g. a backtest's backtest.db)."),
]


async def _open_read_only(settings: Settings, db: Path | None = None) -> SqliteRepository:
    path = db or database_path(settings)
    if path.is_dir():
        raise OperatorActionRequired(
            f"{path} is a directory, not a database file: "
            + ("check --db" if db else "move it aside; the daemon creates its database there")
        )
    if not path.is_file() and (path.exists() or path.is_symlink()):  # a FIFO, a link loop
        raise OperatorActionRequired(
            f"{path} is not a regular file, so not a database: "
            + ("check --db" if db else "move it aside; the daemon creates its database there")
        )
    if not path.is_file():
        raise OperatorActionRequired(
            f"no database at {path}: "
            + ("check --db" if db else "has the daemon run here? (--db reads another one)")
        )
    return await SqliteRepository.open(path, read_only=True)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (Decimals as strings).")
]


def print_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _maintenance_rate(settings: Settings) -> Decimal:
    return Decimal(repr(settings.server.maintenance_margin_rate))


@app.command()
def positions(
    config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Open positions: entry, mark, unrealized PnL, leverage, margin, liquidation price
    (an isolated-margin estimate), managed stop and take-profit, exchange-side stop order
    (of the daemon, or of a backtest's database with --db: without marks)."""
    settings = _settings(config)

    async def read() -> list[Position]:
        repository = await _open_read_only(settings, db)
        try:
            return await repository.open_positions()
        finally:
            await repository.close()

    marks = read_marks(settings.data_dir / MARKS_FILE) if db is None else None
    document = positions_document(asyncio.run(read()), marks, _maintenance_rate(settings))
    if as_json:
        print_json(document)
    else:
        _print_wide(_positions_table(document))


def _print_wide(table: Table) -> None:
    """Print without truncating cells to the terminal's width (a narrow one wraps the lines):
    a price cut to "15…" would mislead."""
    Console(width=max(console.width, WIDE_COLUMNS), markup=False, highlight=False).print(table)


def _positions_table(document: dict[str, Any]) -> Table:
    rows, marks = document["positions"], document["marks"]
    seen = f"; marks as of {marks['as_of']}" if marks else "; no marks yet (daemon heartbeat)"
    table = Table(title=f"Open positions ({len(rows)}{seen})")
    for column, _ in POSITION_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(key), key) for _, key in POSITION_COLUMNS))
    return table


WIDE_COLUMNS = 180
POSITION_COLUMNS = (
    ("symbol", "symbol"),
    ("side", "side"),
    ("qty", "quantity"),
    ("entry", "entry_price"),
    ("mark", "mark_price"),
    ("uPnL", "unrealized_pnl_usdt"),
    ("lev", "leverage"),
    ("margin", "margin_usdt"),
    ("liq. (est.)", "liquidation_price"),
    ("stop", "stop_price"),
    ("take profit", "take_profit_price"),
    ("opened", "opened_at"),
    ("stop order", "stop_order_id"),
)


def _cell(value: object, key: str) -> str:
    if key == "stop_order_id":
        return str(value or "MISSING")
    if value is None:
        return "—"
    if key in ("unrealized_pnl_usdt", "margin_usdt"):
        return f"{Decimal(str(value)):.2f}"
    if key == "opened_at":
        return str(value)[:16]
    return str(value)


MAX_TRADES = 1_000_000  # far more than years of trading; SQLite's LIMIT overflows past 2**63


def _trade_limit(value: int) -> int:
    if not 1 <= value <= MAX_TRADES:
        raise UsageError(f"--limit: a number of trades from 1 to {MAX_TRADES:,}; got {value}")
    return value


@app.command()
def trades(
    config: ConfigOption = None,
    limit: Annotated[
        int, typer.Option(help="How many of the newest trades.", callback=_trade_limit)
    ] = 20,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest closed trades (of the daemon, or of a backtest's database with --db)."""
    settings = _settings(config)
    path = db or database_path(settings)

    async def read() -> list[ClosedTrade]:
        repository = await _open_read_only(settings, db)
        try:
            return await repository.latest_closed_trades(limit)
        finally:
            await repository.close()

    rows = asyncio.run(read())
    if as_json:
        print_json(trades_document(rows, path))
        return
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
    _print_wide(table)  # was cut to 80 columns when piped: "2025-09-…", "BNB/USDT…", "EMERGEN…"


@app.command()
def status(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Equity, trading state (an operator pause included), governor, symbols the keeper has
    blocked, pending operator requests, positions with their futures basics, decisions."""
    from quantum_trader.daemon import ANALYTICS_FILE  # the daemon's web stack: status only

    settings = _settings(config)

    async def read() -> StatusData:
        repository = await _open_read_only(settings, db)
        try:
            return await read_status(repository)
        finally:
            await repository.close()

    data = asyncio.run(read())
    presence = None if db else daemon_presence(settings.data_dir, LiveClock().now())
    marks = None if db else read_marks(settings.data_dir / MARKS_FILE)
    shown = positions_document(data.positions, marks, _maintenance_rate(settings))
    analytics = None if db else _analytics(settings.data_dir / ANALYTICS_FILE)
    document = status_document(data, presence, db or database_path(settings), shown, analytics)
    if as_json:
        print_json(document)
        return
    console.print(_summary_table(document, data))
    if db is None:  # the running daemon's analytics; a backtest keeps its own report
        console.print(_analytics_table(analytics))
    _print_wide(_positions_table(shown))
    decisions = Table(title="Decisions by gate and reason")
    for column in ("gate", "reason", "count"):
        decisions.add_column(column)
    for row in document["decisions"]:
        decisions.add_row(row["gate"], row["reason"], str(row["count"]))
    console.print(decisions)


def _summary_table(document: dict[str, Any], data: StatusData) -> Table:
    summary = Table(title="Quantum Trader status", show_header=False)
    daemon = document["daemon"]
    summary.add_row("daemon", daemon["description"] if daemon else "— (a database read with --db)")
    last = data.equity
    summary.add_row(
        "equity", f"{last.equity_usdt:.2f} USDT at {last.time.isoformat()}" if last else "—"
    )
    summary.add_row("open positions", str(len(data.positions)))
    summary.add_row("closed trades", str(data.closed_trades))
    summary.add_row("simulated time", data.simulated_time or "—")
    summary.add_row("entries", _entries_line(data.governor))
    summary.add_row("governor", _governor_line(data.governor.to_dict()))
    summary.add_row("governor events", _last_event_line(data.governor_events))
    blocked = "; ".join(f"{k}: {v}" for k, v in data.blocked.items())
    summary.add_row("blocked symbols", blocked or "none")
    pending = "; ".join(
        f"{r['request']} (by {r['by']} at {r['requested_at']})"
        + (f": {r['not_carried_out']}" if "not_carried_out" in r else "")
        for r in document["operator_requests"]
    )
    summary.add_row("operator requests", pending or "none")
    return summary


def _entries_line(governor: GovernorState) -> str:
    held = governor.pause
    if held is not None:
        return pause_line(held)
    if governor.allows_new_entries:
        return "open"
    return f"closed by the governor ({governor.decision})"


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


def _analytics(path: Path) -> dict[str, Any] | None:
    """The daemon's latest portfolio analytics (written every heartbeat), if any."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _analytics_value(value: object) -> str:
    if value is None:  # a fraction of equity with no equity (heat at equity ≤ 0)
        return "— (equity ≤ 0)"
    return f"{value:,.4f}" if isinstance(value, float) else str(value)


def _analytics_table(data: dict[str, Any] | None) -> Table | str:
    if data is None:
        return "portfolio analytics: none yet (the running daemon writes them every minute)"
    table = Table(title="Portfolio analytics (SPEC §7)", show_header=False)
    for key, label in ANALYTICS_ROWS:
        value = data.get(key)
        table.add_row(label, _analytics_value(value))
    for name in ("exposure_by_symbol_usdt", "exposure_by_sector_usdt"):
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(data.get(name, {}).items()))
        table.add_row(name.removesuffix("_usdt").replace("_", " "), shown or "—")
    return table
