"""What the operator commands show (`positions`, `trades`, `status`), read from the database
and the files the daemon keeps beside it: one JSON-ready document per command, with stable
keys, Decimals as strings and times as ISO-8601. The text tables are drawn from the same data.

Futures basics per position: leverage and entry come from the ledger; margin is isolated
(notional at entry / leverage); the liquidation price is an estimate from entry, leverage and
`server.maintenance_margin_rate` (see `snapshot.liquidation_price`): the paper exchange does not
model liquidation, and neither it nor the keeper's account mirror reports the exchange's own
figure. Mark price and unrealized PnL come from `marks.json`, which the running daemon writes
every heartbeat; without it (no daemon yet, a backtest's database) they are null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any

from quantum_trader.domain import ClosedTrade, EquitySnapshot, Position
from quantum_trader.gates.governor import GovernorState
from quantum_trader.keeper.book import Book, Intent, is_unsettled
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.orders import INTENTS
from quantum_trader.keeper.unpriced import saved_closes
from quantum_trader.ops.governor_keeper import EVENTS_NAMESPACE
from quantum_trader.ops.governor_keeper import STATE_KEY as GOVERNOR_STATE
from quantum_trader.ops.health import HealthReport, HealthStatus
from quantum_trader.ops.presence import DaemonPresence
from quantum_trader.ops.requests import pending_requests
from quantum_trader.ops.snapshot import plain_fields, position_status, why_not_active
from quantum_trader.ports import Repository
from quantum_trader.record import record
from quantum_trader.storage.saved import read_back

MARKS_FILE = "marks.json"
LIQUIDATION_BASIS = (
    "estimate: isolated margin, Binance's formula without maintenance amount, from entry, "
    "leverage and server.maintenance_margin_rate={rate}"
)


@record
class Marks:
    """Mark prices the daemon last wrote: `as_of` on the trading clock (simulated in a
    replay), `written_at` on the wall clock."""

    as_of: datetime
    written_at: datetime
    prices: Mapping[str, Decimal]


def marks_document(as_of: datetime, written_at: datetime, prices: Mapping[str, Decimal]) -> str:
    """The marks file's text (MARKS_FILE: the daemon writes it into its held directory)."""
    document = {
        "as_of": as_of.isoformat(),
        "written_at": written_at.isoformat(),
        "prices": {symbol: str(price) for symbol, price in sorted(prices.items())},
    }
    return json.dumps(document, indent=2)


