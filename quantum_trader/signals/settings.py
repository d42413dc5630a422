"""Signal sources: the rule agent and the ML ensemble (SPEC §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from quantum_trader.settings_base import (
    MAX_SEED,
    MAX_USDT,
    TEN_YEARS_DAYS,
    YEAR_H,
    CommaList,
    Section,
    above,
)

ModelName = Literal["xgboost", "lightgbm", "nhits", "patchtst"]


class SignalsSettings(Section):
    """`source` None picks the ensemble when trained models exist, else the rule agent."""

    source: Literal["ensemble", "rules"] | None = None
    rules_fast_ema: int = Field(20, ge=2)
    rules_slow_ema: Annotated[int, Field(ge=3), above("rules_fast_ema")] = 50
    rules_rsi_period: int = Field(14, ge=2)
    rules_adx_period: int = Field(14, ge=2)


class EnsembleSettings(Section):
    """The ML ensemble (SPEC §3.1).

    Labels (signals/labels.py): each (symbol, hour) and side is labelled by the trade the sizer
    and the monitor would make there, in R after costs, for an order of `label_notional_usdt`
    (its slippage tier). Models output calibrated P(R > 0) and expected R per side; a model
    votes for a side only when its expected R exceeds `min_expected_r` (the decision rule in
    money: default a margin of 0.05 R above break-even after costs). `side_source` "models"
    lets the models pick the side; "rules" is meta-labeling: the rule agent proposes the side
    and the models decide whether to take it. The forecasters predict the next
    `forecast_horizon_h` hours from the last `lookback_bars` hours.

    Training: `training_days` of history ending at the newest common bar (or at `training_end`:
    only hourly bars closed by then, so a backtest after it is out of sample); the last
    `validation_fraction` of it is split into `walk_forward_folds` consecutive test blocks (by
    scikit-learn's TimeSeriesSplit), each predicted by models trained only on rows whose label
    window ended `embargo_h` hours before the block starts. Each block is calibrated on the
    out-of-fold predictions of the blocks before it, so the first block only calibrates (with one
    block nothing is scored out of sample; the saved calibration still comes from it).
    `tree_rounds` boosting rounds, `forecaster_steps` Adam steps; `models` lists the models.
    """

    min_models: int = Field(2, ge=1, le=4)
    max_model_age_h: float = Field(24.0 * 14, gt=0, le=10 * YEAR_H)
    min_expected_r: float = Field(0.05, ge=-1.0, le=5.0)
    side_source: Literal["models", "rules"] = "models"
    label_notional_usdt: float = Field(3_000.0, gt=0, le=MAX_USDT)
    forecast_horizon_h: int = Field(8, ge=1, le=int(YEAR_H))
    lookback_bars: int = Field(168, ge=16)
    training_days: int = Field(90, ge=7, le=TEN_YEARS_DAYS)
    training_end: datetime | None = None
    seed: int = Field(7, ge=0, le=MAX_SEED)
    walk_forward_folds: int = Field(5, ge=1, le=12)
    validation_fraction: float = Field(0.5, gt=0, lt=1)
    embargo_h: int = Field(24, ge=0, le=int(YEAR_H))
    tree_rounds: int = Field(250, ge=10)
    forecaster_steps: int = Field(300, ge=10)
    torch_threads: int = Field(2, ge=1, le=2)
    models: CommaList[ModelName] = ("xgboost", "lightgbm", "nhits", "patchtst")

    @field_validator("models")
    @classmethod
    def _enough_models(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        """Each model once, and at least `min_models` of them (else no vote is ever cast)."""
        if len(set(value)) != len(value):
            raise ValueError("models must not repeat")
        minimum = info.data.get("min_models")
        if minimum is not None and len(value) < minimum:
            raise ValueError(f"lists {len(value)} of them, fewer than min_models ({minimum})")
        return value

    @field_validator("training_end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Read a date without a time zone as UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
