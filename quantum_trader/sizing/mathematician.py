"""The math sizer (SPEC §5.1): approved candidate + account → SizedOrder, or a denial Verdict.

The arithmetic, in order:
  sl_pct   = ATR% × stop_atr_multiple, clamped to [min_stop_pct, max_stop_pct]
  tp_pct   = sl_pct × R (R from the plan, else from the regime)
  budget   = min(risk_per_trade × size_factor, max_risk_fraction) × equity
  leverage = half-Kelly on the symbol's win rate and R, clamped to [1, max]; default without record
  notional = budget ÷ (stop distance + fill rounding + costs at the stop), capped by
             margin cap × leverage
Quantities round down to the step, the stop toward the entry and the target away from it, so
the loss at the stop plus the costs of getting stopped out never exceed the budget, with the
entry and the stop filled a tick worse each (sizing/fill_risk.py: a coarse tick, a probe's 0.8 %
of the price, lost twice the planned distance). The entry is
a market order, sized to the market order's step and minimum (`MarketRules.market_order_lot`:
MARKET_LOT_SIZE's, LOT_SIZE's too; Binance refuses an entry off that step or below that
minimum every cycle) and capped at its maximum (MARKET_LOT_SIZE maxQty, -4005); the order
records that cap (`SizedOrder.market_max_quantity`) as the risk plan records the margin cap. It
is also capped at the book's depth as the cost model sees it: the expected slippage at most
`max_slippage_stop_share` of the nearer exit's distance (`slippage_max_quantity`), else the
fill's own impact could carry it past the target (a huge paper account did so). Last come
Binance's leverage brackets (sizing/brackets.py): the largest order a bracket allows at the
planned leverage or its own lower one, 1 % below its cap (a large account was refused the
symbol, or the leverage, rather than sized within them). A refusal names the limit that set
the quantity and the filter it failed.
"""

from __future__ import annotations

import math
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    Candidate,
    GateName,
    LotSize,
    MarketRules,
    PortfolioView,
    ReasonCode,
    Regime,
    SizedOrder,
    SymbolStats,
    TradePlan,
    Verdict,
)
from quantum_trader.record import record, replace
from quantum_trader.sizing.brackets import within_brackets
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.fill_risk import fill_base_high, loss_per_unit
from quantum_trader.sizing.rounding import stop_price, take_profit_price
from quantum_trader.sizing.settings import SizingSettings

COST_QUANTUM = Decimal("0.00000001")


@record
class StopPlan:
    """Stop and target distances as fractions of the entry price; `r_multiple` = tp ÷ sl."""

    sl_pct: float
    tp_pct: float
    r_multiple: float


@record
class RiskPlan:
    """The §5.1 money arithmetic before exchange rounding, in USDT."""

    budget_usdt: Decimal
    uncapped_notional_usdt: Decimal
    margin_cap_usdt: Decimal
    notional_usdt: Decimal
    leverage: int

    @property
    def margin_usdt(self) -> Decimal:
        return self.notional_usdt / self.leverage


@record
class BoundQuantity:
    """An entry's quantity on the market order step, and the limit that set it (`bound`, for a
    refusal to name): the budget, the notional cap, the book's depth or the market maximum."""

    quantity: Decimal
    allowed: Decimal
    bound: str
    market_max_quantity: Decimal | None = None
    slippage_max_quantity: Decimal | None = None


def to_decimal(value: float) -> Decimal:
    """The decimal a person means by a float setting: 0.1 → Decimal("0.1")."""
    return Decimal(repr(value))


def plan_stops(
    atr_pct: float, regime: Regime, tp_r_multiple: float | None, settings: SizingSettings
) -> StopPlan:
    """Stop at ATR% × multiple (clamped); target at R × stop, R from the plan or the regime."""
    raw = atr_pct * settings.stop_atr_multiple
    sl_pct = min(max(raw, settings.min_stop_pct), settings.max_stop_pct)
    r = tp_r_multiple if tp_r_multiple is not None else regime_r_multiple(regime, settings)
    return StopPlan(sl_pct, sl_pct * r, r)


