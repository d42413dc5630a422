"""The safety governor's state: decisions, trading states, breakers, trips and events.

`GovernorState` holds every active trip and round-trips through `to_dict`/`from_dict`, so a
restart (or kill -9) restores every halt with its end time. The operator's pause
(`quantum-trader pause`, and `close-all`) is a trip too (`Breaker.OPERATOR_PAUSED`): it stops
new entries until `resume`, and nothing else ends it.
"""

from __future__ import annotations

import operator
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from quantum_trader.domain import OrderRequest
from quantum_trader.record import record, replace


class GovernorDecision(StrEnum):
    """Ordered from least to most severe."""

    ALLOW_NORMAL = "ALLOW_NORMAL"
    DEFENSIVE_EXIT = "DEFENSIVE_EXIT"
    NO_NEW_TRADES = "NO_NEW_TRADES"
    PAUSE_1H = "PAUSE_1H"
    EMERGENCY_SHUTDOWN = "EMERGENCY_SHUTDOWN"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Breaker(StrEnum):
    DAILY_DRAWDOWN = "DAILY_DRAWDOWN"
    LOSING_STREAK = "LOSING_STREAK"
    HOURLY_LOSS = "HOURLY_LOSS"
    TOTAL_DECLINE = "TOTAL_DECLINE"
    VOLATILITY_SPIKE = "VOLATILITY_SPIKE"
    CORRELATION_SPIKE = "CORRELATION_SPIKE"
    HEALTH_CRITICAL = "HEALTH_CRITICAL"
    # the exchange refused what only a person can fix (API key, account mode); ends by reset
    OPERATOR_REQUIRED = "OPERATOR_REQUIRED"
    # `quantum-trader pause` or `close-all`: no new entries until `resume` (not `reset-halt`)
    OPERATOR_PAUSED = "OPERATOR_PAUSED"


class GovernorEventKind(StrEnum):
    TRIPPED = "TRIPPED"
    CLEARED = "CLEARED"
    RESET = "RESET"


SEVERITY = tuple(GovernorDecision)
CONDITION_BOUND = frozenset({Breaker.LOSING_STREAK, Breaker.HEALTH_CRITICAL})
# Ended only by the operator's `resume`: neither `reset-halt` nor a simulated operator ends it.
RESUME_ONLY = frozenset({Breaker.OPERATOR_PAUSED})
# Asked at every tick: kept here, not read through its class (domain/enums.py).
_DEFENSIVE_EXIT = GovernorDecision.DEFENSIVE_EXIT
_STATE_OF = {
    GovernorDecision.ALLOW_NORMAL: TradingState.ACTIVE,
    GovernorDecision.DEFENSIVE_EXIT: TradingState.ACTIVE,
    GovernorDecision.NO_NEW_TRADES: TradingState.REDUCING,
    GovernorDecision.PAUSE_1H: TradingState.HALTED,
    GovernorDecision.EMERGENCY_SHUTDOWN: TradingState.HALTED,
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@record
class Trip:
    """A tripped breaker. `until` None: it ends when its condition clears (streak, health) or,
    for the emergency shutdown, only by an operator reset."""

    breaker: Breaker
    decision: GovernorDecision
    since: datetime
    until: datetime | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "breaker": self.breaker.value,
            "decision": self.decision.value,
            "since": self.since.isoformat(),
            "until": _iso(self.until),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trip:
        since = _from_iso(data["since"])
        if since is None:  # a value, not an assertion: a damaged row is said, not crashed on
            raise ValueError("a trip without the time it tripped")
        return cls(
            Breaker(data["breaker"]),
            GovernorDecision(data["decision"]),
            since,
            _from_iso(data.get("until")),
            str(data.get("detail", "")),
        )


@record
class GovernorEvent:
    """A change of the governor's state, for the log and the database."""

    time: datetime
    kind: GovernorEventKind
    breaker: Breaker | None
    decision: GovernorDecision
    until: datetime | None = None
    detail: str = ""
    operator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "kind": self.kind.value,
            "breaker": self.breaker.value if self.breaker is not None else None,
            "decision": self.decision.value,
            "until": _iso(self.until),
            "detail": self.detail,
            "operator": self.operator,
        }


