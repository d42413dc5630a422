"""Issue 3: the safety governor through the real 2025-10-10 liquidation cascade.

The real core (app.assemble over a PrecomputedMarket of the bundled 5 m sample, the paper
exchange, the rule agent) plays the scenario of scenario_drop.py. Every step is checked
against the SPEC §4.3 thresholds with the portfolio and market the governor saw at that
instant, in both directions: a trip means its condition held, a condition means its trip.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from scenario_drop import PROBE_AT, RESET_AT, SEED_AT, Scenario, play

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import ExitReason, MarketView, PortfolioView, ReasonCode
from quantum_trader.gates.governor import Breaker, GovernorDecision, TradingState
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.ops.governor_keeper import load_governor

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return asyncio.run(play())


def hourly_loss(portfolio: PortfolioView) -> float:
    return float(-portfolio.pnl_last_hour_usdt / portfolio.equity_usdt)


def daily_drawdown(portfolio: PortfolioView) -> float:
    return float(1 - portfolio.equity_usdt / portfolio.day_start_equity_usdt)


def decline(portfolio: PortfolioView) -> float:
    return float(1 - portfolio.equity_usdt / portfolio.starting_balance_usdt)


@functools.cache
def hourly_closes(symbol: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The recorded 1 h bars of the bundled sample (its own file, not the model's resampling)."""
    bars = CandleStore(bundled_sample_dir()).load_bars(symbol, "1h")
    return bars.time_ms, bars.close


def hourly_zscore(symbol: str, now: datetime, lookback_hours: int) -> float:
    """The last closed hour's return in standard deviations of the `lookback_hours` before it."""
    times, closes = hourly_closes(symbol)
    closed = int(np.searchsorted(times, ms_from_utc(now) - HOUR_MS, side="right"))
    returns = np.diff(closes[:closed]) / closes[: closed - 1]
    history = returns[-lookback_hours - 1 : -1]
    return float(returns[-1] / np.std(history))


def spiking_symbols(market: MarketView, sigma: float, lookback_hours: int) -> set[str]:
    """Symbols whose last closed hourly return lies beyond `sigma` σ (SPEC §4.3)."""
    return {
        symbol
        for symbol in market.prices
        if abs(hourly_zscore(symbol, market.time, lookback_hours)) > sigma
    }


def next_midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0) + timedelta(days=1)


def test_the_cascade_trips_the_spec_breakers_in_order(scenario: Scenario) -> None:
    first = {
        breaker: scenario.trips_at(breaker)[0][0].now
        for breaker in (
            Breaker.VOLATILITY_SPIKE,
            Breaker.DAILY_DRAWDOWN,
            Breaker.TOTAL_DECLINE,
            Breaker.HOURLY_LOSS,
            Breaker.LOSING_STREAK,
        )
        if scenario.trips_at(breaker)
    }
    assert len(first) == 5, f"breakers that tripped: {sorted(first)}"
    # Unrealized losses first (drawdown, then the decline that flattens the book), then the
    # realized loss of that flattening (hourly loss, losing streak) at the next observation.
    assert SEED_AT < first[Breaker.VOLATILITY_SPIKE] <= first[Breaker.DAILY_DRAWDOWN]
    assert first[Breaker.DAILY_DRAWDOWN] < first[Breaker.TOTAL_DECLINE]
    assert first[Breaker.TOTAL_DECLINE] < first[Breaker.HOURLY_LOSS]
    assert first[Breaker.HOURLY_LOSS] == first[Breaker.LOSING_STREAK]


def test_account_trips_happen_beyond_their_thresholds(scenario: Scenario) -> None:
    s = scenario.settings
    for step, trip in scenario.trips_at(Breaker.DAILY_DRAWDOWN):
        assert daily_drawdown(step.portfolio) > s.max_daily_drawdown
        assert trip.decision is GovernorDecision.NO_NEW_TRADES
        assert trip.until == next_midnight(step.now)
    for step, trip in scenario.trips_at(Breaker.HOURLY_LOSS):
        assert hourly_loss(step.portfolio) > s.max_hourly_loss
        assert trip.decision is GovernorDecision.PAUSE_1H
        assert trip.until == step.now + timedelta(seconds=s.pause_duration_s)
    for step, trip in scenario.trips_at(Breaker.TOTAL_DECLINE):
        assert decline(step.portfolio) > s.max_decline_from_start
        assert trip.decision is GovernorDecision.EMERGENCY_SHUTDOWN
        assert trip.until is None
    for step, trip in scenario.trips_at(Breaker.LOSING_STREAK):
        assert step.portfolio.losing_streak >= s.losing_streak_defensive
        assert trip.decision is GovernorDecision.DEFENSIVE_EXIT