def regime_r_multiple(regime: Regime, settings: SizingSettings) -> float:
    """Take-profit R: 2.5 TRENDING, 1.5 RANGING, 2.0 otherwise (settings)."""
    if regime is Regime.TRENDING:
        return settings.tp_r_multiple_trending
    if regime is Regime.RANGING:
        return settings.tp_r_multiple_ranging
    return settings.tp_r_multiple


def kelly_edge(win_rate: float, r_multiple: float) -> float:
    """Full Kelly fraction f* = W − (1 − W) ÷ R; negative when the bet has no edge."""
    return win_rate - (1.0 - win_rate) / r_multiple


def choose_leverage(stats: SymbolStats | None, r_multiple: float, settings: SizingSettings) -> int:
    """Leverage in [1, max_leverage]: fractional Kelly × max, or the default without a record.

    A symbol with fewer than `kelly_min_trades` closed trades has no usable record.
    """
    cap = settings.max_leverage
    if stats is None or stats.trades < settings.kelly_min_trades:
        return min(max(settings.default_leverage, 1), cap)
    edge = kelly_edge(stats.win_rate, r_multiple) * settings.kelly_fraction
    return min(max(round(edge * cap), 1), cap)


def plan_risk(
    equity_usdt: Decimal,
    wallet_usdt: Decimal,
    sl_pct: float,
    leverage: int,
    size_factor: float,
    settings: SizingSettings,
) -> RiskPlan:
    """Budget → notional = budget ÷ sl_pct (the loss at the stop is the budget), then cap the
    notional so that margin = notional ÷ leverage ≤ max_margin_fraction × wallet.

    The budget is risk_per_trade × size_factor of equity, never more than max_risk_fraction.
    """
    fraction = min(settings.risk_per_trade * max(size_factor, 0.0), settings.max_risk_fraction)
    budget = max(equity_usdt, ZERO) * to_decimal(fraction)
    uncapped = budget / to_decimal(sl_pct)
    margin_cap = to_decimal(settings.max_margin_fraction) * max(wallet_usdt, ZERO)
    notional = min(uncapped, margin_cap * leverage)
    return RiskPlan(budget, uncapped, margin_cap, notional, leverage)


