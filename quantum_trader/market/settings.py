"""Settings of the market package: the universe rule (market.universe)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from quantum_trader.settings_base import TEN_YEARS_DAYS, Section


class UniverseSettings(Section):
    """`rule` fixed: trade market.symbols. top_volume: the `top_n` USDT perpetuals by 24 h
    quote volume, listed at least `min_listing_days`, minus `blacklist` — from the exchange at
    start and every `refresh_s` in testnet/live (also re-reading the leverage brackets, for a
    fixed list too), from the recorded data (the day before the start) in paper mode and
    backtests, once."""

    rule: Literal["fixed", "top_volume"] = "fixed"
    top_n: int = Field(8, ge=1, le=200)
    min_listing_days: float = Field(30.0, ge=0, le=TEN_YEARS_DAYS)
    refresh_s: float = Field(86_400.0, ge=60.0, le=30 * 86_400.0)
    blacklist: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("blacklist", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value
