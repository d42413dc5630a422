"""Symbol performance (SPEC §7): closed trades → per-symbol stats, disable/blacklist/hold.

Pure functions over the frozen `SymbolStats`; the caller persists `stats_to_dict(stats)` after
every change (under ("symbol_stats", symbol) in the repository's state, with the trade that
changed it: portfolio/ledger.py) and restores with `stats_from_dict`. A trade with PnL > 0 is
a win; anything else counts as a loss. A trade whose R is unknown (its initial risk was) counts
in every figure but the R ones.

A trade closed FILL_OFF_PLAN (keeper/fill_check.py: its entry filled at or past its own stop or
target and was exited at once) holds its symbol off new entries for a while (`held_until`):
was, the next 30 s cycle could send the same entry and be exited again, paying fees each time
(an outside probe, 2026-12-06).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from quantum_trader.domain import ClosedTrade, ExitReason, ReasonCode, SymbolStats
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.record import replace


def record_trade(
    stats: SymbolStats,
    trade: ClosedTrade,
    now: datetime,
    settings: PerformanceSettings,
) -> SymbolStats:
    """Return `stats` with `trade` added.

    Every loss that brings the losing streak to `disable_after_losses` or beyond disables the
    symbol for `disable_hours` from `now`; reaching `blacklist_after_losses` blacklists it
    until an operator lifts it. A trade closed FILL_OFF_PLAN holds the symbol for
    `fill_off_plan_hold_s` from its close.
    """
    s = settings
    won = trade.pnl_usdt > 0
    streak = max(stats.streak, 0) + 1 if won else min(stats.streak, 0) - 1
    r = trade.r_multiple
    updated = replace(
        stats,
        trades=stats.trades + 1,
        wins=stats.wins + (1 if won else 0),
        losses=stats.losses + (0 if won else 1),
        pnl_usdt=stats.pnl_usdt + float(trade.pnl_usdt),
        streak=streak,
    )
    if r is not None:
        updated = replace(
            updated,
            total_r=stats.total_r + r,
            r_trades=stats.r_trades + 1,
            last_20_r=(*stats.last_20_r, r)[-s.rolling_trades :],
        )
    if trade.exit_reason is ExitReason.FILL_OFF_PLAN and s.fill_off_plan_hold_s > 0:
        until = trade.closed_at + timedelta(seconds=s.fill_off_plan_hold_s)
        held = stats.held_until
        updated = replace(updated, held_until=until if held is None else max(held, until))
    return _with_limits(updated, now, s)


def amend_trade(
    stats: SymbolStats,
    before: ClosedTrade,
    after: ClosedTrade,
    streak: int,
    now: datetime,
    settings: PerformanceSettings,
    *,
    later: int = 0,
) -> SymbolStats:
    """Return `stats` with `before`, a trade already in them, counted as `after`, the same
    trade amended (its fees read after it was booked: keeper/fees.py).

    PnL and total R move by the difference; the trade's R in the rolling window is replaced
    at its own place, `later` (the symbol's trades of known R booked after it) from the end,
    and not at all once it has rolled out (when that place does not hold `before`'s R, the
    trades and the stats disagree: the latest equal to it is replaced). When the amendment
    turns a win into a loss (or back), the counts move and the streak becomes `streak`,
    recomputed by the caller from the symbol's trades; a losing streak that now reaches a
    limit disables or blacklists the symbol from `now`, as a loss booked now would. An
    amendment never lifts either.
    """
    s = settings
    updated = replace(
        stats, pnl_usdt=stats.pnl_usdt - float(before.pnl_usdt) + float(after.pnl_usdt)
    )
    r0, r1 = before.r_multiple, after.r_multiple
    if r0 is not None and r1 is not None:
        window = list(stats.last_20_r)
        at: int | None = len(window) - 1 - later
        if at is not None and at >= 0 and window[at] != r0:
            at = next((i for i in reversed(range(len(window))) if window[i] == r0), None)
        if at is not None and at >= 0:
            window[at] = r1
        updated = replace(updated, total_r=stats.total_r - r0 + r1, last_20_r=tuple(window))
    won_before, won = before.pnl_usdt > 0, after.pnl_usdt > 0
    if won is won_before:
        return updated
    turn = -1 if won_before else 1  # a win less and a loss more, or the reverse
    updated = replace(updated, wins=stats.wins + turn, losses=stats.losses - turn, streak=streak)
    return _with_limits(updated, now, s)


def streak_of(trades: Sequence[ClosedTrade]) -> int:
    """The streak `record_trade` keeps, from `trades` in the order they closed: the wins in a
    row at the end (> 0), or the losses (< 0)."""
    streak = 0
    for trade in trades:
        won = trade.pnl_usdt > 0
        streak = max(streak, 0) + 1 if won else min(streak, 0) - 1
    return streak


def _with_limits(stats: SymbolStats, now: datetime, s: PerformanceSettings) -> SymbolStats:
    """`stats` blacklisted, and disabled from `now`, where its losing streak reaches a limit."""
    losing = stats.losing_streak
    if losing >= s.blacklist_after_losses:
        stats = replace(stats, blacklisted=True)
    if losing >= s.disable_after_losses:
        stats = replace(stats, disabled_until=now + timedelta(hours=s.disable_hours))
    return stats


def lift_blacklist(stats: SymbolStats) -> SymbolStats:
    """Operator action: clear the blacklist and any disable, and restart the streak at zero
    (otherwise the next loss would blacklist the symbol again at once)."""
    return replace(stats, blacklisted=False, disabled_until=None, streak=0)


def block_reason(stats: SymbolStats | None, now: datetime) -> ReasonCode | None:
    """SYMBOL_BLACKLISTED, SYMBOL_DISABLED (until `disabled_until`),
    SYMBOL_HELD_AFTER_FILL_OFF_PLAN (until `held_until`), or None if tradeable."""
    if stats is None:
        return None
    if stats.blacklisted:
        return ReasonCode.SYMBOL_BLACKLISTED
    if stats.disabled_until is not None and now < stats.disabled_until:
        return ReasonCode.SYMBOL_DISABLED
    if stats.held_until is not None and now < stats.held_until:
        return ReasonCode.SYMBOL_HELD_AFTER_FILL_OFF_PLAN
    return None


def rolling_win_rate(stats: SymbolStats) -> float:
    """Win rate over the last `rolling_trades` trades of known R (0.0 with none)."""
    recent = stats.last_20_r
    return sum(1 for r in recent if r > 0) / len(recent) if recent else 0.0


def stats_to_dict(stats: SymbolStats) -> dict[str, Any]:
    """JSON-ready form of `stats` (times as ISO-8601); `held_until` only when set, so the
    stats of symbols never held are saved as before it existed."""
    held = {"held_until": stats.held_until.isoformat()} if stats.held_until else {}
    return {
        "symbol": stats.symbol,
        "trades": stats.trades,
        "wins": stats.wins,
        "losses": stats.losses,
        "pnl_usdt": stats.pnl_usdt,
        "total_r": stats.total_r,
        "r_trades": stats.r_trades,
        "streak": stats.streak,
        "last_20_r": list(stats.last_20_r),
        "disabled_until": stats.disabled_until.isoformat() if stats.disabled_until else None,
        "blacklisted": stats.blacklisted,
        "win_rate": stats.win_rate,
        "average_r": stats.average_r,
        **held,
    }


def stats_from_dict(data: dict[str, Any]) -> SymbolStats:
    """Inverse of `stats_to_dict` (derived fields are ignored)."""
    until, held = data.get("disabled_until"), data.get("held_until")
    return SymbolStats(
        symbol=str(data["symbol"]),
        trades=int(data["trades"]),
        wins=int(data["wins"]),
        losses=int(data["losses"]),
        pnl_usdt=float(data["pnl_usdt"]),
        total_r=float(data["total_r"]),
        streak=int(data["streak"]),
        last_20_r=tuple(float(r) for r in data["last_20_r"]),
        disabled_until=datetime.fromisoformat(until) if until else None,
        blacklisted=bool(data["blacklisted"]),
        held_until=datetime.fromisoformat(held) if held else None,
        # saved before R could be unknown: every trade had one (0.0 for an unknown risk)
        r_trades=int(data.get("r_trades", data["trades"])),
    )