@record
class MathSizer:
    """The default sizer. Pure: same inputs, same order."""

    settings: SizingSettings
    costs: CostModel
    method: str = "math"

    def size(
        self,
        candidate: Candidate,
        plan: TradePlan,
        portfolio: PortfolioView,
        rules: MarketRules,
        funding_rate_8h: float = 0.0,
    ) -> SizedOrder | Verdict:
        """Turn an approved candidate into an order, or deny with SIZE_ZERO,
        BELOW_MIN_QUANTITY or BELOW_MIN_NOTIONAL when no valid order exists."""
        if not _valid_inputs(candidate, plan):
            return _deny(candidate, ReasonCode.SIZE_ZERO, "invalid price, ATR or size factor")
        stops = plan_stops(candidate.atr_pct, candidate.regime, plan.tp_r_multiple, self.settings)
        stats = portfolio.symbol_stats.get(candidate.symbol)
        leverage = min(choose_leverage(stats, stops.r_multiple, self.settings), rules.max_leverage)
        risk = plan_risk(
            portfolio.equity_usdt,
            portfolio.wallet_usdt,
            stops.sl_pct,
            max(leverage, 1),
            plan.size_factor,
            self.settings,
        )
        return self.build_order(candidate, plan, rules, stops, risk, funding_rate_8h)

    def build_order(
        self,
        candidate: Candidate,
        plan: TradePlan,
        rules: MarketRules,
        stops: StopPlan,
        risk: RiskPlan,
        funding_rate_8h: float,
    ) -> SizedOrder | Verdict:
        """Round a planned stop distance and budget into an exchange-valid order.

        Methods other than `math` reuse this with their own StopPlan and RiskPlan; the budget
        (`risk.budget_usdt`) bounds loss at the stop plus costs, `risk.notional_usdt` caps size.
        """
        entry = candidate.price
        side = candidate.side
        stop = stop_price(entry, to_decimal(stops.sl_pct), side, rules.tick_size)
        target = take_profit_price(entry, to_decimal(stops.tp_pct), side, rules.tick_size)
        distance = (entry - stop) * side.sign
        if distance <= 0 or (target - entry) * side.sign <= 0 or target <= 0:
            return _deny(candidate, ReasonCode.SIZE_ZERO, "stop or target within one tick")
        per_unit = self._loss_per_unit(candidate, stop, risk, funding_rate_8h, rules.tick_size)
        exit_distance = min(distance, (target - entry) * side.sign)
        bound = self._bound_quantity(candidate, rules, per_unit, risk, exit_distance)
        if isinstance(bound, Verdict):
            return bound
        bound, leverage = _bracketed(candidate.price, rules, risk, bound)
        denial = _check_minimums(candidate, rules, bound)
        if denial is not None:
            return denial
        quantity = bound.quantity
        notional = quantity * entry
        costs = self.costs.round_trip_at(
            float(quantity),
            float(entry),
            float(stop),
            candidate.atr_pct,
            side,
            funding_rate_8h,
        )
        return SizedOrder(
            symbol=candidate.symbol,
            side=side,
            quantity=quantity,
            entry_price=entry,
            stop_price=stop,
            take_profit_price=target,
            leverage=leverage,
            notional_usdt=notional,
            margin_usdt=notional / leverage,
            expected_loss_usdt=quantity * distance,
            expected_profit_usdt=quantity * (target - entry) * side.sign,
            costs_usdt=to_decimal(costs.total_usdt).quantize(COST_QUANTUM),
            atr_pct=candidate.atr_pct,
            confidence=candidate.confidence,
            method=self.method,
            exit_mode=plan.exit_mode,
            market_max_quantity=bound.market_max_quantity,
            slippage_max_quantity=bound.slippage_max_quantity,
        )

    def _bound_quantity(
        self,
        candidate: Candidate,
        rules: MarketRules,
        per_unit: Decimal,
        risk: RiskPlan,
        exit_distance: Decimal,
    ) -> BoundQuantity | Verdict:
        """The most the budget, the notional cap, the book's depth and the market maximum
        allow, rounded down to the market order step; which of them set it."""
        order_lot = rules.market_order_lot
        lot = order_lot.lot
        by_budget, by_notional = risk.budget_usdt / per_unit, risk.notional_usdt / candidate.price
        if by_budget <= by_notional:
            allowed, bound = by_budget, f"the risk budget {risk.budget_usdt:.2f} USDT"
        else:
            allowed, bound = by_notional, f"the notional cap {risk.notional_usdt:.2f} USDT"
        quantity = lot.round_down(max(allowed, ZERO))
        # Decimal division rounds to 28 digits; one step back guards the caps exactly.
        if quantity > 0 and (
            quantity * per_unit > risk.budget_usdt
            or quantity * candidate.price > risk.notional_usdt
        ):
            quantity -= lot.step_size
        depth = self._depth_quantity(candidate, lot, exit_distance)
        if isinstance(depth, Verdict):
            return depth
        result = BoundQuantity(quantity, allowed, bound)
        if depth is not None and quantity > depth:
            within = f"the book's depth as the cost model sees it ({depth})"
            result = BoundQuantity(depth, depth, within, slippage_max_quantity=depth)
        maximum = lot.max_quantity
        if maximum is not None and result.quantity > maximum:
            named = f"the market order maximum {maximum} ({order_lot.maximum_filter})"
            capped = lot.cap(result.quantity)
            result = BoundQuantity(capped, maximum, named, maximum, result.slippage_max_quantity)
        return result

    def _depth_quantity(
        self, candidate: Candidate, lot: LotSize, exit_distance: Decimal
    ) -> Decimal | Verdict | None:
        """The most this entry may buy or sell before its expected slippage exceeds
        `max_slippage_stop_share` of the nearer exit's distance (None: no bound), or a denial
        when even the smallest order would: past it, the fill's own market impact would carry
        it toward, or past, the target (booked there as a TP_HIT at a loss)."""
        share = self.settings.max_slippage_stop_share
        max_rate = float(exit_distance / candidate.price) * share
        notional = self.costs.notional_within_slippage(max_rate, candidate.atr_pct)
        if math.isinf(notional):
            return None
        if notional <= 0:
            smallest = self.costs.slippage_rate(0.0, candidate.atr_pct)
            return _deny(
                candidate,
                ReasonCode.SIZE_ZERO,
                f"slippage {smallest:.4%} at any size exceeds {share} of the stop distance "
                f"({max_rate / share:.4%}): the market is too thin for this stop",
            )
        return lot.round_down(to_decimal(notional) / candidate.price)

    def _loss_per_unit(
        self,
        candidate: Candidate,
        stop: Decimal,
        risk: RiskPlan,
        funding_rate_8h: float,
        tick: Decimal,
    ) -> Decimal:
        """Upper bound of the loss of one unit entered at the price and stopped out at `stop`,
        the fills' rounding to the tick and every cost included (sizing/fill_risk.py).

        Slippage is taken at the largest notional either fill of this order can have (slippage
        never falls with size); funding received is not counted as a saving.
        """
        entry = candidate.price
        highest = max(fill_base_high(entry, tick), stop)
        largest = float(risk.notional_usdt * highest / entry)
        slippage = self.costs.slippage_rate(largest, candidate.atr_pct)
        hold_h = self.costs.settings.expected_hold_h
        funding = max(funding_rate_8h * (hold_h / 8.0) * candidate.side.sign, 0.0)
        return loss_per_unit(
            entry,
            stop,
            candidate.side,
            tick,
            to_decimal(self.costs.fee_rate(is_maker=False)),
            to_decimal(slippage),
            to_decimal(funding),
        )


