"""Safety governor (SPEC §4.3): every breaker at its threshold, cooldowns, persistence, resets."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from gate_builders import NOW, candidate, market, portfolio
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import (
    FloatArray,
    MarketView,
    OrderKind,
    OrderRequest,
    OrderSide,
    PortfolioView,
    ReasonCode,
)
from quantum_trader.domain.views import loss_fraction
from quantum_trader.gates.governor import (
    Breaker,
    GovernorDecision,
    GovernorEventKind,
    GovernorState,
    SafetyGovernor,
    TradingState,
)
from quantum_trader.gates.settings import GovernorSettings

CALM_MARKET = market()


def governor() -> SafetyGovernor:
    return SafetyGovernor(GovernorSettings())


def observe(
    gov: SafetyGovernor,
    account: PortfolioView,
    now: datetime = NOW,
    view: MarketView = CALM_MARKET,
    health: str = "HEALTHY",
) -> SafetyGovernor:
    gov.observe(account, view, now, health)
    return gov


def state_of(gov: SafetyGovernor) -> TradingState:
    return gov.state.trading_state


def denial(gov: SafetyGovernor, now: datetime = NOW) -> ReasonCode:
    return gov.review(candidate(), portfolio(), CALM_MARKET, now).reason


def request(reduce_only: bool) -> OrderRequest:
    return OrderRequest(
        "c1", "ETH/USDT:USDT", OrderSide.SELL, OrderKind.MARKET, Decimal(1), None, reduce_only
    )


def test_a_healthy_account_trades_normally() -> None:
    gov = observe(governor(), portfolio())
    assert gov.state.decision is GovernorDecision.ALLOW_NORMAL
    assert gov.allows_new_entries
    assert gov.review(candidate(), portfolio(), CALM_MARKET, NOW).approved


def test_daily_drawdown_stops_new_trades_until_the_next_utc_day() -> None:
    assert observe(governor(), portfolio(equity="9700", day_start="10000")).allows_new_entries
    gov = observe(governor(), portfolio(equity="9699.99", day_start="10000"))
    assert state_of(gov) is TradingState.REDUCING
    midnight = datetime(2025, 10, 2, tzinfo=UTC)
    assert gov.state.until == midnight
    assert denial(gov) is ReasonCode.NO_NEW_TRADES
    assert denial(gov, midnight - timedelta(seconds=1)) is ReasonCode.NO_NEW_TRADES
    assert denial(gov, midnight) is ReasonCode.APPROVED
    observe(gov, portfolio(equity="9699.99"), midnight)
    assert state_of(gov) is TradingState.ACTIVE


def test_losing_streak_turns_on_defensive_exit() -> None:
    assert not observe(governor(), portfolio(losing_streak=4)).defensive_exit
    gov = observe(governor(), portfolio(losing_streak=5))
    assert gov.defensive_exit
    assert gov.allows_new_entries
    verdict = gov.review(candidate(), portfolio(), CALM_MARKET, NOW)
    assert verdict.approved
    assert verdict.size_factor == 0.5
    observe(gov, portfolio(losing_streak=0), NOW + timedelta(seconds=30))
    assert not gov.defensive_exit


def test_hourly_loss_pauses_for_an_hour() -> None:
    assert observe(governor(), portfolio(pnl_last_hour="-50")).allows_new_entries
    gov = observe(governor(), portfolio(pnl_last_hour="-50.01"))
    assert gov.state.decision is GovernorDecision.PAUSE_1H
    assert state_of(gov) is TradingState.HALTED
    assert gov.state.until == NOW + timedelta(hours=1)
    assert denial(gov, NOW + timedelta(minutes=59, seconds=59)) is ReasonCode.PAUSED
    observe(gov, portfolio(), NOW + timedelta(hours=1))
    assert state_of(gov) is TradingState.ACTIVE


def test_total_decline_is_an_emergency_that_needs_an_operator() -> None:
    at_limit = portfolio(equity="9500", starting="10000")
    assert observe(governor(), at_limit).allows_new_entries
    crashed = portfolio(equity="9499.99", starting="10000")
    gov = observe(governor(), crashed)
    assert gov.emergency_shutdown_requested
    assert gov.state.until is None
    assert denial(gov) is ReasonCode.EMERGENCY_SHUTDOWN
    observe(gov, crashed, NOW + timedelta(days=3))
    assert state_of(gov) is TradingState.HALTED
    event = gov.reset(NOW + timedelta(days=3), operator="alice")
    assert event.kind is GovernorEventKind.RESET
    assert event.operator == "alice"
    observe(gov, crashed, NOW + timedelta(days=3, seconds=30))
    assert state_of(gov) is TradingState.ACTIVE
    worse = portfolio(equity="9024.99", starting="10000")
    assert observe(gov, worse, NOW + timedelta(days=4)).emergency_shutdown_requested


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(min_value=1, max_value=10**9, places=8),
    st.floats(min_value=1e-6, max_value=1.0),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([0.05, 0.1, 0.3, 1 / 3, 1e-6, 1.0]),
)
def test_total_decline_trips_as_the_float_loss_says(
    starting: Decimal, share: float, nudge: int, limit: float
) -> None:
    """The breaker is decided on the Decimal loss first (the float made only past the exact
    limit): it trips exactly where `loss_fraction`'s float is above the limit, at the limit's
    edge too (equities a few last digits either side of it)."""
    edge = starting * (1 - Decimal(limit))
    equity = edge + nudge * edge.scaleb(-26) if nudge else starting * (1 - Decimal(share))
    account = portfolio(equity=str(equity), starting=str(starting))
    gov = observe(SafetyGovernor(GovernorSettings(max_decline_from_start=limit)), account)
    expected = loss_fraction(account.equity_usdt, account.starting_balance_usdt) > limit
    assert gov.emergency_shutdown_requested is expected


def spiky_returns(last_in_sigmas: float) -> FloatArray:
    returns = np.random.default_rng(7).normal(0.0, 0.01, 300)
    sigma = float(np.std(returns[-289:-1]))
    returns[-1] = last_in_sigmas * sigma
    return returns


def test_volatility_spike_beyond_three_sigma() -> None:
    below = market(returns={"ETH/USDT:USDT": spiky_returns(2.999)})
    assert observe(governor(), portfolio(), view=below).allows_new_entries
    above = market(returns={"ETH/USDT:USDT": spiky_returns(-3.001)})
    gov = observe(governor(), portfolio(), view=above)
    assert state_of(gov) is TradingState.REDUCING
    assert gov.state.until == NOW + timedelta(hours=1)
    assert denial(gov, NOW + timedelta(minutes=59)) is ReasonCode.NO_NEW_TRADES
    assert denial(gov, NOW + timedelta(hours=1)) is ReasonCode.APPROVED


def correlated(noise: float) -> dict[str, FloatArray]:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 0.01, 300)
    return {f"S{i}/USDT:USDT": base + rng.normal(0, noise, 300) for i in range(4)}


def test_correlation_spike_above_the_mean_pairwise_limit() -> None:
    assert observe(
        governor(), portfolio(), view=market(returns=correlated(0.01))
    ).allows_new_entries
    gov = observe(governor(), portfolio(), view=market(returns=correlated(0.001)))
    assert [t.breaker for t in gov.state.trips] == [Breaker.CORRELATION_SPIKE]


def test_correlation_spike_threshold_is_a_setting() -> None:
    from quantum_trader.domain.correlation import correlation_matrix

    returns = correlated(0.005)
    mean = correlation_matrix(returns).mean_pairwise()
    view = market(returns=returns)
    above = SafetyGovernor(GovernorSettings(correlation_spike=mean - 1e-9))
    below = SafetyGovernor(GovernorSettings(correlation_spike=mean + 1e-9))
    assert not observe(above, portfolio(), view=view).allows_new_entries
    assert observe(below, portfolio(), view=view).allows_new_entries


def test_health_critical_stops_new_trades_while_it_lasts() -> None:
    gov = observe(governor(), portfolio(), health="CRITICAL")
    assert denial(gov) is ReasonCode.NO_NEW_TRADES
    observe(gov, portfolio(), NOW + timedelta(seconds=30), health="DEGRADED")
    assert gov.allows_new_entries


def test_a_restart_cannot_clear_a_halt() -> None:
    gov = observe(governor(), portfolio(equity="9000", starting="10000", day_start="9000"))
    payload = json.loads(json.dumps(gov.state.to_dict()))
    restarted = SafetyGovernor(GovernorSettings(), GovernorState.from_dict(payload))
    assert restarted.state == gov.state
    assert denial(restarted, NOW + timedelta(days=1)) is ReasonCode.EMERGENCY_SHUTDOWN
    paused = observe(governor(), portfolio(pnl_last_hour="-100"))
    back = GovernorState.from_dict(json.loads(json.dumps(paused.state.to_dict())))
    assert back.until == NOW + timedelta(hours=1)


def test_reducing_and_halted_allow_only_reduce_only_orders() -> None:
    reducing = observe(governor(), portfolio(equity="9600", day_start="10000")).state
    halted = observe(governor(), portfolio(pnl_last_hour="-100")).state
    for state in (reducing, halted):
        assert state.allows_order(request(reduce_only=True))
        assert not state.allows_order(request(reduce_only=False))
    assert GovernorState().allows_order(request(reduce_only=False))


Step = tuple[int, int, int, int, bool, bool, bool]
steps = st.lists(
    st.tuples(
        st.integers(0, 7200),  # seconds advanced
        st.integers(9000, 10_300),  # equity
        st.integers(-120, 50),  # pnl in the last hour
        st.integers(0, 8),  # losing streak
        st.booleans(),  # health critical
        st.booleans(),  # volatility spike
        st.booleans(),  # operator reset before observing
    ),
    max_size=40,
)


def observation(
    gov: SafetyGovernor, step: Step, now: datetime
) -> tuple[datetime, PortfolioView, MarketView, str]:
    """The step's time, account, market and health; an operator reset first if it says so."""
    advance, equity, pnl, streak, critical, spike, do_reset = step
    now += timedelta(seconds=advance)
    if do_reset:
        gov.reset(now, "operator")
    view = market(returns={"ETH/USDT:USDT": spiky_returns(5.0 if spike else 0.0)}, now=now)
    account = portfolio(
        equity=str(equity),
        starting="10000",
        day_start="10000",
        losing_streak=streak,
        pnl_last_hour=str(pnl),
    )
    return now, account, view, "CRITICAL" if critical else "HEALTHY"


