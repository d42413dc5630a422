"""Safety governor (SPEC §4.3): account + market + health → circuit breakers → trading state.

The core is pure: `evaluate(state, ...)` returns the next `GovernorState` and the events that
moved it. A tripped breaker is a `Trip`; timed trips end by themselves at `until`, the losing
streak and health trips end when their condition clears, the emergency shutdown ends only
through `reset` (an operator), and the operator's pause only through `resume`. The state
(governor_state.py) round-trips through `to_dict`/`from_dict`, so a restart (or kill -9)
restores every halt with its end time.

Trading states: ACTIVE (all allowed), REDUCING (only reduce-only orders: NO_NEW_TRADES, the
operator's pause), HALTED (PAUSE_1H, EMERGENCY_SHUTDOWN: nothing new; reduce-only protective
and closing orders and cancels still pass).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from quantum_trader.domain import (
    ZERO,
    Candidate,
    GateName,
    MarketView,
    OrderRequest,
    PortfolioView,
    ReasonCode,
    Verdict,
)
from quantum_trader.domain.correlation import correlation_matrix
from quantum_trader.domain.views import loss_fraction
from quantum_trader.gates.governor_state import (
    CONDITION_BOUND,
    RESUME_ONLY,
    SEVERITY,
    Breaker,
    GovernorDecision,
    GovernorEvent,
    GovernorEventKind,
    GovernorState,
    TradingState,
    Trip,
)
from quantum_trader.gates.settings import GovernorSettings
from quantum_trader.record import replace

__all__ = [
    "SEVERITY",
    "Breaker",
    "GovernorDecision",
    "GovernorEvent",
    "GovernorEventKind",
    "GovernorState",
    "SafetyGovernor",
    "TradingState",
    "Trip",
    "evaluate",
    "next_utc_midnight",
    "pause",
    "reset",
    "resume",
    "volatility_spike",
]


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


def _decline_past(
    state: GovernorState, portfolio: PortfolioView, limit: float, exact_limit: Decimal
) -> float | None:
    """The decline from the baseline (the starting balance without one) when above `limit`,
    the float `loss_fraction` gives; None at or below it. `exact_limit`: `Decimal(limit)`.

    Decided on the Decimal loss first: `float()` rounds monotonically and `limit` is a float,
    so a loss at most `exact_limit` is a float at most `limit`. The float (made through a
    string, ≈ 5,600 instructions) is made only past it: the governor asks at every
    observation and at every check of a repeated cycle."""
    base = state.baseline_equity_usdt
    reference = portfolio.starting_balance_usdt if base is None else base
    equity = portfolio.equity_usdt
    if reference <= ZERO or equity >= reference:  # ZERO: an int converts at every comparison
        return None  # no loss (`loss_fraction` is 0.0; the limit is positive)
    loss = 1 - equity / reference
    if loss <= exact_limit:
        return None
    decline = loss_fraction(equity, reference)
    return decline if decline > limit else None


_Firing = dict[Breaker, tuple[GovernorDecision, datetime | None, str]]
_NAME = GateName.GOVERNOR  # read for every verdict: not read through its class (domain/enums.py)


def _account_breakers(
    state: GovernorState,
    portfolio: PortfolioView,
    now: datetime,
    s: GovernorSettings,
    exact_decline_limit: Decimal,
) -> _Firing:
    fired: _Firing = {}
    decline = _decline_past(state, portfolio, s.max_decline_from_start, exact_decline_limit)
    if decline is not None:
        fired[Breaker.TOTAL_DECLINE] = (
            GovernorDecision.EMERGENCY_SHUTDOWN,
            None,
            f"decline {decline:.4f}",
        )
    pnl, equity = portfolio.pnl_last_hour_usdt, portfolio.equity_usdt
    # Only a loss trips it (`max_hourly_loss` > 0): no division else.
    if pnl < ZERO and equity > ZERO:
        hour_loss = float(-pnl / equity)
        if hour_loss > s.max_hourly_loss:
            until = now + timedelta(seconds=s.pause_duration_s)
            detail = f"loss {hour_loss:.4f}"
            fired[Breaker.HOURLY_LOSS] = (GovernorDecision.PAUSE_1H, until, detail)
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
    spike = volatility_spike(market, s)
    if spike is not None:
        fired[Breaker.VOLATILITY_SPIKE] = (GovernorDecision.NO_NEW_TRADES, _cooldown(now, s), spike)
    matrix = market.correlations or correlation_matrix(
        market.returns, None, s.correlation_lookback_bars
    )
    mean = matrix.mean_pairwise()
    if mean > s.correlation_spike:
        detail = f"mean pairwise correlation {mean:.3f}"
        until = _cooldown(now, s)
        fired[Breaker.CORRELATION_SPIKE] = (GovernorDecision.NO_NEW_TRADES, until, detail)
    if health == "CRITICAL":
        fired[Breaker.HEALTH_CRITICAL] = (GovernorDecision.NO_NEW_TRADES, None, "health CRITICAL")
    return fired


def _cooldown(now: datetime, s: GovernorSettings) -> datetime:
    """The end of a market breaker's trip (made only when one fires: most observations none)."""
    return now + timedelta(seconds=s.spike_cooldown_s)


