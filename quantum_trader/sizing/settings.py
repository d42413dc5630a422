"""Sizing and cost model settings (SPEC §5)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from quantum_trader.settings_base import MAX_LEVERAGE, YEAR_H, Section, at_least, at_most

SizingMethod = Literal[
    "math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "cvar", "rl"
]


class MultiplierSettings(Section):
    """Bounded size multipliers (SPEC §5.2). Each factor is clamped to its own [low, high]."""

    policy_low: float = Field(0.0, ge=0)
    policy_high: Annotated[float, Field(gt=0), at_least("policy_low")] = 1.5
    uptrend_factor: float = Field(1.10, gt=0)
    sideways_factor: float = Field(0.80, gt=0)
    downtrend_factor: float = Field(1.0, gt=0)
    symbol_min_trades: int = Field(10, ge=1)
    symbol_high_win_rate: float = Field(0.55, ge=0, le=1)
    symbol_high_factor: float = Field(1.1, gt=0)
    symbol_weak_win_rate: Annotated[float, Field(ge=0, le=1), at_most("symbol_high_win_rate")] = (
        0.45
    )
    symbol_weak_factor: float = Field(0.7, gt=0)
    symbol_poor_win_rate: Annotated[float, Field(ge=0, le=1), at_most("symbol_weak_win_rate")] = (
        0.35
    )
    symbol_poor_factor: float = Field(0.5, gt=0)
    performance_low: float = Field(0.7, gt=0)
    performance_high: Annotated[float, Field(gt=0), at_least("performance_low")] = 1.3
    performance_min_trades: int = Field(5, ge=2)
    diversification_threshold: float = Field(0.3, ge=0, lt=1)
    diversification_floor: float = Field(0.5, gt=0, le=1)
    total_low: float = Field(0.0, ge=0)
    total_high: Annotated[float, Field(gt=0), at_least("total_low")] = 1.5


class LifecycleSettings(Section):
    """Lifecycle stages (SPEC §5.4): base allocations, per-stage total caps, transitions.

    Off by default. When on, a symbol without a record starts in PAPER: it trades only in the
    paper book (sizing/paper_book.py) until its paper record earns DISCOVERY.
    """

    enabled: bool = False
    base_discovery: float = Field(0.02, ge=0, le=1)
    base_validation: float = Field(0.05, ge=0, le=1)
    base_mature: float = Field(0.10, gt=0, le=1)
    base_decay: float = Field(0.03, ge=0, le=1)
    cap_discovery: Annotated[float, Field(ge=0, le=1), at_least("base_discovery")] = 0.05
    cap_validation: Annotated[float, Field(ge=0, le=1), at_least("base_validation")] = 0.15
    cap_mature: Annotated[float, Field(ge=0, le=1), at_least("base_mature")] = 0.30
    cap_decay: Annotated[float, Field(ge=0, le=1), at_least("base_decay")] = 0.10
    paper_trades_to_discovery: int = Field(10, ge=0)
    discovery_trades_to_validation: int = Field(20, ge=1)
    validation_trades_to_mature: int = Field(50, ge=1)
    promote_min_sharpe: float = Field(0.5)
    promote_min_win_rate: float = Field(0.45, ge=0, le=1)
    mature_min_sharpe: float = Field(1.0)
    decay_below_sharpe: float = Field(0.0)
    decay_below_win_rate: float = Field(0.35, ge=0, le=1)
    paper_below_sharpe: float = Field(-0.5)
    recover_min_sharpe: float = Field(0.5)


class RLSettings(Section):
    """Q-learning sizing agent (SPEC §5.6)."""

    alpha: float = Field(0.15, gt=0, le=1)
    gamma: float = Field(0.95, ge=0, le=1)
    epsilon: float = Field(0.10, ge=0, le=1)
    seed: int = 0


class SizingSettings(Section):
    """The math sizer and its alternatives."""

    method: SizingMethod = "math"
    risk_per_trade: float = Field(0.02, gt=0, le=0.1)
    max_margin_fraction: float = Field(0.10, gt=0, le=1)
    stop_atr_multiple: float = Field(1.5, gt=0)
    tp_r_multiple: float = Field(2.0, gt=0)
    tp_r_multiple_trending: float = Field(2.5, gt=0)
    tp_r_multiple_ranging: float = Field(1.5, gt=0)
    default_leverage: int = Field(3, ge=1, le=MAX_LEVERAGE)
    max_leverage: Annotated[int, Field(ge=1, le=MAX_LEVERAGE), at_least("default_leverage")] = 10
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    min_stop_pct: float = Field(0.002, gt=0, lt=1)
    max_stop_pct: Annotated[float, Field(gt=0, lt=1), at_least("min_stop_pct")] = 0.10
    kelly_min_trades: int = Field(10, ge=1)
    max_risk_fraction: Annotated[float, Field(gt=0, le=0.1), at_least("risk_per_trade")] = 0.02
    # The entry's expected slippage (cost model) at most this share of the nearer exit's
    # distance: beyond the book's depth a fill's own impact would carry it past the target.
    max_slippage_stop_share: float = Field(0.25, gt=0, le=1)
    cvar_level: float = Field(0.95, gt=0.5, lt=1)
    cvar_min_returns: int = Field(20, ge=5)
    volatility_target_atr_pct: float = Field(0.02, gt=0)
    multipliers: MultiplierSettings = MultiplierSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    rl: RLSettings = RLSettings()


class CostSettings(Section):
    """Fees, slippage and funding (SPEC §5.5). Fractions: 0.0004 = 0.04 %."""

    maker_fee: float = Field(0.0002, ge=0, lt=0.01)
    taker_fee: float = Field(0.0004, ge=0, lt=0.01)
    slippage_small: float = Field(0.0002, ge=0, lt=0.05)
    slippage_large: Annotated[float, Field(ge=0, lt=0.05), at_least("slippage_small")] = 0.0005
    slippage_high_volatility_add: float = Field(0.0002, ge=0, lt=0.05)
    small_order_notional_usdt: float = Field(10_000.0, gt=0)
    large_order_notional_usdt: Annotated[
        float, Field(gt=0), at_least("small_order_notional_usdt")
    ] = 50_000.0
    normal_volatility_atr_pct: float = Field(0.015, ge=0)
    high_volatility_atr_pct: Annotated[
        float, Field(gt=0), at_least("normal_volatility_atr_pct")
    ] = 0.03
    expected_hold_h: float = Field(12.0, ge=0, le=YEAR_H)
