"""Cost model (SPEC §5.5): fees, slippage, funding. Paper fills and the sizer use the same one.

Rates are fractions of notional: 0.0004 = 0.04 % = 4 bps. A positive cost is money paid.
"""

from __future__ import annotations

import math

from quantum_trader.domain import Side
from quantum_trader.record import record
from quantum_trader.sizing.settings import CostSettings


@record
class TradeCosts:
    """Expected costs of one round trip, in USDT."""

    entry_fee_usdt: float
    exit_fee_usdt: float
    slippage_usdt: float
    funding_usdt: float

    @property
    def total_usdt(self) -> float:
        return self.entry_fee_usdt + self.exit_fee_usdt + self.slippage_usdt + self.funding_usdt


@record
class CostModel:
    settings: CostSettings

    def fee_rate(self, *, is_maker: bool) -> float:
        return self.settings.maker_fee if is_maker else self.settings.taker_fee

    def slippage_rate(self, notional_usdt: float, atr_pct: float) -> float:
        """Slippage as a fraction of notional, never falling with size or volatility.

        Anchors (SPEC §5.5): 2 bps up to the small-order notional, rising linearly to 5 bps at
        the large-order notional, then as √(notional ÷ large) (market impact). Volatility adds
        nothing up to the normal ATR%, +2 bps at the high ATR%, linearly in between and beyond.
        """
        return self._size_slippage(notional_usdt) + self._volatility_slippage(atr_pct)

    def _size_slippage(self, notional_usdt: float) -> float:
        s = self.settings
        # max(notional, 0.0) by a comparison: in 3.11 a two-value max() parses its keywords
        # at every call (≈ 1,400 instructions), and the balancer prices every candidate.
        if math.isfinite(notional_usdt):
            notional = 0.0 if notional_usdt < 0.0 else notional_usdt
        else:
            notional = math.inf
        if notional <= s.small_order_notional_usdt:
            return s.slippage_small
        if notional >= s.large_order_notional_usdt:
            return s.slippage_large * math.sqrt(notional / s.large_order_notional_usdt)
        span = s.large_order_notional_usdt - s.small_order_notional_usdt
        share = (notional - s.small_order_notional_usdt) / span if span > 0 else 1.0
        return s.slippage_small + (s.slippage_large - s.slippage_small) * share

    def notional_within_slippage(self, max_rate: float, atr_pct: float) -> float:
        """The largest notional whose `slippage_rate` is at most `max_rate` (the market's depth
        as the model sees it): 0.0 when even the smallest order slips more, inf when none does.
        """
        s = self.settings
        room = max_rate - self._volatility_slippage(atr_pct)
        if not math.isfinite(room) or room < s.slippage_small:
            return 0.0
        if s.slippage_large <= 0:
            return math.inf  # no slippage at any size
        if room >= s.slippage_large:
            return s.large_order_notional_usdt * (room / s.slippage_large) ** 2
        share = (room - s.slippage_small) / (s.slippage_large - s.slippage_small)
        span = s.large_order_notional_usdt - s.small_order_notional_usdt
        return s.small_order_notional_usdt + span * share

    def _volatility_slippage(self, atr_pct: float) -> float:
        s = self.settings
        if not math.isfinite(atr_pct):
            return s.slippage_high_volatility_add
        span = s.high_volatility_atr_pct - s.normal_volatility_atr_pct
        if span <= 0:
            return s.slippage_high_volatility_add if atr_pct >= s.high_volatility_atr_pct else 0.0
        above = atr_pct - s.normal_volatility_atr_pct
        share = (0.0 if above < 0.0 else above) / span  # max(above, 0.0), as above
        return s.slippage_high_volatility_add * share

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
        # By position (entry fee, exit fee, slippage, funding): by keyword, the call builds a
        # dict (≈ 3,000 instructions; the balancer prices every candidate of every cycle).
        return TradeCosts(
            notional_usdt * taker,
            notional_usdt * taker,
            2 * notional_usdt * slip,
            self.funding_usdt(notional_usdt, rate_8h, side, hours),
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
        return TradeCosts(  # by position, as `round_trip`'s
            entry_notional * taker,
            exit_notional * taker,
            (entry_notional + exit_notional) * slip,
            self.funding_usdt(entry_notional, rate_8h, side, hours),
        )

    def net_outcome(
        self,
        quantity: float,
        entry_price: float,
        stop_price: float,
        take_profit_price: float,
        atr_pct: float,
        side: Side,
        rate_8h: float = 0.0,
    ) -> NetOutcome:
        """Profit at the take-profit and loss at the stop after the costs of each round trip."""
        gross_profit = (take_profit_price - entry_price) * side.sign * quantity
        gross_loss = (entry_price - stop_price) * side.sign * quantity
        at_tp = self.round_trip_at(quantity, entry_price, take_profit_price, atr_pct, side, rate_8h)
        at_sl = self.round_trip_at(quantity, entry_price, stop_price, atr_pct, side, rate_8h)
        notional = quantity * entry_price
        return NetOutcome(
            profit_at_tp_usdt=gross_profit - at_tp.total_usdt,
            loss_at_sl_usdt=gross_loss + at_sl.total_usdt,
            cost_pct=at_sl.total_usdt / notional if notional > 0 else 0.0,
        )


@record
class NetOutcome:
    """A trade's two exits net of fees, slippage and funding, in USDT (loss positive)."""

    profit_at_tp_usdt: float
    loss_at_sl_usdt: float
    cost_pct: float

    @property
    def reward_risk(self) -> float:
        return self.profit_at_tp_usdt / self.loss_at_sl_usdt if self.loss_at_sl_usdt > 0 else 0.0
