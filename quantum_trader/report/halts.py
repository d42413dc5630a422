"""Halts in the open: the governor's events turned into the periods without new trades.

Each recorded governor event (trip, clear, reset) carries the trading state it left behind.
A halt period is a stretch in which that state is not ACTIVE (REDUCING: only reduce-only
orders; HALTED: paused or shut down), from the event that left ACTIVE to the one that
returned to it, or to the end of the backtest. The share not traded is their total length over
the backtest's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import Any

from quantum_trader.record import record

ACTIVE = "ACTIVE"
SEVERITY = ("ACTIVE", "REDUCING", "HALTED")


@record
class HaltPeriod:
    """[start, end) without new entries; `end` None: still halted when the backtest ended."""

    start: datetime
    end: datetime | None
    worst_state: str
    causes: tuple[str, ...]
    ended_by: str

    def hours(self, window_end: datetime) -> float:
        return ((self.end or window_end) - self.start).total_seconds() / 3600

    def to_dict(self, window_end: datetime) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "hours": round(self.hours(window_end), 2),
            "worst_state": self.worst_state,
            "causes": list(self.causes),
            "ended_by": self.ended_by,
        }


def halt_periods(events: Sequence[dict[str, Any]]) -> list[HaltPeriod]:
    """The periods without new entries, from the governor's events in time order."""
    periods: list[HaltPeriod] = []
    opened: datetime | None = None
    worst, causes = ACTIVE, []
    for moment, group in groupby(events, key=lambda e: str(e["time"])):
        batch = list(group)
        now, state = datetime.fromisoformat(moment), str(batch[-1]["trading_state"])
        tripped = [_cause(e) for e in batch if e["kind"] == "TRIPPED"]
        if opened is None and state != ACTIVE:
            opened, worst, causes = now, state, tripped
        elif opened is not None:
            causes += tripped
            worst = max(worst, state, key=SEVERITY.index)
            if state == ACTIVE:
                periods.append(HaltPeriod(opened, now, worst, tuple(causes), _ended_by(batch)))
                opened = None
    if opened is not None:
        periods.append(HaltPeriod(opened, None, worst, tuple(causes), "end of backtest"))
    return periods


def share_not_traded(periods: Sequence[HaltPeriod], start: datetime, end: datetime) -> float:
    """The fraction of [start, end) spent in halt periods."""
    total = (end - start).total_seconds()
    if total <= 0:
        return 0.0
    halted = sum(
        max(0.0, (min(p.end or end, end) - max(p.start, start)).total_seconds()) for p in periods
    )
    return round(halted / total, 6)


def event_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The governor's events for the report: time, what happened, why, and the state after."""
    return [
        {
            "time": e["time"],
            "event": e["kind"],
            "breaker": e.get("breaker"),
            "decision": e["decision"],
            "until": e.get("until"),
            "reason": e.get("detail", ""),
            "operator": e.get("operator"),
            "state_after": e["trading_state"],
        }
        for e in events
    ]


def by_breaker(events: Sequence[dict[str, Any]], end: datetime) -> list[dict[str, Any]]:
    """Per breaker: its decision, how often it tripped and the hours its trips were in force
    (from the trip to its clear, an operator reset, or the end of the backtest)."""
    tripped: dict[str, datetime] = {}
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        now, breaker = datetime.fromisoformat(str(event["time"])), event.get("breaker")
        ended = list(tripped) if event["kind"] == "RESET" else [str(breaker)]
        if event["kind"] == "TRIPPED":
            tripped[str(breaker)] = now
            row = rows.setdefault(
                str(breaker),
                {"breaker": breaker, "decision": event["decision"], "trips": 0, "hours": 0.0},
            )
            row["trips"] += 1
            continue
        for name in ended:
            if name in tripped:
                rows[name]["hours"] += (now - tripped.pop(name)).total_seconds() / 3600
    for name, since in tripped.items():
        rows[name]["hours"] += (end - since).total_seconds() / 3600
    return [row | {"hours": round(row["hours"], 2)} for row in rows.values()]


def _cause(event: dict[str, Any]) -> str:
    return f"{event['breaker']} ({event.get('detail', '')})"


def _ended_by(batch: Sequence[dict[str, Any]]) -> str:
    resets = [e for e in batch if e["kind"] == "RESET"]
    if resets:
        return f"reset by {resets[-1].get('operator') or 'operator'}"
    cleared = [str(e.get("breaker")) for e in batch if e["kind"] == "CLEARED"]
    return "cleared: " + ", ".join(cleared) if cleared else "cleared"