def test_market_trips_happen_beyond_their_thresholds(scenario: Scenario) -> None:
    s = scenario.settings
    spikes = scenario.trips_at(Breaker.VOLATILITY_SPIKE)
    for step, trip in spikes:
        symbol = trip.detail.split(" ", 1)[0]
        z = hourly_zscore(symbol, step.now, s.volatility_lookback_hours)
        assert abs(z) > s.volatility_spike_sigma
        assert trip.until == step.now + timedelta(seconds=s.spike_cooldown_s)
    for step, _trip in scenario.trips_at(Breaker.CORRELATION_SPIKE):
        assert step.market.correlations is not None
        assert step.market.correlations.mean_pairwise() > s.correlation_spike


def test_no_breaker_condition_goes_unnoticed(scenario: Scenario) -> None:
    """The converse: whenever a condition holds at an observation, its trip is in force."""
    s = scenario.settings
    after_reset = False
    for step in scenario.steps:
        after_reset = after_reset or step.now >= RESET_AT
        active = {t.breaker for t in step.after.trips}
        p = step.portfolio
        if daily_drawdown(p) > s.max_daily_drawdown:
            assert Breaker.DAILY_DRAWDOWN in active, step.now
        if hourly_loss(p) > s.max_hourly_loss:
            assert Breaker.HOURLY_LOSS in active, step.now
        if decline(p) > s.max_decline_from_start and not after_reset:
            assert Breaker.TOTAL_DECLINE in active, step.now
        if spiking_symbols(step.market, s.volatility_spike_sigma, s.volatility_lookback_hours):
            assert Breaker.VOLATILITY_SPIKE in active, step.now


def test_emergency_shutdown_closes_every_position_and_its_orders(scenario: Scenario) -> None:
    (step, _trip), *_ = scenario.trips_at(Breaker.TOTAL_DECLINE)
    assert len(step.portfolio.positions) == scenario.seeded  # the whole book was still open
    assert step.positions_after == 0
    trades = asyncio.run(scenario.run.repository.closed_trades())
    emergency = [t for t in trades if t.exit_reason is ExitReason.EMERGENCY]
    assert len(emergency) == scenario.seeded
    assert {t.closed_at for t in emergency} == {step.now}


def test_nothing_is_left_on_the_exchange_after_the_shutdown(scenario: Scenario) -> None:
    """The shutdown flattened everything; what the exchange holds at the end of the night was
    opened after the operator's reset (trading resumes then)."""
    (step, _trip), *_ = scenario.trips_at(Breaker.TOTAL_DECLINE)
    assert step.positions_after == 0
    exchange, repository = scenario.run.exchange, scenario.run.repository
    placed = {o.client_order_id: o.created_at for o in asyncio.run(repository.orders())}
    held = asyncio.run(exchange.fetch_positions())
    ledger = scenario.run.core.keeper.positions
    assert {p.symbol for p in held} == set(ledger)
    for position in ledger.values():
        assert placed[position.entry_order_id] >= RESET_AT
    for order in asyncio.run(exchange.fetch_open_conditional_orders()):
        assert placed[order.client_order_id] >= RESET_AT


def test_no_entry_order_while_the_governor_is_not_active(scenario: Scenario) -> None:
    orders = asyncio.run(scenario.run.repository.orders())
    entries = {o.created_at for o in orders if not o.reduce_only}
    halted = [s for s in scenario.steps if s.after.trading_state is not TradingState.ACTIVE]
    assert len(halted) > 100  # the cascade halts trading for most of the night
    for step in halted:
        assert step.summary.opened == 0, step.now
        assert step.now not in entries, step.now


def test_the_trader_refuses_an_entry_that_bypasses_the_gates_during_the_halt(
    scenario: Scenario,
) -> None:
    assert scenario.probe is not None, "an entry was accepted while the governor was halted"
    assert scenario.probe.reason is ReasonCode.REDUCING_ONLY
    orders = asyncio.run(scenario.run.repository.orders())
    assert all(o.reduce_only or o.created_at != PROBE_AT for o in orders)


def test_the_emergency_halt_lasts_until_the_operator_resets_it(scenario: Scenario) -> None:
    (tripped, _), *_ = scenario.trips_at(Breaker.TOTAL_DECLINE)
    for step in scenario.steps:
        if tripped.now <= step.now < RESET_AT:
            assert step.after.emergency_shutdown_requested, step.now
            assert step.after.trading_state is TradingState.HALTED


def test_after_the_reset_the_decline_is_measured_afresh(
    scenario: Scenario,
) -> None:
    after = [s for s in scenario.steps if s.now >= RESET_AT]
    first = after[0]
    assert decline(first.portfolio) > scenario.settings.max_decline_from_start
    assert first.after.baseline_equity_usdt == first.portfolio.equity_usdt
    assert all(not s.after.emergency_shutdown_requested for s in after)
    assert first.after.trading_state is TradingState.ACTIVE


def test_the_halt_is_durable_in_the_repository(scenario: Scenario) -> None:
    restored = asyncio.run(load_governor(scenario.settings, scenario.run.repository)).state
    last = scenario.steps[-1].after
    assert restored.trips == last.trips
    assert restored.baseline_equity_usdt == last.baseline_equity_usdt