@settings(max_examples=150, deadline=None)
@given(steps)
def test_halted_never_becomes_active_without_cooldown_or_reset(sequence: list[Step]) -> None:
    gov, now = governor(), NOW
    for step in sequence:
        before = gov.state
        now, account, view, health = observation(gov, step, now)
        gov.observe(account, view, now, health)
        do_reset = step[-1]
        if before.trading_state is TradingState.HALTED and gov.allows_new_entries:
            halting = [t for t in before.trips if t.decision in HALTING]
            assert do_reset or all(t.until is not None and t.until <= now for t in halting)
        if not gov.allows_new_entries:
            assert gov.state.allows_order(request(reduce_only=True))
            assert not gov.state.allows_order(request(reduce_only=False))
            assert not gov.review(candidate(), account, view, now).approved


HALTING = {GovernorDecision.PAUSE_1H, GovernorDecision.EMERGENCY_SHUTDOWN}


def test_an_operator_pause_holds_entries_until_resume_and_outlives_a_reset() -> None:
    gov = observe(governor(), portfolio())
    event = gov.pause(NOW, "desk", "paused by desk")
    assert event is not None
    assert (event.kind, event.breaker, event.operator) == (
        GovernorEventKind.TRIPPED,
        Breaker.OPERATOR_PAUSED,
        "desk",
    )
    assert gov.pause(NOW + timedelta(minutes=1), "other", "again") is None  # kept as it was
    assert state_of(gov) is TradingState.REDUCING
    assert gov.state_allows_order(request(reduce_only=True))  # stops and exits still pass
    assert not gov.state_allows_order(request(reduce_only=False))
    verdict = gov.review(candidate(), portfolio(), CALM_MARKET, NOW + timedelta(days=30))
    assert verdict.reason is ReasonCode.OPERATOR_PAUSED
    assert "paused by desk" in verdict.detail
    observe(gov, portfolio(), NOW + timedelta(days=30))  # no breaker ends it by itself
    saved = GovernorState.from_dict(json.loads(json.dumps(gov.state.to_dict())))
    restarted = SafetyGovernor(GovernorSettings(), saved)
    assert restarted.state.pause == gov.state.pause
    assert restarted.state.operator_halt_since is None  # no simulated operator resets it
    restarted.reset(NOW + timedelta(days=31), "alice")
    assert restarted.state.pause is not None, "reset-halt is not resume"
    resumed = restarted.resume(NOW + timedelta(days=31), "desk")
    assert resumed is not None
    assert resumed.kind is GovernorEventKind.CLEARED
    assert restarted.resume(NOW + timedelta(days=31), "desk") is None
    assert restarted.review(candidate(), portfolio(), CALM_MARKET, NOW).approved


