"""What the gates and the sizer see at one instant: the account and the market."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain.correlation import CorrelationMatrix
from quantum_trader.domain.enums import GlobalRegime, Regime
from quantum_trader.domain.market import FloatArray, MarketRules
from quantum_trader.domain.performance import SymbolStats
from quantum_trader.domain.trading import ZERO, Position
from quantum_trader.record import once, open_record, record


@open_record
class PortfolioView:
    """The account. Percentages are fractions (0.03 = 3 %).

    Not slotted, so the derived figures are computed once per view (the gates ask for the
    daily drawdown once per candidate and rule)."""

    equity_usdt: Decimal
    wallet_usdt: Decimal
    free_usdt: Decimal
    used_margin_usdt: Decimal
    positions: Mapping[str, Position]
    starting_balance_usdt: Decimal
    day_start_equity_usdt: Decimal
    peak_equity_usdt: Decimal
    losing_streak: int = 0
    pnl_last_hour_usdt: Decimal = ZERO
    symbol_stats: Mapping[str, SymbolStats] = field(default_factory=dict)

    @once
    def daily_drawdown(self) -> float:
        """Loss since the start of the UTC day as a fraction of that day's starting equity."""
        return loss_fraction(self.equity_usdt, self.day_start_equity_usdt)

    @once
    def drawdown_from_peak(self) -> float:
        return loss_fraction(self.equity_usdt, self.peak_equity_usdt)

    @once
    def decline_from_start(self) -> float:
        return loss_fraction(self.equity_usdt, self.starting_balance_usdt)

    @once
    def gross_notional_usdt(self) -> Decimal:
        return sum((p.notional_usdt for p in self.positions.values()), ZERO)

    @once
    def total_risk_usdt(self) -> Decimal:
        """Sum of loss-at-stop over open positions (positions locked in profit count zero)."""
        return sum((max(p.risk_usdt, ZERO) for p in self.positions.values()), ZERO)


def loss_fraction(equity: Decimal, reference: Decimal) -> float:
    """max(0, 1 − equity / reference); 0.0 for a reference ≤ 0. Asked every cycle: no
    division when equity is at or above the reference (the quotient would round to ≥ 1)."""
    if reference <= 0 or equity >= reference:
        return 0.0
    loss = float(1 - equity / reference)
    return loss if loss > 0.0 else 0.0  # max(0.0, loss) by a comparison: ≈ 1,400 fewer


def of_equity(value: float, equity: float) -> float | None:
    """`value` as a fraction of `equity`; None where that has no meaning (equity ≤ 0 and
    something to divide), so a report never shows an account without equity as riskless."""
    if equity > 0:
        return value / equity
    return 0.0 if value == 0 else None


@record
class MarketView:
    """The market as of `time`: last prices, exchange rules, volatility and regimes."""

    time: datetime
    prices: Mapping[str, Decimal]
    rules: Mapping[str, MarketRules]
    atr_pct: Mapping[str, float]
    regimes: Mapping[str, Regime] = field(default_factory=dict)
    global_regime: GlobalRegime = GlobalRegime.SIDEWAYS
    returns: Mapping[str, FloatArray] = field(default_factory=dict)
    funding_rate_8h: Mapping[str, float] = field(default_factory=dict)
    # Market statistics the model computes once (SPEC §11), so gates never recompute them:
    # each symbol's last closed hourly return in σ of the hourly returns before it, and the
    # pairwise correlations of recent returns.
    return_zscore: Mapping[str, float] = field(default_factory=dict)
    correlations: CorrelationMatrix | None = None
