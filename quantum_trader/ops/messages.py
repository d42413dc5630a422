"""The notifications' words: pure functions of what happened, one per kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import ClosedTrade, Position
from quantum_trader.gates.governor import Trip
from quantum_trader.keeper.alerts import ProtectionAlert
from quantum_trader.ops.health import HealthReport
from quantum_trader.ops.notify import Notification, NotificationKind


def _money(value: Decimal) -> str:
    return f"{value:+.2f}"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def started(now: datetime, mode: str, symbols: Sequence[str], open_positions: int) -> Notification:
    text = (
        f"Quantum Trader started ({mode}): {len(symbols)} symbols, {open_positions} open positions"
    )
    fields = {"mode": mode, "symbols": ",".join(symbols), "open_positions": str(open_positions)}
    return Notification(NotificationKind.DAEMON_STARTED, now, text, fields)


def stopped(now: datetime, reason: str, open_positions: int) -> Notification:
    text = (
        f"Quantum Trader stopped ({reason}); {open_positions} open positions stay "
        "protected by their stops on the exchange"
    )
    fields = {"reason": reason, "open_positions": str(open_positions)}
    return Notification(NotificationKind.DAEMON_STOPPED, now, text, fields)


def entry(now: datetime, position: Position) -> Notification:
    text = (
        f"ENTRY {position.side} {position.symbol} {_plain(position.quantity)} @ "
        f"{_plain(position.entry_price)} ×{position.leverage}, stop {_plain(position.stop_price)}, "
        f"target {_plain(position.take_profit_price)}"
    )
    fields = {
        "symbol": position.symbol,
        "side": position.side.value,
        "quantity": _plain(position.quantity),
        "entry_price": _plain(position.entry_price),
        "leverage": str(position.leverage),
        "stop_price": _plain(position.stop_price),
        "take_profit_price": _plain(position.take_profit_price),
    }
    return Notification(NotificationKind.ENTRY, now, text, fields)


def exit_(trade: ClosedTrade) -> Notification:
    """The exit's message; without an `r_multiple` field when its R is unknown."""
    r = trade.r_multiple
    text = (
        f"EXIT {trade.side} {trade.symbol} ({trade.exit_reason}) @ {_plain(trade.exit_price)}: "
        f"PnL {_money(trade.pnl_usdt)} USDT, "
        + ("R unknown (no initial risk known)" if r is None else f"{r:+.2f} R")
    )
    fields = {
        "symbol": trade.symbol,
        "side": trade.side.value,
        "reason": trade.exit_reason.value,
        "entry_price": _plain(trade.entry_price),
        "exit_price": _plain(trade.exit_price),
        "pnl_usdt": _plain(trade.pnl_usdt),
        **({} if r is None else {"r_multiple": f"{r:.4f}"}),
    }
    return Notification(NotificationKind.EXIT, trade.closed_at, text, fields)


def governor_trip(now: datetime, trip: Trip) -> Notification:
    until = f" until {trip.until.isoformat()}" if trip.until else ""
    detail = f" ({trip.detail})" if trip.detail else ""
    text = f"GOVERNOR {trip.breaker}: {trip.decision}{until}{detail}"
    fields = {
        "breaker": trip.breaker.value,
        "decision": trip.decision.value,
        "until": trip.until.isoformat() if trip.until else "",
        "detail": trip.detail,
    }
    return Notification(NotificationKind.GOVERNOR_TRIP, now, text, fields)


def protection_failed(alert: ProtectionAlert) -> Notification:
    text = f"PROTECTION FAILED {alert.symbol} ({alert.event}): {alert.detail}"
    fields = {"symbol": alert.symbol, "event": alert.event, "detail": alert.detail}
    return Notification(NotificationKind.PROTECTION_FAILED, alert.time, text, fields)


def health_critical(now: datetime, report: HealthReport) -> Notification:
    problems = "; ".join(report.problems)
    text = f"HEALTH CRITICAL: {problems}. No new entries; positions keep their stops."
    return Notification(NotificationKind.HEALTH_CRITICAL, now, text, {"problems": problems})


def universe_changed(
    now: datetime, added: Sequence[str], removed: Sequence[str], why: Mapping[str, str]
) -> Notification:
    parts = [f"+{s} ({why.get(s, '')})" for s in added]
    parts += [f"-{s} ({why.get(s, '')})" for s in removed]
    text = "Universe changed: " + "; ".join(parts)
    if removed:
        text += ". Open positions on removed symbols are managed to their exit."
    fields = {"added": ",".join(added), "removed": ",".join(removed)}
    return Notification(NotificationKind.UNIVERSE_CHANGED, now, text, fields)


def paused(now: datetime, held: Trip) -> Notification:
    text = (
        f"PAUSED: no new entries ({held.detail}); open positions stay managed. "
        "`quantum-trader resume` ends the pause"
    )
    fields = {"since": held.since.isoformat(), "detail": held.detail}
    return Notification(NotificationKind.OPERATOR_PAUSED, now, text, fields)


def request_not_done(now: datetime, request: str, by: str, requested_at: str) -> Notification:
    text = (
        f"NOT DONE: operator request {request} (by {by} at {requested_at}) was not carried "
        "out: the daemon stopped first. Ask again once a daemon runs"
    )
    fields = {"request": request, "by": by, "requested_at": requested_at}
    return Notification(NotificationKind.OPERATOR_REQUEST_NOT_DONE, now, text, fields)


def resumed(now: datetime, trading_state: str) -> Notification:
    text = f"RESUMED: the operator's pause has ended; trading state {trading_state}"
    return Notification(
        NotificationKind.OPERATOR_RESUMED, now, text, {"trading_state": trading_state}
    )
