"""Execution settings: how startup reconciliation protects positions it adopts (SPEC §9)."""

from __future__ import annotations

from pydantic import Field

from quantum_trader.settings_base import Section


class ReconcileSettings(Section):
    """How an adopted position is protected: its initial stop distance is not known."""

    adopt_stop_pct: float = Field(0.03, gt=0, lt=1)
    adopt_reward_risk: float = Field(2.0, gt=0)