def _event(now: datetime, kind: GovernorEventKind, trip: Trip) -> GovernorEvent:
    return GovernorEvent(now, kind, trip.breaker, trip.decision, trip.until, trip.detail)


def evaluate(
    state: GovernorState,
    portfolio: PortfolioView,
    market: MarketView,
    now: datetime,
    health: str,
    settings: GovernorSettings,
    exact_decline_limit: Decimal | None = None,
) -> tuple[GovernorState, list[GovernorEvent]]:
    """Move the state: end expired and cleared trips, trip every newly firing breaker.

    A breaker already tripped is not extended; when a timed trip ends while its condition
    still holds, it trips again on this same observation. `exact_decline_limit`: the
    settings' `max_decline_from_start` as its exact Decimal, when the caller keeps it
    (`SafetyGovernor` does: made from the float, it costs what it spares).
    """
    if exact_decline_limit is None:
        exact_decline_limit = Decimal(settings.max_decline_from_start)
    if state.rebase_pending:
        state = replace(state, baseline_equity_usdt=portfolio.equity_usdt, rebase_pending=False)
    kept, events = _transitions(
        state, portfolio, market, now, health, settings, exact_decline_limit
    )
    return replace(state, trips=kept, updated_at=now), events


def _transitions(
    state: GovernorState,
    portfolio: PortfolioView,
    market: MarketView,
    now: datetime,
    health: str,
    settings: GovernorSettings,
    exact_decline_limit: Decimal,
) -> tuple[tuple[Trip, ...], list[GovernorEvent]]:
    """The trips `evaluate` keeps and the events it records: an event for each trip ended
    and each trip added, so no event means the same trips."""
    firing = _account_breakers(state, portfolio, now, settings, exact_decline_limit)
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
    if not firing:  # most observations: no set of the tripped breakers to make
        return tuple(kept), events
    active = {t.breaker for t in kept}
    for breaker, (decision, until, detail) in firing.items():
        if breaker not in active:
            trip = Trip(breaker, decision, now, until, detail)
            kept.append(trip)
            events.append(_event(now, GovernorEventKind.TRIPPED, trip))
    return tuple(kept), events


def reset(
    state: GovernorState, now: datetime, operator: str
) -> tuple[GovernorState, GovernorEvent]:
    """Operator reset: clear every trip but the operator's pause (only `resume` ends that); the
    total-decline breaker measures from the equity seen at the next observation, so the old
    decline does not trip it again at once."""
    kept = tuple(t for t in state.trips if t.breaker in RESUME_ONLY)
    new = GovernorState(kept, state.baseline_equity_usdt, True, now)
    detail = f"cleared {[t.breaker.value for t in state.trips if t not in kept]}"
    event = GovernorEvent(
        now, GovernorEventKind.RESET, None, state.decision, None, detail, operator
    )
    return new, event