@record
class GovernorState:
    """Every active trip. `baseline_equity_usdt` replaces the starting balance as the base of
    the total-decline breaker after an operator reset (set on the first observation after it)."""

    trips: tuple[Trip, ...] = ()
    baseline_equity_usdt: Decimal | None = None
    rebase_pending: bool = False
    updated_at: datetime | None = None

    @property
    def standing(self) -> tuple[object, ...]:
        """Every field but `updated_at` (which every observation moves): two states with the
        same standing govern alike. (Cheaper than copying the state to compare it.)"""
        return _STANDING(self)

    @property
    def decision(self) -> GovernorDecision:
        """The most severe decision among the active trips."""
        if not self.trips:  # most states: no generator and no max() (≈ 3,000 instructions)
            return SEVERITY[0]
        return max((t.decision for t in self.trips), key=SEVERITY.index, default=SEVERITY[0])

    @property
    def trading_state(self) -> TradingState:
        return _STATE_OF[self.decision]

    @property
    def until(self) -> datetime | None:
        """When the most severe decision ends by itself (None: a condition or a person ends it)."""
        top = [t.until for t in self.trips if t.decision is self.decision]
        if not top or any(u is None for u in top):
            return None
        return max(u for u in top if u is not None)

    @property
    def operator_halt_since(self) -> datetime | None:
        """When the earliest trip that only an operator can end (no end time, no condition
        that clears by itself: the emergency shutdown) began; None when there is none."""
        if not self.trips:  # asked at every step of a backtest, mostly of a state without any
            return None
        held = [
            t.since
            for t in self.trips
            if t.until is None and t.breaker not in CONDITION_BOUND | RESUME_ONLY
        ]
        return min(held, default=None)

    @property
    def pause(self) -> Trip | None:
        """The operator's pause of new entries (`since`, who and why in `detail`), if any."""
        return next((t for t in self.trips if t.breaker is Breaker.OPERATOR_PAUSED), None)

    @property
    def emergency_shutdown_requested(self) -> bool:
        """Close every position, cancel every order, take nothing new until an operator reset."""
        return any(t.decision is GovernorDecision.EMERGENCY_SHUTDOWN for t in self.trips)

    @property
    def defensive_exit(self) -> bool:
        """Tighten trails to AGGRESSIVE and halve new sizes."""
        # The keeper asks at every tick (app.py `conditions`): a plain loop, no generator.
        for trip in self.trips:  # noqa: SIM110 - see above
            if trip.decision is _DEFENSIVE_EXIT:
                return True
        return False

    @property
    def allows_new_entries(self) -> bool:
        return self.trading_state is TradingState.ACTIVE

    def allows_order(self, request: OrderRequest) -> bool:
        """ACTIVE allows everything; REDUCING and HALTED only reduce-only orders."""
        return self.allows_new_entries or request.reduce_only

    def expire(self, now: datetime) -> GovernorState:
        """The state with every timed trip that has ended by `now` removed."""
        if not self.trips:  # the cycle's inputs ask at every check: no generator for nothing
            return self
        kept = tuple(t for t in self.trips if t.until is None or now < t.until)
        return self if len(kept) == len(self.trips) else replace(self, trips=kept)

    def to_dict(self) -> dict[str, Any]:
        base = self.baseline_equity_usdt
        return {
            "trips": [t.to_dict() for t in self.trips],
            "baseline_equity_usdt": str(base) if base is not None else None,
            "rebase_pending": self.rebase_pending,
            "updated_at": _iso(self.updated_at),
            "decision": self.decision.value,
            "trading_state": self.trading_state.value,
            "until": _iso(self.until),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GovernorState:
        base = data.get("baseline_equity_usdt")
        return cls(
            trips=tuple(Trip.from_dict(t) for t in data.get("trips", [])),
            baseline_equity_usdt=Decimal(base) if base is not None else None,
            rebase_pending=bool(data.get("rebase_pending", False)),
            updated_at=_from_iso(data.get("updated_at")),
        )


# One C call for the tuple: the quiet-step checks compare standings ~230k times a year.
_STANDING = operator.attrgetter(*(f.name for f in fields(GovernorState) if f.name != "updated_at"))