def test_a_pause_under_a_more_severe_halt_reports_the_halt() -> None:
    gov = observe(governor(), portfolio(equity="9499.99", starting="10000"))
    gov.pause(NOW, "desk", "paused by desk")
    assert denial(gov) is ReasonCode.EMERGENCY_SHUTDOWN
    gov.reset(NOW, "alice")
    assert denial(gov) is ReasonCode.OPERATOR_PAUSED


@settings(max_examples=150, deadline=None)
@given(steps)
def test_unchanged_by_tells_whether_observing_would_change_anything(sequence: list[Step]) -> None:
    """What a backtest's repeated step rests on (replay_quiet.py): `unchanged_by` answers
    "would `observe` with these record no event and keep the state but `updated_at`", and
    changes nothing itself."""
    gov, now = governor(), NOW
    for step in sequence:
        now, account, view, health = observation(gov, step, now)
        state = gov.state
        answer = gov.unchanged_by(account, view, now, health)
        assert gov.state is state
        events = gov.observe(account, view, now, health)
        kept = not events and replace(gov.state, updated_at=None) == replace(state, updated_at=None)
        assert answer is kept
        assert gov.unchanged_by(account, view, now, health)  # observed: a fixed point now


@settings(max_examples=300, deadline=None)
@given(steps, steps, st.lists(st.integers(9000, 10_300), min_size=3, max_size=3, unique=True))
def test_the_equities_at_which_observing_changes_nothing_form_an_interval(
    sequence: list[Step], last: list[Step], equities: list[int]
) -> None:
    """Groundwork for checking a backtest's quiet stretch once (the band design,
    docs/BENCHMARKS.md): from any state, with the time, the market, the health and the
    account but its equity fixed, if `unchanged_by` holds at two equities it holds at every
    equity between them (each account breaker is one threshold in equity)."""
    gov, now = governor(), NOW
    for step in sequence:
        now, account, view, health = observation(gov, step, now)
        gov.observe(account, view, now, health)
    if not last:
        return
    advance, _, pnl, streak, critical, spike, _ = last[0]
    low, middle, high = sorted(equities)

    def unchanged_at(equity: int) -> bool:
        step = (advance, equity, pnl, streak, critical, spike, False)
        _, account, view, health = observation(gov, step, now)
        return gov.unchanged_by(account, view, now + timedelta(seconds=advance), health)

    if unchanged_at(low) and unchanged_at(high):
        assert unchanged_at(middle)