def pause(
    state: GovernorState, now: datetime, operator: str, why: str
) -> tuple[GovernorState, GovernorEvent | None]:
    """Stop new entries until `resume`; open positions stay managed (reduce-only orders pass).
    No event when a pause is already in force (it keeps its start and reason)."""
    if state.pause is not None:
        return state, None
    trip = Trip(Breaker.OPERATOR_PAUSED, GovernorDecision.NO_NEW_TRADES, now, None, why)
    event = GovernorEvent(
        now, GovernorEventKind.TRIPPED, trip.breaker, trip.decision, None, why, operator
    )
    return replace(state, trips=(*state.trips, trip), updated_at=now), event


def resume(
    state: GovernorState, now: datetime, operator: str
) -> tuple[GovernorState, GovernorEvent | None]:
    """End the operator's pause (other breakers stay as they are); no event when not paused."""
    held = state.pause
    if held is None:
        return state, None
    kept = tuple(t for t in state.trips if t is not held)
    event = GovernorEvent(
        now, GovernorEventKind.CLEARED, held.breaker, held.decision, None, held.detail, operator
    )
    return replace(state, trips=kept, updated_at=now), event


class SafetyGovernor:
    """CandidateGate over a `GovernorState` the caller persists after every change.

    Not thread-safe; owned by the executor loop.
    """

    def __init__(self, settings: GovernorSettings, state: GovernorState | None = None) -> None:
        self.settings = settings
        self.state = state or GovernorState()
        # Made once (`evaluate`): the total-decline breaker is decided on the Decimal loss.
        self._exact_decline_limit = Decimal(settings.max_decline_from_start)

    @property
    def name(self) -> GateName:
        return _NAME

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
        self.state, events = evaluate(
            self.state, portfolio, market, now, health, self.settings, self._exact_decline_limit
        )
        return events

    def unchanged_by(
        self, portfolio: PortfolioView, market: MarketView, now: datetime, health: str
    ) -> bool:
        """Whether `observe` with these would change nothing but `updated_at` (no event)."""
        if self.state.rebase_pending:  # the observation sets the baseline
            return False
        _, events = _transitions(
            self.state, portfolio, market, now, health, self.settings, self._exact_decline_limit
        )
        return not events

    def state_allows_order(self, request: OrderRequest) -> bool:
        """The trader's admission check: when not ACTIVE, only reduce-only orders pass."""
        return self.state.allows_order(request)

    def require_operator(self, now: datetime, detail: str) -> GovernorEvent | None:
        """Stop new entries until an operator resets: the exchange refused something only a
        person can fix. None when that halt is already in force."""
        if any(t.breaker is Breaker.OPERATOR_REQUIRED for t in self.state.trips):
            return None
        trip = Trip(Breaker.OPERATOR_REQUIRED, GovernorDecision.NO_NEW_TRADES, now, None, detail)
        self.state = replace(self.state, trips=(*self.state.trips, trip), updated_at=now)
        return _event(now, GovernorEventKind.TRIPPED, trip)

    def reset(self, now: datetime, operator: str) -> GovernorEvent:
        """Clear every halt but a pause (`quantum-trader reset-halt`); log the returned event."""
        self.state, event = reset(self.state, now, operator)
        return event

    def pause(self, now: datetime, operator: str, why: str) -> GovernorEvent | None:
        """Stop new entries until `resume` (`quantum-trader pause`, `close-all`)."""
        self.state, event = pause(self.state, now, operator, why)
        return event

    def resume(self, now: datetime, operator: str) -> GovernorEvent | None:
        """End the operator's pause (`quantum-trader resume`)."""
        self.state, event = resume(self.state, now, operator)
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
        held = state.pause
        if decision is GovernorDecision.NO_NEW_TRADES and held is not None:
            detail = f"since {held.since.isoformat()}: {held.detail}; `quantum-trader resume`"
            return Verdict.deny(self.name, symbol, ReasonCode.OPERATOR_PAUSED, detail)
        if decision is GovernorDecision.NO_NEW_TRADES:
            breakers = ",".join(t.breaker for t in state.trips)
            return Verdict.deny(self.name, symbol, ReasonCode.NO_NEW_TRADES, breakers, state.until)
        if decision is GovernorDecision.DEFENSIVE_EXIT:
            factor = self.settings.defensive_size_factor
            return Verdict.allow(self.name, symbol, "defensive exit", size_factor=factor)
        return Verdict.allow(self.name, symbol)
