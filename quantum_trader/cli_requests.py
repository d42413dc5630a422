"""Operator requests: filed by the CLI, carried out by the running daemon on its next monitor
tick (`pause`, `resume`, `close-all`, `reset-halt`, `lift-blacklist`), so the exchange account
only ever has one writer.

A request is filed only while a daemon holds the data directory: with none running it is
refused (exit 1, naming the heartbeat's age) rather than left to surprise whoever starts the
daemon next; the daemon also drops any request filed before it started or older than
`operator.request_max_age_s`. An unknown symbol is a usage error (exit 2); `lift-blacklist`
of a symbol not blacklisted files nothing (exit 1). `pause` while paused and `resume` while
not paused file nothing and say so (exit 0).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from quantum_trader.app import database_path
from quantum_trader.cli import ConfigOption, _settings, app
from quantum_trader.cli import plain_console as console
from quantum_trader.cli_operator import _open_read_only
from quantum_trader.clock import LiveClock
from quantum_trader.config import Settings
from quantum_trader.errors import OperatorActionRequired, UsageError
from quantum_trader.gates.governor import GovernorState
from quantum_trader.ops.governor_keeper import STATE_KEY
from quantum_trader.ops.presence import daemon_presence, require_running_daemon
from quantum_trader.ops.requests import Request, RequestKind, file_request, pending_requests
from quantum_trader.portfolio.ledger import STATS_NAMESPACE

MAX_TEXT = 200  # an operator's name or reason, as status lines and notifications show it


def _plain(option: str, value: str, *, required: bool) -> str:
    """`value` as shown later in status, pages and notifications: one line of printable
    text (no control characters: a newline or a terminal escape would travel with it);
    UsageError naming `option` otherwise."""
    if required and not value.strip():
        raise UsageError(f"{option}: empty; say who asks")
    if not value.isprintable() or len(value) > MAX_TEXT:
        raise UsageError(
            f"{option}: one line of printable text of at most {MAX_TEXT} characters, without "
            "control characters or escape sequences"
        )
    return value.strip()


def _operator(value: str) -> str:
    return _plain("--operator", value, required=True)


def _reason(value: str) -> str:
    return _plain("--reason", value, required=False)


OperatorOption = Annotated[
    str, typer.Option("--operator", help="Who asks (logged).", callback=_operator)
]
ReasonOption = Annotated[
    str, typer.Option(help="Why (shown in status and notifications).", callback=_reason)
]


def _request(settings: Settings, kind: str, operator: str, what: str, detail: str = "") -> None:
    """File `kind` for the running daemon and say which daemon will carry it out."""
    now = LiveClock().now()
    presence = require_running_daemon(settings.data_dir, now, what)
    asyncio.run(file_request(database_path(settings), kind, now, operator, detail))
    # The daemon marks itself stopping before it carries out what is pending a last time:
    # unmarked now, it will see this request; marked, it may have looked already.
    after = daemon_presence(settings.data_dir, LiveClock().now())
    if after.stopping or not after.running:
        raise OperatorActionRequired(
            f"{what} was filed, but {after.describe()} now: it carries out the requests "
            "pending as it stops, perhaps before this one was filed; quantum-trader status "
            "shows it still pending if it was not carried out (ask again once a daemon runs)"
        )
    console.print(
        f"{what} requested: {presence.describe()}; it acts on its next monitor tick (or as "
        "it stops, if it is stopped first)."
    )


@app.command("close-all")
def close_all(config: ConfigOption = None, operator: OperatorOption = "operator") -> None:
    """Ask the running daemon to flatten every position, cancel its orders and pause new
    entries until `resume`."""
    _request(_settings(config), RequestKind.CLOSE_ALL, operator, "close-all")


@app.command()
def pause(
    config: ConfigOption = None,
    operator: OperatorOption = "operator",
    reason: ReasonOption = "",
) -> None:
    """Ask the running daemon to take no new entries until `resume`; open positions stay
    managed (stops, take-profits, trailing, protective orders). Survives a restart."""
    settings = _settings(config)
    require_running_daemon(settings.data_dir, LiveClock().now(), "pause")
    state, pending = asyncio.run(_entries_state(settings))
    held = state.pause
    if held is not None and RequestKind.RESUME not in pending:
        console.print(f"entries are already paused since {held.since.isoformat()} "
                      f"({held.detail}): nothing requested")  # fmt: skip
        return
    detail = f"paused by {operator}" + (f": {reason}" if reason else "")
    _request(settings, RequestKind.PAUSE, operator, "pause", detail)


@app.command()
def resume(config: ConfigOption = None, operator: OperatorOption = "operator") -> None:
    """Ask the running daemon to take new entries again after `pause` or `close-all` (other
    governor breakers stay in force)."""
    settings = _settings(config)
    require_running_daemon(settings.data_dir, LiveClock().now(), "resume")
    state, pending = asyncio.run(_entries_state(settings))
    pausing = {RequestKind.PAUSE, RequestKind.CLOSE_ALL} & set(pending)
    if state.pause is None and not pausing:
        console.print(
            f"entries are not paused (trading state {state.trading_state}): nothing requested"
        )
        return
    _request(settings, RequestKind.RESUME, operator, "resume")


async def _entries_state(settings: Settings) -> tuple[GovernorState, set[str]]:
    """The saved governor state and the kinds of the requests still pending."""
    repository = await _open_read_only(settings)
    try:
        saved = (await repository.load_state(STATE_KEY[0])).get(STATE_KEY[1])
        pending = {r.key for r in await pending_requests(repository) if isinstance(r, Request)}
    finally:
        await repository.close()
    return (GovernorState.from_dict(saved) if saved else GovernorState()), pending


SYMBOL_SHOWN = 64  # characters of an unknown symbol its refusal repeats


@app.command("lift-blacklist")
def lift_blacklist(
    symbol: Annotated[str, typer.Argument(help="The blacklisted symbol, e.g. INJ/USDT:USDT.")],
    config: ConfigOption = None,
    operator: OperatorOption = "operator",
) -> None:
    """Ask the running daemon to let a blacklisted symbol (20 losses in a row) trade again."""
    settings = _settings(config)
    stats = asyncio.run(_symbol_stats(settings))
    if symbol not in settings.market.symbols and symbol not in stats:
        shown = symbol if len(symbol) <= SYMBOL_SHOWN else f"{symbol[:SYMBOL_SHOWN]}…"
        raise UsageError(
            f"lift-blacklist: {shown!r} is neither a configured symbol (market.symbols: "
            f"{', '.join(settings.market.symbols)}) nor one the daemon has traded"
        )
    what = f"lift-blacklist {symbol}"
    require_running_daemon(settings.data_dir, LiveClock().now(), what)
    held = stats.get(symbol)
    if not (isinstance(held, dict) and held.get("blacklisted") is True):
        # The daemon checks again when it carries the request out: the state may change.
        raise OperatorActionRequired(f"{symbol} is not blacklisted (nothing to lift)")
    _request(settings, f"{RequestKind.LIFT_BLACKLIST}{symbol}", operator, what)


async def _symbol_stats(settings: Settings) -> dict[str, Any]:
    """The saved statistics of each symbol with a trading record (only those can be
    blacklisted; with a volume universe they need not be in market.symbols)."""
    if not database_path(settings).is_file():
        return {}
    repository = await _open_read_only(settings)
    try:
        return await repository.load_state(STATS_NAMESPACE)
    finally:
        await repository.close()


@app.command("reset-halt")
def reset_halt(config: ConfigOption = None, operator: OperatorOption = "operator") -> None:
    """Ask the running daemon to clear an operator-level governor halt (an operator pause
    stays: `resume` ends it)."""
    _request(_settings(config), RequestKind.RESET_HALT, operator, "reset-halt")
