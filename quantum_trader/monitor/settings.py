"""Position monitor settings (SPEC §6). Fractions of the entry price: 0.01 = 1 %."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from quantum_trader.domain.enums import TrailMode
from quantum_trader.settings_base import DAY_S, YEAR_H, Section, at_least


class MonitorSettings(Section):
    """Triggers and trailing for the 5 s position monitor.

    `break_even_offset_pct` puts the break-even stop that far beyond the entry in the position's
    favour, so a break-even exit pays its costs: 0.0012 = taker fee in and out (2 × 0.04 %) plus
    2 bps slippage each way (the cost model's defaults). Zero puts it exactly at the entry, as in
    the SPEC's trailing example.

    `stop_stuck_after_s`: a protective stop that met its trigger but is still not done that
    long after (Binance has left such orders in TRIGGERING for good) no longer counts as the
    position's protection: another is placed beside it (keeper/protect.py).

    `take_profit_retry_s`: a position's take-profit placed again (keeper/target.py) that the
    exchange refused, or that a rate limit kept from going out, is tried again no sooner than
    this (one warning an episode, not one a tick); the stop and the stop maths' exit at the
    target protect meanwhile.

    The orchestrator's exit mode picks each position's base trail mode. Both default to BALANCED
    (1 × ATR, the SPEC's "trail at 1×ATR"): SPEC §4.1 asks for *tight* trailing when TRENDING, so
    TREND_FOLLOW is not LOOSE, and keeping DEFENSIVE_TRAIL at BALANCED leaves the governor's
    DEFENSIVE_EXIT and the TRENDING → CHOPPY turn something to tighten to (AGGRESSIVE).
    """

    interval_s: float = Field(5.0, gt=0, le=DAY_S)
    stop_replace_min_interval_s: float = Field(60.0, ge=0, le=DAY_S)
    stop_stuck_after_s: float = Field(30.0, gt=0, le=DAY_S)
    take_profit_retry_s: float = Field(60.0, gt=0, le=DAY_S)
    break_even_trigger: float = Field(0.01, gt=0)
    break_even_offset_pct: float = Field(0.0012, ge=0, lt=0.01)
    partial_tp_trigger: float = Field(0.04, gt=0)
    partial_tp_fraction: float = Field(0.5, gt=0, lt=1)
    trailing_trigger: float = Field(0.02, gt=0)
    trail_atr_aggressive: float = Field(0.5, gt=0)
    trail_atr_balanced: Annotated[float, Field(gt=0), at_least("trail_atr_aggressive")] = 1.0
    trail_atr_loose: Annotated[float, Field(gt=0), at_least("trail_atr_balanced")] = 1.5
    trail_mode_trend_follow: TrailMode = TrailMode.BALANCED
    trail_mode_defensive_trail: TrailMode = TrailMode.BALANCED
    max_hold_h: float = Field(48.0, gt=0, le=YEAR_H)
