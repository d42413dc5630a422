"""Signal sources: the rule agent and the ML ensemble (SPEC §3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from quantum_trader.settings_base import YEAR_H, CommaList, Section, above

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

    `forecast_threshold` is the |8 h return| beyond which a training label is BUY/SELL.
    Training: `training_days` of history ending at the newest common bar (or at `training_end`:
    only hourly bars closed by then, so a backtest after it is out of sample); the last
    `validation_fraction` of it is split into `walk_forward_folds` consecutive test blocks, each
    predicted by models trained only on bars whose label window ends `embargo_h` hours before
    the block starts. `tree_rounds` boosting rounds, `forecaster_steps` Adam steps; `models`
    lists the models to train.
    """

    min_models: int = Field(2, ge=1, le=4)
    max_model_age_h: float = Field(24.0 * 14, gt=0, le=10 * YEAR_H)
    forecast_horizon_h: int = Field(8, ge=1)
    lookback_bars: int = Field(168, ge=16)
    forecast_threshold: float = Field(0.004, gt=0)
    training_days: int = Field(90, ge=7)
    training_end: datetime | None = None
    seed: int = Field(7, ge=0)
    walk_forward_folds: int = Field(4, ge=1, le=12)
    validation_fraction: float = Field(0.4, gt=0, lt=1)
    embargo_h: int = Field(24, ge=0)
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
