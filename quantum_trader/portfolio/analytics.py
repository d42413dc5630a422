"""Portfolio analytics (SPEC §7): account + market → exposure, heat, drawdown, VaR, ES,
correlation, effective number of positions. Pure; `quantum-trader status` prints `to_dict()`.

Money is USDT (floats: analytics, not ledger). Value at risk and expected shortfall are losses
over one bar of `market.returns`, as positive USDT, at `var_confidence`, for the positions held
now (weights = signed notional at the last price).
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from quantum_trader.domain import FloatArray, MarketView, PortfolioView, Position
from quantum_trader.domain.correlation import CorrelationMatrix, correlation_matrix
from quantum_trader.domain.views import of_equity
from quantum_trader.gates.settings import AnalyticsSettings
from quantum_trader.record import record


@record
class RiskEstimate:
    """One-bar loss estimates in USDT (positive = loss)."""

    var_historical_usdt: float
    var_parametric_usdt: float
    expected_shortfall_usdt: float
    samples: int


@record
class PortfolioReport:
    equity_usdt: float
    wallet_usdt: float
    used_margin_usdt: float
    free_margin_usdt: float
    gross_exposure_usdt: float
    net_exposure_usdt: float
    exposure_by_symbol_usdt: Mapping[str, float]
    exposure_by_sector_usdt: Mapping[str, float]
    heat: float | None  # None: no equity to measure risk against
    daily_drawdown: float
    drawdown_from_peak: float
    risk: RiskEstimate
    correlation: CorrelationMatrix
    effective_positions: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "equity_usdt": self.equity_usdt,
            "wallet_usdt": self.wallet_usdt,
            "used_margin_usdt": self.used_margin_usdt,
            "free_margin_usdt": self.free_margin_usdt,
            "gross_exposure_usdt": self.gross_exposure_usdt,
            "net_exposure_usdt": self.net_exposure_usdt,
            "exposure_by_symbol_usdt": dict(self.exposure_by_symbol_usdt),
            "exposure_by_sector_usdt": dict(self.exposure_by_sector_usdt),
            "heat": self.heat,
            "daily_drawdown": self.daily_drawdown,
            "drawdown_from_peak": self.drawdown_from_peak,
            "var_historical_usdt": self.risk.var_historical_usdt,
            "var_parametric_usdt": self.risk.var_parametric_usdt,
            "expected_shortfall_usdt": self.risk.expected_shortfall_usdt,
            "risk_samples": self.risk.samples,
            "correlation": self.correlation.to_dict(),
            "effective_positions": self.effective_positions,
        }


def signed_exposure(position: Position, market: MarketView) -> float:
    """Signed notional at the last price (entry price when the market has none)."""
    price = market.prices.get(position.symbol, position.entry_price)
    return float(position.quantity * price) * position.side.sign


def effective_positions(exposures: Mapping[str, float]) -> float:
    """1 / Σ w², w = |exposure| / gross: n for n equal positions, 0 with none."""
    gross = sum(abs(v) for v in exposures.values())
    if gross <= 0:
        return 0.0
    return 1.0 / sum((abs(v) / gross) ** 2 for v in exposures.values())


def pnl_series(
    exposures: Mapping[str, float], returns: Mapping[str, FloatArray], bars: int
) -> FloatArray:
    """Per-bar PnL in USDT the current holdings would have made over the last `bars` bars
    (symbols without returns contribute nothing; arrays aligned on their newest element)."""
    held = [s for s in exposures if s in returns and returns[s].shape[0] > 0]
    if not held:
        return np.zeros(0)
    length = min(bars, *(returns[s].shape[0] for s in held))
    rows = np.nan_to_num(np.vstack([returns[s][-length:] for s in held]))
    weights = np.array([exposures[s] for s in held])
    pnl: FloatArray = weights @ rows
    return pnl


def value_at_risk(pnl: FloatArray, confidence: float) -> RiskEstimate:
    """Historical VaR (empirical quantile), parametric VaR (normal), expected shortfall (mean
    loss beyond the historical VaR). All zero with fewer than two samples."""
    if pnl.shape[0] < 2:
        return RiskEstimate(0.0, 0.0, 0.0, int(pnl.shape[0]))
    cutoff = float(np.quantile(pnl, 1.0 - confidence))
    tail = pnl[pnl <= cutoff]
    z = NormalDist().inv_cdf(confidence)
    parametric = z * float(np.std(pnl, ddof=1)) - float(np.mean(pnl))
    return RiskEstimate(
        var_historical_usdt=max(0.0, -cutoff),
        var_parametric_usdt=max(0.0, parametric),
        expected_shortfall_usdt=max(0.0, -float(tail.mean())),
        samples=int(pnl.shape[0]),
    )


def portfolio_report(
    portfolio: PortfolioView,
    market: MarketView,
    sectors: Mapping[str, str],
    settings: AnalyticsSettings,
) -> PortfolioReport:
    """Everything SPEC §7 lists for the portfolio. A symbol missing from `sectors` is its own."""
    s = settings
    equity = float(portfolio.equity_usdt)
    exposures = {sym: signed_exposure(p, market) for sym, p in portfolio.positions.items()}
    by_sector: dict[str, float] = {}
    for sym, value in exposures.items():
        sector = sectors.get(sym, sym)
        by_sector[sector] = by_sector.get(sector, 0.0) + value
    pnl = pnl_series(exposures, market.returns, s.lookback_bars)
    return PortfolioReport(
        equity_usdt=equity,
        wallet_usdt=float(portfolio.wallet_usdt),
        used_margin_usdt=float(portfolio.used_margin_usdt),
        free_margin_usdt=float(portfolio.free_usdt),
        gross_exposure_usdt=sum(abs(v) for v in exposures.values()),
        net_exposure_usdt=sum(exposures.values()),
        exposure_by_symbol_usdt=exposures,
        exposure_by_sector_usdt=by_sector,
        heat=of_equity(float(portfolio.total_risk_usdt), equity),
        daily_drawdown=portfolio.daily_drawdown,
        drawdown_from_peak=portfolio.drawdown_from_peak,
        risk=value_at_risk(pnl, s.var_confidence),
        correlation=correlation_matrix(market.returns, list(exposures), s.lookback_bars),
        effective_positions=effective_positions(exposures),
    )
