"""The portfolio balancer's output (SPEC §4.2): risk mode, state, violations, allowed and
dropped trades, recommendations and actions. `to_dict` is the JSON written to the data dir."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from enum import StrEnum
from typing import Any

from quantum_trader.domain import ReasonCode, Side
from quantum_trader.record import record


class RiskMode(StrEnum):
    SAFE = "SAFE"
    NEUTRAL = "NEUTRAL"
    AGGRESSIVE = "AGGRESSIVE"


class Severity(StrEnum):
    WARNING = "WARNING"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


@record
class Violation:
    constraint: str
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"constraint": self.constraint, "severity": self.severity, "message": self.message}


@record
class Exposure:
    """One holding (open position or allowed candidate) as the constraints see it. USDT."""

    symbol: str
    side: Side
    notional_usdt: float
    risk_usdt: float
    margin_usdt: float
    leverage: int
    sector: str


@record
class PortfolioState:
    """Totals over open positions. Fractions of equity unless named otherwise (None: the
    equity is ≤ 0, and the fraction has no meaning)."""

    equity_usdt: float
    used_margin_usdt: float
    free_margin_usdt: float
    total_positions: int
    longs: int
    shorts: int
    gross_exposure_usdt: float
    net_exposure_usdt: float
    total_risk_usdt: float
    total_risk: float | None
    net_exposure: float | None
    effective_leverage: float | None
    by_symbol_usdt: Mapping[str, float] = field(default_factory=dict)
    by_sector_usdt: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "equity_usdt": self.equity_usdt,
            "used_margin_usdt": self.used_margin_usdt,
            "free_margin_usdt": self.free_margin_usdt,
            "total_positions": self.total_positions,
            "longs": self.longs,
            "shorts": self.shorts,
            "gross_exposure_usdt": self.gross_exposure_usdt,
            "net_exposure_usdt": self.net_exposure_usdt,
            "total_risk_usdt": self.total_risk_usdt,
            "total_risk_pct": _pct(self.total_risk),
            "net_exposure_pct": _pct(self.net_exposure),
            "effective_leverage": self.effective_leverage,
            "by_symbol_usdt": dict(self.by_symbol_usdt),
            "by_sector_usdt": dict(self.by_sector_usdt),
        }


def _pct(fraction: float | None) -> float | None:
    return fraction * 100 if fraction is not None else None


@record
class TradeDecision:
    """One candidate's outcome. `index` is its position in the cycle's candidate list."""

    index: int
    symbol: str
    side: Side
    confidence: float
    priority: float
    allowed: bool
    reason: ReasonCode
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "action": "BUY" if self.side is Side.LONG else "SELL",
            "confidence": self.confidence,
            "priority_score": round(self.priority, 4),
            "allowed": self.allowed,
            "reason": self.reason.value,
            "detail": self.detail,
        }


@record
class BalancerOutput:
    time: datetime
    risk_mode: RiskMode
    state: PortfolioState
    violations: tuple[Violation, ...]
    allowed: tuple[TradeDecision, ...]
    dropped: tuple[TradeDecision, ...]
    recommendations: tuple[str, ...]
    actions_required: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "risk_mode": self.risk_mode.value,
            "portfolio_state": self.state.to_dict(),
            "violations": [v.to_dict() for v in self.violations],
            "allowed_trades": [t.to_dict() for t in self.allowed],
            "dropped_trades": [t.to_dict() for t in self.dropped],
            "recommendations": list(self.recommendations),
            "actions_required": list(self.actions_required),
        }