def _valid_inputs(candidate: Candidate, plan: TradePlan) -> bool:
    return (
        candidate.price > 0
        and math.isfinite(candidate.atr_pct)
        and candidate.atr_pct >= 0
        and math.isfinite(plan.size_factor)
        and plan.size_factor > 0
    )


def _bracketed(
    price: Decimal, rules: MarketRules, risk: RiskPlan, bound: BoundQuantity
) -> tuple[BoundQuantity, int]:
    """The bound quantity and the plan's leverage as the leverage brackets allow them."""
    lot = rules.market_order_lot.lot
    fitted = within_brackets(
        rules, lot, price, bound.quantity, risk.leverage, risk.margin_cap_usdt, risk.notional_usdt
    )
    if fitted.bound is not None:
        bound = replace(bound, quantity=fitted.quantity, allowed=fitted.allowed, bound=fitted.bound)
    return bound, fitted.leverage


def _check_minimums(
    candidate: Candidate, rules: MarketRules, bound: BoundQuantity
) -> Verdict | None:
    """A refusal naming the filter the quantity fails and the limit that set it."""
    order_lot = rules.market_order_lot
    quantity, lot = bound.quantity, order_lot.lot
    if quantity <= 0:
        return _deny(
            candidate,
            ReasonCode.SIZE_ZERO,
            f"quantity rounds to zero on the market order step {lot.step_size} "
            f"({order_lot.step_filter}): {bound.allowed:.6g} allowed by {bound.bound}",
        )
    if quantity < lot.min_quantity:
        return _deny(
            candidate,
            ReasonCode.BELOW_MIN_QUANTITY,
            f"quantity {quantity} set by {bound.bound} is below the market order minimum "
            f"{lot.min_quantity} ({order_lot.minimum_filter})",
        )
    notional = quantity * candidate.price
    if notional < rules.min_notional:
        return _deny(
            candidate,
            ReasonCode.BELOW_MIN_NOTIONAL,
            f"notional {notional:.2f} < minimum {rules.min_notional} (MIN_NOTIONAL): "
            f"quantity {quantity} set by {bound.bound}",
        )
    return None


def _deny(candidate: Candidate, reason: ReasonCode, detail: str) -> Verdict:
    return Verdict.deny(GateName.SIZER, candidate.symbol, reason, detail)
