"""Signal sources: the rule agent and the ML ensemble (SPEC §3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quantum_trader.settings_base import Section


class SignalsSettings(Section):
    """`source` None picks the ensemble when trained models exist, else the rule agent."""

    source: Literal["ensemble", "rules"] | None = None
    rules_fast_ema: int = Field(20, ge=2)
    rules_slow_ema: int = Field(50, ge=3)
    rules_rsi_period: int = Field(14, ge=2)
    rules_adx_period: int = Field(14, ge=2)


class EnsembleSettings(Section):
    min_models: int = Field(2, ge=1, le=4)
    max_model_age_h: float = Field(24.0 * 14, gt=0)
    forecast_horizon_h: int = Field(8, ge=1)
    lookback_bars: int = Field(168, ge=16)
    forecast_threshold: float = Field(0.004, gt=0)
    training_days: int = Field(90, ge=7)
