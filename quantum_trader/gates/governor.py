"""Safety governor (SPEC §4.3): account + market + health → circuit breakers → trading state.

The core is pure: `evaluate(state, ...)` returns the next `GovernorState` and the events that
moved it. A tripped breaker is a `Trip`; timed trips end by themselves at `until`, the losing
streak and health trips end when their condition clears, and the emergency shutdown ends only
through `reset` (an operator). The state round-trips through `to_dict`/`from_dict`, so a
restart (or kill -9) restores every halt with its end time.

Trading states: ACTIVE (all allowed), REDUCING (only reduce-only orders: NO_NEW_TRADES),
HALTED (PAUSE_1H, EMERGENCY_SHUTDOWN: nothing new; reduce-only protective and closing orders
and cancels still pass).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np

from quantum_trader.domain import (
    Candidate,
    GateName,
    MarketView,
    OrderRequest,
    PortfolioView,
    ReasonCode,
    Verdict,
)
from quantum_trader.domain.correlation import correlation_matrix
from quantum_trader.gates.settings import GovernorSettings


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


class GovernorEventKind(StrEnum):
    TRIPPED = "TRIPPED"
    CLEARED = "CLEARED"
    RESET = "RESET"


SEVERITY = tuple(GovernorDecision)
CONDITION_BOUND = frozenset({Breaker.LOSING_STREAK, Breaker.HEALTH_CRITICAL})
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


@dataclass(frozen=True, slots=True)
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
        assert since is not None
        return cls(
            Breaker(data["breaker"]),
            GovernorDecision(data["decision"]),
            since,
            _from_iso(data.get("until")),
            str(data.get("detail", "")),
        )


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class GovernorState:
    """Every active trip. `baseline_equity_usdt` replaces the starting balance as the base of
    the total-decline breaker after an operator reset (set on the first observation after it)."""

    trips: tuple[Trip, ...] = ()
    baseline_equity_usdt: Decimal | None = None
    rebase_pending: bool = False
    updated_at: datetime | None = None

    @property
    def decision(self) -> GovernorDecision:
        """The most severe decision among the active trips."""
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
        held = [t.since for t in self.trips if t.until is None and t.breaker not in CONDITION_BOUND]
        return min(held, default=None)

    @property
    def emergency_shutdown_requested(self) -> bool:
        """Close every position, cancel every order, take nothing new until an operator reset."""
        return any(t.decision is GovernorDecision.EMERGENCY_SHUTDOWN for t in self.trips)

    @property
    def defensive_exit(self) -> bool:
        """Tighten trails to AGGRESSIVE and halve new sizes."""
        return any(t.decision is GovernorDecision.DEFENSIVE_EXIT for t in self.trips)

    @property
    def allows_new_entries(self) -> bool:
        return self.trading_state is TradingState.ACTIVE

    def allows_order(self, request: OrderRequest) -> bool:
        """ACTIVE allows everything; REDUCING and HALTED only reduce-only orders."""
        return self.allows_new_entries or request.reduce_only

    def expire(self, now: datetime) -> GovernorState:
        """The state with every timed trip that has ended by `now` removed."""
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


def next_utc_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def volatility_spike(market: MarketView, settings: GovernorSettings) -> str | None:
    """The first symbol whose latest 1-bar return lies beyond k σ of the returns before it.

    The market model's hourly z-scores are used when the view has them (the strategy's bar is
    the hour: 3σ moves of 5 m returns are everyday noise); otherwise `returns` are used.
    """
    for symbol, z in market.return_zscore.items():
        if abs(z) > settings.volatility_spike_sigma:
            return f"{symbol} hourly return at {z:+.2f}σ beyond {settings.volatility_spike_sigma}σ"
    if market.return_zscore:
        return None
    for symbol, returns in market.returns.items():
        history = returns[-settings.volatility_lookback_bars - 1 : -1]
        if history.shape[0] < settings.volatility_min_bars:
            continue
        sigma = float(np.nanstd(history))
        latest = float(returns[-1])
        if sigma > 0 and abs(latest) > settings.volatility_spike_sigma * sigma:
            return f"{symbol} return {latest:.5f} beyond {settings.volatility_spike_sigma}σ"
    return None


def _decline(state: GovernorState, portfolio: PortfolioView) -> float:
    base = state.baseline_equity_usdt
    if base is None:
        return portfolio.decline_from_start
    return max(0.0, float(1 - portfolio.equity_usdt / base)) if base > 0 else 0.0


_Firing = dict[Breaker, tuple[GovernorDecision, datetime | None, str]]


def _account_breakers(
    state: GovernorState, portfolio: PortfolioView, now: datetime, s: GovernorSettings
) -> _Firing:
    fired: _Firing = {}
    decline = _decline(state, portfolio)
    if decline > s.max_decline_from_start:
        fired[Breaker.TOTAL_DECLINE] = (
            GovernorDecision.EMERGENCY_SHUTDOWN,
            None,
            f"decline {decline:.4f}",
        )
    equity = portfolio.equity_usdt
    hour_loss = float(-portfolio.pnl_last_hour_usdt / equity) if equity > 0 else 0.0
    if hour_loss > s.max_hourly_loss:
        until = now + timedelta(seconds=s.pause_duration_s)
        fired[Breaker.HOURLY_LOSS] = (GovernorDecision.PAUSE_1H, until, f"loss {hour_loss:.4f}")
    dd = portfolio.daily_drawdown
    if dd > s.max_daily_drawdown:
        midnight = next_utc_midnight(now)
        fired[Breaker.DAILY_DRAWDOWN] = (GovernorDecision.NO_NEW_TRADES, midnight, f"dd {dd:.4f}")
    streak = portfolio.losing_streak
    if streak >= s.losing_streak_defensive:
        fired[Breaker.LOSING_STREAK] = (GovernorDecision.DEFENSIVE_EXIT, None, f"streak {streak}")
    return fired


def _market_breakers(
    market: MarketView, now: datetime, health: str, s: GovernorSettings
) -> _Firing:
    fired: _Firing = {}
    cooldown = now + timedelta(seconds=s.spike_cooldown_s)
    spike = volatility_spike(market, s)
    if spike is not None:
        fired[Breaker.VOLATILITY_SPIKE] = (GovernorDecision.NO_NEW_TRADES, cooldown, spike)
    matrix = market.correlations or correlation_matrix(
        market.returns, None, s.correlation_lookback_bars
    )
    mean = matrix.mean_pairwise()
    if mean > s.correlation_spike:
        detail = f"mean pairwise correlation {mean:.3f}"
        fired[Breaker.CORRELATION_SPIKE] = (GovernorDecision.NO_NEW_TRADES, cooldown, detail)
    if health == "CRITICAL":
        fired[Breaker.HEALTH_CRITICAL] = (GovernorDecision.NO_NEW_TRADES, None, "health CRITICAL")
    return fired


def _event(now: datetime, kind: GovernorEventKind, trip: Trip) -> GovernorEvent:
    return GovernorEvent(now, kind, trip.breaker, trip.decision, trip.until, trip.detail)


def evaluate(
    state: GovernorState,
    portfolio: PortfolioView,
    market: MarketView,
    now: datetime,
    health: str,
    settings: GovernorSettings,
) -> tuple[GovernorState, list[GovernorEvent]]:
    """Move the state: end expired and cleared trips, trip every newly firing breaker.

    A breaker already tripped is not extended; when a timed trip ends while its condition
    still holds, it trips again on this same observation.
    """
    if state.rebase_pending:
        state = replace(state, baseline_equity_usdt=portfolio.equity_usdt, rebase_pending=False)
    firing = _account_breakers(state, portfolio, now, settings)
    firing.update(_market_breakers(market, now, health, settings))
    events: list[GovernorEvent] = []
    kept: list[Trip] = []
    for trip in state.trips:
        expired = trip.until is not None and now >= trip.until
        cleared = trip.breaker in CONDITION_BOUND and trip.breaker not in firing
        if expired or cleared:
            events.append(_event(now, GovernorEventKind.CLEARED, trip))
        else:
            kept.append(trip)
    active = {t.breaker for t in kept}
    for breaker, (decision, until, detail) in firing.items():
        if breaker not in active:
            trip = Trip(breaker, decision, now, until, detail)
            kept.append(trip)
            events.append(_event(now, GovernorEventKind.TRIPPED, trip))
    return replace(state, trips=tuple(kept), updated_at=now), events


def reset(
    state: GovernorState, now: datetime, operator: str
) -> tuple[GovernorState, GovernorEvent]:
    """Operator reset: clear every trip; the total-decline breaker measures from the equity
    seen at the next observation, so the old decline does not trip it again at once."""
    new = GovernorState((), state.baseline_equity_usdt, True, now)
    detail = f"cleared {[t.breaker.value for t in state.trips]}"
    event = GovernorEvent(
        now, GovernorEventKind.RESET, None, state.decision, None, detail, operator
    )
    return new, event


class SafetyGovernor:
    """CandidateGate over a `GovernorState` the caller persists after every change.

    Not thread-safe; owned by the executor loop.
    """

    def __init__(self, settings: GovernorSettings, state: GovernorState | None = None) -> None:
        self.settings = settings
        self.state = state or GovernorState()

    @property
    def name(self) -> GateName:
        return GateName.GOVERNOR

    @property
    def emergency_shutdown_requested(self) -> bool:
        return self.state.emergency_shutdown_requested

    @property
    def defensive_exit(self) -> bool:
        return self.state.defensive_exit

    @property
    def allows_new_entries(self) -> bool:
        return self.state.allows_new_entries

    def observe(
        self, portfolio: PortfolioView, market: MarketView, now: datetime, health: str = "HEALTHY"
    ) -> list[GovernorEvent]:
        """Evaluate every breaker at `now`; `health` is the health monitor's status name."""
        self.state, events = evaluate(self.state, portfolio, market, now, health, self.settings)
        return events

    def state_allows_order(self, request: OrderRequest) -> bool:
        """The trader's admission check: when not ACTIVE, only reduce-only orders pass."""
        return self.state.allows_order(request)

    def reset(self, now: datetime, operator: str) -> GovernorEvent:
        """Clear every halt (`quantum-trader reset-halt`); log the returned event."""
        self.state, event = reset(self.state, now, operator)
        return event

    def review(
        self, candidate: Candidate, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> Verdict:
        """Deny new entries unless ACTIVE; halve them under DEFENSIVE_EXIT."""
        state = self.state.expire(now)
        decision, symbol = state.decision, candidate.symbol
        if decision is GovernorDecision.EMERGENCY_SHUTDOWN:
            return Verdict.deny(self.name, symbol, ReasonCode.EMERGENCY_SHUTDOWN, "operator reset")
        if decision is GovernorDecision.PAUSE_1H:
            return Verdict.deny(self.name, symbol, ReasonCode.PAUSED, "", state.until)
        if decision is GovernorDecision.NO_NEW_TRADES:
            breakers = ",".join(t.breaker for t in state.trips)
            return Verdict.deny(self.name, symbol, ReasonCode.NO_NEW_TRADES, breakers, state.until)
        if decision is GovernorDecision.DEFENSIVE_EXIT:
            factor = self.settings.defensive_size_factor
            return Verdict.allow(self.name, symbol, "defensive exit", size_factor=factor)
        return Verdict.allow(self.name, symbol)
