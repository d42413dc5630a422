"""Thresholds of the approval chain (SPEC §4). Fractions: 0.03 = 3 %."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from quantum_trader.settings_base import (
    DAY_S,
    MAX_LEVERAGE,
    TEN_YEARS_DAYS,
    YEAR_H,
    YEAR_S,
    JsonMapping,
    Section,
    above,
    at_least,
    at_most,
)


class RiskGuardSettings(Section):
    """The last, pre-trade check of a concrete sized order (SPEC §4.4)."""

    free_margin_buffer: float = Field(1.1, ge=1.0)
    min_balance_usdt: float = Field(100.0, ge=0)
    max_leverage: int = Field(10, ge=1, le=MAX_LEVERAGE)
    max_margin_per_trade: float = Field(0.15, gt=0, le=1)
    max_notional_exposure: float = Field(1.5, gt=0)
    max_open_positions: int = Field(15, ge=1)
    max_risk_per_trade: float = Field(0.02, gt=0, le=0.1)
    min_reward_risk: float = Field(1.5, ge=0)


class OrchestratorSettings(Section):
    """Orchestrator policy (SPEC §4.1)."""

    max_daily_drawdown: float = Field(0.03, gt=0, le=1)
    choppy_min_confidence: float = Field(0.60, ge=0, le=1)
    max_open_positions: int = Field(8, ge=1)
    min_symbol_win_rate: float = Field(0.35, ge=0, le=1)
    min_trades_for_win_rate: int = Field(10, ge=1)
    min_confidence_trending: float = Field(0.20, ge=0, le=1)
    min_confidence_ranging: float = Field(0.40, ge=0, le=1)
    min_confidence_choppy: float = Field(0.60, ge=0, le=1)
    drawdown_confidence_step_at: float = Field(0.02, ge=0, le=1)
    drawdown_confidence_add: float = Field(0.20, ge=0, le=1)
    streak_confidence_after: int = Field(3, ge=0)
    streak_confidence_add: float = Field(0.15, ge=0, le=1)
    sideways_confidence_add: float = Field(0.10, ge=0, le=1)
    uptrend_short_min_confidence: float = Field(0.80, ge=0, le=1)
    uptrend_size_factor: float = Field(1.10, gt=0)
    sideways_size_factor: float = Field(0.80, gt=0)
    choppy_size_factor: float = Field(0.5, gt=0)
    min_confidence_breakout: float = Field(0.20, ge=0, le=1)
    defensive_mode_drawdown: float = Field(0.02, ge=0, le=1)
    defensive_mode_losing_streak: int = Field(4, ge=1)
    critical_mode_drawdown: Annotated[
        float, Field(ge=0, le=1), at_least("defensive_mode_drawdown")
    ] = 0.025
    critical_mode_losing_streak: Annotated[
        int, Field(ge=1), at_least("defensive_mode_losing_streak")
    ] = 5
    normal_min_confidence: float = Field(0.20, ge=0, le=1)
    defensive_min_confidence: Annotated[
        float, Field(ge=0, le=1), at_least("normal_min_confidence")
    ] = 0.45
    critical_min_confidence: Annotated[
        float, Field(ge=0, le=1), at_least("defensive_min_confidence")
    ] = 0.70
    normal_risk_multiplier: float = Field(1.0, gt=0)
    defensive_risk_multiplier: Annotated[float, Field(gt=0), at_most("normal_risk_multiplier")] = (
        0.5
    )
    critical_risk_multiplier: Annotated[
        float, Field(gt=0), at_most("defensive_risk_multiplier")
    ] = 0.25
    tp_r_multiple_trending: float = Field(2.5, gt=0)
    tp_r_multiple_ranging: float = Field(1.5, gt=0)
    tp_r_multiple_default: float = Field(2.0, gt=0)
    stop_atr_factor_ranging: float = Field(1.25, gt=0)
    stop_atr_factor_breakout: float = Field(1.5, gt=0)


class BalancerSettings(Section):
    """Portfolio balancer constraints (SPEC §4.2)."""

    max_positions: int = Field(8, ge=1)
    max_longs: int = Field(6, ge=0)
    max_shorts: int = Field(6, ge=0)
    max_total_risk: float = Field(0.15, gt=0, le=1)
    safe_mode_total_risk: Annotated[float, Field(gt=0, le=1), at_most("max_total_risk")] = 0.12
    max_symbol_concentration: float = Field(0.30, gt=0, le=1)
    max_sector_concentration: float = Field(0.40, gt=0, le=1)
    max_correlation: float = Field(0.80, gt=0, le=1)
    max_leverage: int = Field(30, ge=1, le=MAX_LEVERAGE)
    max_net_exposure: float = Field(0.80, gt=0)
    safe_mode_daily_drawdown: float = Field(0.03, gt=0, le=1)
    safe_mode_losing_streak: int = Field(5, ge=1)
    correlation_lookback_bars: int = Field(288, ge=10)
    sectors: JsonMapping[str] = Field(
        default_factory=lambda: {
            "BTC/USDT:USDT": "Layer1",
            "ETH/USDT:USDT": "Layer1",
            "SOL/USDT:USDT": "Layer1",
            "BNB/USDT:USDT": "Exchange",
            "XRP/USDT:USDT": "Payments",
            "BCH/USDT:USDT": "Payments",
            "DOGE/USDT:USDT": "Meme",
            "INJ/USDT:USDT": "DeFi",
        }
    )
    # The sector of a symbol the map does not know: they share one sector, so the sector cap
    # also bounds the unclassified together (logged at start: market.setup).
    unknown_sector: str = Field("Other", min_length=1)
    categories: JsonMapping[str] = Field(
        default_factory=lambda: {"BTC/USDT:USDT": "CORE", "ETH/USDT:USDT": "CORE"}
    )
    category_boosts: JsonMapping[float] = Field(
        default_factory=lambda: {"CORE": 20.0, "EXPANSION": 10.0}
    )
    candidate_risk_fraction: float = Field(0.02, gt=0, le=0.1)
    candidate_stop_atr_multiple: float = Field(1.5, gt=0)
    candidate_max_margin_fraction: float = Field(0.10, gt=0, le=1)
    candidate_leverage: Annotated[int, Field(ge=1, le=MAX_LEVERAGE), at_most("max_leverage")] = 3
    stability_max_atr_pct: float = Field(0.05, gt=0)
    round_trip_cost_pct: float = Field(0.12, ge=0)
    expected_hold_h: float = Field(12.0, ge=0, le=YEAR_H)
    min_priority: float = Field(0.0)
    max_new_trades_per_cycle: int = Field(8, ge=0)
    aggressive_max_total_risk: Annotated[float, Field(ge=0, le=1), at_most("max_total_risk")] = 0.05
    aggressive_max_daily_drawdown: float = Field(0.01, ge=0, le=1)
    aggressive_max_losing_streak: int = Field(2, ge=0)


class GovernorSettings(Section):
    """Safety governor circuit breakers (SPEC §4.3)."""

    max_daily_drawdown: float = Field(0.03, gt=0, le=1)
    losing_streak_defensive: int = Field(5, ge=1)
    max_hourly_loss: float = Field(0.005, gt=0, le=1)
    max_decline_from_start: float = Field(0.05, gt=0, le=1)
    volatility_spike_sigma: float = Field(3.0, gt=0)
    correlation_spike: float = Field(0.90, gt=0, le=1)
    spike_cooldown_s: float = Field(3600.0, gt=0, le=YEAR_S)
    pause_duration_s: float = Field(3600.0, gt=0, le=YEAR_S)
    volatility_lookback_bars: int = Field(288, ge=10)
    # The market model's spike test: the last hourly return against the σ of this many hours.
    volatility_lookback_hours: int = Field(168, ge=10)
    volatility_min_bars: Annotated[
        int, Field(ge=3), at_most("volatility_lookback_bars", "volatility_lookback_hours")
    ] = 30
    correlation_lookback_bars: int = Field(288, ge=10)
    defensive_size_factor: float = Field(0.5, gt=0, le=1)


class RegimeSettings(Section):
    """Per-symbol regime detection (SPEC §3.2) and the global regime (§3.3)."""

    adx_period: int = Field(14, ge=2)
    ema_fast_period: int = Field(20, ge=2)
    ema_slow_period: Annotated[int, Field(ge=3), above("ema_fast_period")] = 50
    atr_period: int = Field(14, ge=2)
    atr_mean_days: float = Field(20.0, gt=0, le=TEN_YEARS_DAYS)
    trending_min_adx: float = Field(25.0, ge=0)
    ranging_max_adx: Annotated[float, Field(ge=0), at_most("trending_min_adx")] = 20.0
    ranging_max_atr_ratio: float = Field(1.0, gt=0)
    breakout_min_atr_ratio: Annotated[float, Field(gt=0), at_least("ranging_max_atr_ratio")] = 1.5
    range_break_bars: int = Field(20, ge=2)
    global_ema_days: int = Field(200, ge=2, le=TEN_YEARS_DAYS)
    global_band: float = Field(0.10, gt=0, lt=1)


class PerformanceSettings(Section):
    """Symbol performance (SPEC §7). Its sizing multiplier (§5.2) is the sizer's:
    `sizing.multipliers.symbol_*`."""

    disable_after_losses: int = Field(10, ge=1)
    disable_hours: float = Field(48.0, gt=0, le=YEAR_H)
    # The account's losing streak stops counting this long after its last loss: a streak that
    # pauses trading (balancer SAFE, governor DEFENSIVE_EXIT) must not be able to end it.
    losing_streak_expiry_h: float = Field(24.0, gt=0, le=YEAR_H)
    blacklist_after_losses: Annotated[int, Field(ge=1), at_least("disable_after_losses")] = 20
    rolling_trades: int = Field(20, ge=1)
    # No entry on a symbol this long after a trade of it closed FILL_OFF_PLAN (its entry filled
    # at or past its own stop or target, exited at once): the next cycle's same signal would
    # plan the same entry and pay the fees again. An hour outlasts the longest bar (1 h); 0: none.
    fill_off_plan_hold_s: float = Field(3600.0, ge=0, le=DAY_S)


class AnalyticsSettings(Section):
    """Portfolio risk analytics (SPEC §7): VaR level and the returns window."""

    var_confidence: float = Field(0.95, gt=0.5, lt=1)
    lookback_bars: int = Field(288, ge=10)
