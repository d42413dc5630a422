"""Cost model (SPEC §5.5): fees, slippage, funding. Paper fills and the sizer use the same one.

Rates are fractions of notional: 0.0004 = 0.04 % = 4 bps. A positive cost is money paid.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantum_trader.domain import Side
from quantum_trader.sizing.settings import CostSettings


@dataclass(frozen=True, slots=True)
class TradeCosts:
    """Expected costs of one round trip, in USDT."""

    entry_fee_usdt: float
    exit_fee_usdt: float
    slippage_usdt: float
    funding_usdt: float

    @property
    def total_usdt(self) -> float:
        return self.entry_fee_usdt + self.exit_fee_usdt + self.slippage_usdt + self.funding_usdt


@dataclass(frozen=True, slots=True)
class CostModel:
    settings: CostSettings

    def fee_rate(self, *, is_maker: bool) -> float:
        return self.settings.maker_fee if is_maker else self.settings.taker_fee

    def slippage_rate(self, notional_usdt: float, atr_pct: float) -> float:
        """2 bps for a small order, 5 bps for a large one, +2 bps when volatility is high."""
        s = self.settings
        rate = (
            s.slippage_large if notional_usdt >= s.large_order_notional_usdt else s.slippage_small
        )
        if atr_pct >= s.high_volatility_atr_pct:
            rate += s.slippage_high_volatility_add
        return rate

    def funding_usdt(
        self, notional_usdt: float, rate_8h: float, side: Side, hold_h: float
    ) -> float:
        """Funding paid over `hold_h` hours: longs pay a positive rate, shorts receive it."""
        return notional_usdt * rate_8h * (hold_h / 8.0) * side.sign

    def round_trip(
        self,
        notional_usdt: float,
        atr_pct: float,
        side: Side,
        rate_8h: float = 0.0,
        hold_h: float | None = None,
    ) -> TradeCosts:
        """Taker in and out (market entry, stop-market exit), slippage both ways, funding."""
        taker = self.fee_rate(is_maker=False)
        slip = self.slippage_rate(notional_usdt, atr_pct)
        hours = self.settings.expected_hold_h if hold_h is None else hold_h
        return TradeCosts(
            entry_fee_usdt=notional_usdt * taker,
            exit_fee_usdt=notional_usdt * taker,
            slippage_usdt=2 * notional_usdt * slip,
            funding_usdt=self.funding_usdt(notional_usdt, rate_8h, side, hours),
        )

    def round_trip_at(
        self,
        quantity: float,
        entry_price: float,
        exit_price: float,
        atr_pct: float,
        side: Side,
        rate_8h: float = 0.0,
        hold_h: float | None = None,
    ) -> TradeCosts:
        """Taker in at `entry_price`, taker out at `exit_price` (e.g. the stop), slippage on
        both legs at the entry order's tier, funding on the entry notional over the hold."""
        entry_notional = quantity * entry_price
        exit_notional = quantity * exit_price
        taker = self.fee_rate(is_maker=False)
        slip = self.slippage_rate(entry_notional, atr_pct)
        hours = self.settings.expected_hold_h if hold_h is None else hold_h
        return TradeCosts(
            entry_fee_usdt=entry_notional * taker,
            exit_fee_usdt=exit_notional * taker,
            slippage_usdt=(entry_notional + exit_notional) * slip,
            funding_usdt=self.funding_usdt(entry_notional, rate_8h, side, hours),
        )
