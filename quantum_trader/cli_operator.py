"""Operator commands: read the database while the daemon runs (`status`, `positions`,
`trades`), and file requests the running daemon carries out on its next monitor tick
(`close-all`, `reset-halt`), so the exchange account only ever has one writer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from quantum_trader.app import database_path
from quantum_trader.cli import ConfigOption, _settings, app, console
from quantum_trader.clock import LiveClock
from quantum_trader.errors import OperatorActionRequired
from quantum_trader.ops.requests import file_request
from quantum_trader.storage.sqlite import SqliteRepository


async def _open_read_only(config: Path | None) -> SqliteRepository:
    path = database_path(_settings(config))
    if not path.is_file():
        raise OperatorActionRequired(f"no database at {path}: has the daemon run here?")
    return await SqliteRepository.open(path, read_only=True)


@app.command()
def positions(config: ConfigOption = None) -> None:
    """Open positions with their managed and exchange-side stops."""

    async def show() -> None:
        repository = await _open_read_only(config)
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
) -> None:
    """The newest closed trades."""

    async def show() -> None:
        repository = await _open_read_only(config)
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
def status(config: ConfigOption = None) -> None:
    """Equity, positions, decisions by gate and reason, governor and pending operator requests."""

    async def show() -> None:
        repository = await _open_read_only(config)
        try:
            equity = await repository.equity_history()
            open_positions = await repository.open_positions()
            counts = await repository.decision_counts()
            trades_done = await repository.closed_trades()
            states = {
                ns: await repository.load_state(ns) for ns in ("governor", "operator", "replay")
            }
        finally:
            await repository.close()
        summary = Table(title="Quantum Trader status", show_header=False)
        last = equity[-1] if equity else None
        summary.add_row(
            "equity", f"{last.equity_usdt:.2f} USDT at {last.time.isoformat()}" if last else "—"
        )
        summary.add_row("open positions", str(len(open_positions)))
        summary.add_row("closed trades", str(len(trades_done)))
        summary.add_row("simulated time", str(states["replay"].get("clock", {}).get("now", "—")))
        summary.add_row("governor", str(states["governor"].get("state", "no state yet")))
        summary.add_row("operator requests", str(states["operator"] or "none"))
        console.print(summary)
        decisions = Table(title="Decisions by gate and reason")
        for column in ("gate", "reason", "count"):
            decisions.add_column(column)
        for (gate, reason), count in sorted(counts.items()):
            decisions.add_row(gate, reason, str(count))
        console.print(decisions)

    asyncio.run(show())


@app.command("close-all")
def close_all(config: ConfigOption = None) -> None:
    """Ask the running daemon to flatten every position and cancel its orders."""
    settings = _settings(config)
    asyncio.run(file_request(database_path(settings), "close_all", LiveClock().now()))
    console.print("close-all requested: the daemon carries it out on its next monitor tick.")


@app.command("reset-halt")
def reset_halt(
    config: ConfigOption = None,
    operator: Annotated[str, typer.Option(help="Who resets the halt (logged).")] = "operator",
) -> None:
    """Ask the running daemon to clear an operator-level governor halt."""
    settings = _settings(config)
    asyncio.run(file_request(database_path(settings), "reset_halt", LiveClock().now(), operator))
    console.print("reset-halt requested: the daemon clears the halt on its next monitor tick.")
