"""Sizing and cost model settings (SPEC §5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quantum_trader.settings_base import Section

SizingMethod = Literal["math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "rl"]


class SizingSettings(Section):
    """The math sizer and its alternatives."""

    method: SizingMethod = "math"
    risk_per_trade: float = Field(0.02, gt=0, le=0.1)
    max_margin_fraction: float = Field(0.10, gt=0, le=1)
    stop_atr_multiple: float = Field(1.5, gt=0)
    tp_r_multiple: float = Field(2.0, gt=0)
    tp_r_multiple_trending: float = Field(2.5, gt=0)
    tp_r_multiple_ranging: float = Field(1.5, gt=0)
    default_leverage: int = Field(3, ge=1)
    max_leverage: int = Field(10, ge=1, le=125)
    kelly_fraction: float = Field(0.5, gt=0, le=1)
    min_stop_pct: float = Field(0.002, gt=0, lt=1)
    max_stop_pct: float = Field(0.10, gt=0, lt=1)
    kelly_min_trades: int = Field(10, ge=1)
    max_risk_fraction: float = Field(0.02, gt=0, le=0.1)


class CostSettings(Section):
    """Fees, slippage and funding (SPEC §5.5). Fractions: 0.0004 = 0.04 %."""

    maker_fee: float = Field(0.0002, ge=0, lt=0.01)
    taker_fee: float = Field(0.0004, ge=0, lt=0.01)
    slippage_small: float = Field(0.0002, ge=0, lt=0.05)
    slippage_large: float = Field(0.0005, ge=0, lt=0.05)
    slippage_high_volatility_add: float = Field(0.0002, ge=0, lt=0.05)
    large_order_notional_usdt: float = Field(50_000.0, gt=0)
    high_volatility_atr_pct: float = Field(0.03, gt=0)
    expected_hold_h: float = Field(12.0, ge=0)
