"""Position monitor settings (SPEC §6)."""

from __future__ import annotations

from pydantic import Field

from quantum_trader.settings_base import Section


class MonitorSettings(Section):
    interval_s: float = Field(5.0, gt=0)
    stop_replace_min_interval_s: float = Field(60.0, ge=0)
    break_even_trigger: float = Field(0.01, gt=0)
    partial_tp_trigger: float = Field(0.04, gt=0)
    partial_tp_fraction: float = Field(0.5, gt=0, lt=1)
    trailing_trigger: float = Field(0.02, gt=0)
    trail_atr_aggressive: float = Field(0.5, gt=0)
    trail_atr_balanced: float = Field(1.0, gt=0)
    trail_atr_loose: float = Field(1.5, gt=0)
    max_hold_h: float = Field(48.0, gt=0)