def read_marks(path: Path) -> Marks | None:
    """The marks in `path`; None when it is missing or unreadable (then no mark is shown)."""
    try:
        raw = json.loads(path.read_text())
        return Marks(
            datetime.fromisoformat(raw["as_of"]),
            datetime.fromisoformat(raw["written_at"]),
            {str(k): Decimal(str(v)) for k, v in raw["prices"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidOperation):
        return None


def positions_document(
    positions: Sequence[Position], marks: Marks | None, maintenance_rate: Decimal
) -> dict[str, Any]:
    """`positions --json`: each open position with mark, uPnL, leverage, margin, liquidation.
    A mark written before the position opened is not its mark (it may be an earlier
    position's on the symbol, hours old in a fast replay): null until the next heartbeat."""
    rows = []
    for position in sorted(positions, key=lambda p: p.symbol):
        mark = None
        if marks is not None and marks.as_of >= position.opened_at:
            mark = marks.prices.get(position.symbol)
        status = position_status(position, mark, maintenance_rate)
        row = plain_fields(status)
        row["side"] = position.side.value
        row["stop_order_id"] = position.stop_order_id
        row["take_profit_order_id"] = position.take_profit_order_id
        rows.append(row)
    return {
        "positions": rows,
        "marks": None
        if marks is None
        else {"as_of": marks.as_of.isoformat(), "written_at": marks.written_at.isoformat()},
        "liquidation_price_basis": LIQUIDATION_BASIS.format(rate=maintenance_rate),
    }


def trades_document(trades: Sequence[ClosedTrade], database: Path) -> dict[str, Any]:
    """`trades --json`: closed round trips, oldest first, net of fees and funding."""
    rows = []
    for trade in trades:
        row = plain_fields(trade)
        row["side"], row["exit_reason"] = trade.side.value, trade.exit_reason.value
        row["r_multiple"] = None if trade.r_multiple is None else round(trade.r_multiple, 6)
        rows.append(row)
    return {"database": str(database), "trades": rows}


async def blocked_symbols(repository: Repository) -> dict[str, str]:
    """Symbols the keeper takes no entry on (an order of ours with an unknown outcome, a close
    outside the program awaiting its price: keeper/unpriced.py), and why: the same answer the
    keeper gives (`Book.blocked`), from the database. A stop of ours
    that met its trigger blocks too, but only the running keeper knows it (the database keeps
    no trigger times): the status server of the running daemon shows it (ops/snapshot.py)."""
    extras = await repository.load_state(INTENTS)
    intents = [
        read_back(
            INTENTS,
            order.client_order_id,
            partial(Intent.restore, order),
            extras.get(order.client_order_id),
        )
        for order in await repository.open_orders()
        if is_ours(order.client_order_id) and is_unsettled(order)
    ]
    unpriced = await saved_closes(repository)
    return dict(Book(intents={i.client_order_id: i for i in intents}, unpriced=unpriced).blocked())


def pause_json(state: GovernorState) -> dict[str, str] | None:
    """The operator's pause of new entries, or None when entries are not paused."""
    held = state.pause
    if held is None:
        return None
    return {"since": held.since.isoformat(), "detail": held.detail}


async def requests_json(repository: Repository) -> list[dict[str, str]]:
    """Requests filed but not yet carried out (or not yet dropped as stale)."""
    return [
        {"request": item.key, "requested_at": item.filed_at.isoformat(), "by": item.by}
        for item in await pending_requests(repository)
        if not isinstance(item, str)  # an unreadable row is dropped, never carried out
    ]


NOT_CARRIED_OUT = (
    "not carried out: no daemon is running (it stopped first); the next start drops it, so "
    "ask again once a daemon runs"
)


def requests_shown(
    requests: list[dict[str, str]], presence: DaemonPresence | None
) -> list[dict[str, str]]:
    """The pending requests, each said not carried out when no daemon runs to carry it out
    (the one that stopped said so in its log; the next start drops it)."""
    if presence is None or presence.running:
        return requests
    return [r | {"not_carried_out": NOT_CARRIED_OUT} for r in requests]


@record
class StatusData:
    """Everything `status` reads from the database, in one pass."""

    equity: EquitySnapshot | None
    positions: list[Position]
    closed_trades: int
    decision_counts: dict[tuple[str, str], int]
    governor: GovernorState
    governor_events: list[dict[str, Any]]
    simulated_time: str | None
    blocked: dict[str, str]
    requests: list[dict[str, str]]


async def read_status(repository: Repository) -> StatusData:
    """Read what `status` shows: the newest equity snapshot and the counts, never every row
    (a year of service holds half a million snapshots and millions of decisions)."""
    equity = await repository.latest_equity(1)
    saved = (await repository.load_state(GOVERNOR_STATE[0])).get(GOVERNOR_STATE[1])
    events = (await repository.load_state(EVENTS_NAMESPACE)).values()
    clock = (await repository.load_state("replay")).get("clock", {})
    return StatusData(
        equity=equity[-1] if equity else None,
        positions=await repository.open_positions(),
        closed_trades=await repository.closed_trade_count(),
        decision_counts=await repository.decision_counts(),
        governor=(
            read_back(*GOVERNOR_STATE, GovernorState.from_dict, saved) if saved else GovernorState()
        ),
        governor_events=sorted(events, key=lambda e: str(e.get("time"))),
        simulated_time=str(clock["now"]) if clock.get("now") else None,
        blocked=await blocked_symbols(repository),
        requests=await requests_json(repository),
    )


def why_lines(governor: GovernorState, blocked: Mapping[str, str]) -> list[str]:
    """Why new entries are limited, from the saved governor state (pause first) and the
    symbols blocked by an order of ours not yet settled."""
    healthy = HealthReport(HealthStatus.HEALTHY, ())
    return list(why_not_active(governor, healthy, False, blocked))


def status_document(
    data: StatusData,
    presence: DaemonPresence | None,
    database: Path,
    positions: dict[str, Any],
    analytics: dict[str, Any] | None,
) -> dict[str, Any]:
    """`status --json`. `positions` is `positions_document`'s; `analytics` the daemon's
    latest portfolio analytics (None for a backtest's database or before the first);
    `presence` None for a database named with `--db`, which no daemon of the data directory
    writes (its daemon is then not described beside another run's figures)."""
    governor, last = data.governor, data.equity
    return {
        "daemon": None
        if presence is None
        else {
            "running": presence.running,
            "pid": presence.pid,
            "heartbeat_age_s": presence.heartbeat_age_s,
            "description": presence.describe(),
        },
        "database": str(database),
        "equity": None
        if last is None
        else {"equity_usdt": str(last.equity_usdt), "time": last.time.isoformat()},
        "simulated_time": data.simulated_time,
        "trading": {
            "state": governor.trading_state.value,
            "paused": pause_json(governor),
            "why": why_lines(governor, data.blocked),
        },
        "governor": governor.to_dict(),
        "governor_events": {
            "count": len(data.governor_events),
            "last": data.governor_events[-1] if data.governor_events else None,
        },
        "open_positions": positions["positions"],
        "marks": positions["marks"],
        "liquidation_price_basis": positions["liquidation_price_basis"],
        "closed_trades": data.closed_trades,
        "blocked_symbols": data.blocked,
        "operator_requests": requests_shown(data.requests, presence),
        "analytics": analytics,
        "decisions": [
            {"gate": gate, "reason": reason, "count": count}
            for (gate, reason), count in sorted(data.decision_counts.items())
        ],
    }
