"""Risk guard (SPEC §4.4): the last, pre-trade check of the concrete order the sizer proposes.

Checks run in a fixed order and the first failure is the verdict: market known, order
well-formed, account alive, leverage, exchange rules (precision, minimum quantity, minimum
notional, maximum quantity: an entry is a market order, held to MARKET_LOT_SIZE and LOT_SIZE
alike, `MarketRules.market_order_lot`), free balance, margin per trade, notional exposure,
open positions, risk at the stop, reward:risk. "Balance" is the account's equity in USDT.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    GateName,
    MarketRules,
    MarketView,
    PortfolioView,
    ReasonCode,
    SizedOrder,
    Verdict,
)
from quantum_trader.gates.settings import RiskGuardSettings
from quantum_trader.record import record


def as_decimal(value: float) -> Decimal:
    """A float setting as the Decimal it was written as (0.1 → Decimal('0.1'))."""
    return Decimal(str(value))


@record
class _Context:
    order: SizedOrder
    portfolio: PortfolioView
    rules: MarketRules
    settings: RiskGuardSettings


_Failure = tuple[ReasonCode, str] | None
_Check = Callable[[_Context], _Failure]


def risk_at_stop_usdt(order: SizedOrder) -> Decimal:
    """Loss at the stop before costs: the larger of the sizer's figure and the price geometry."""
    geometric = (order.entry_price - order.stop_price) * order.side.sign * order.quantity
    return max(order.expected_loss_usdt, geometric)


def reward_risk_ratio(order: SizedOrder) -> Decimal:
    """Take-profit distance over stop distance, from the order's prices (0 if malformed)."""
    risk = (order.entry_price - order.stop_price) * order.side.sign
    reward = (order.take_profit_price - order.entry_price) * order.side.sign
    if risk <= 0 or reward <= 0:
        return ZERO
    return reward / risk


def required_margin_usdt(order: SizedOrder) -> Decimal:
    """Margin the order locks: at least notional ÷ leverage, whatever the sizer wrote."""
    notional = order.quantity * order.entry_price
    return max(order.margin_usdt, notional / order.leverage)


def _check_geometry(ctx: _Context) -> _Failure:
    o = ctx.order
    if o.quantity <= 0 or o.entry_price <= 0 or o.leverage < 1:
        return ReasonCode.INVALID_ORDER, "quantity, price and leverage must be positive"
    if (o.entry_price - o.stop_price) * o.side.sign <= 0:
        return ReasonCode.INVALID_ORDER, f"stop {o.stop_price} not on the loss side of entry"
    if (o.take_profit_price - o.entry_price) * o.side.sign <= 0:
        return ReasonCode.INVALID_ORDER, f"take-profit {o.take_profit_price} not beyond entry"
    return None


def _check_balance(ctx: _Context) -> _Failure:
    minimum = as_decimal(ctx.settings.min_balance_usdt)
    if ctx.portfolio.equity_usdt < minimum:
        return ReasonCode.BALANCE_BELOW_MINIMUM, f"equity {ctx.portfolio.equity_usdt} < {minimum}"
    return None


def _check_leverage(ctx: _Context) -> _Failure:
    """The setting, and the exchange's leverage bracket for this order's notional."""
    notional = ctx.order.quantity * ctx.order.entry_price
    bracket = ctx.rules.max_leverage_for(notional)
    if bracket == 0:  # Binance takes no position this large at any leverage
        cap = ctx.rules.notional_cap
        detail = f"notional {notional:.2f} is beyond the last leverage bracket's cap {cap}"
        return ReasonCode.LEVERAGE_TOO_HIGH, detail
    limit = min(ctx.settings.max_leverage, bracket)
    if ctx.order.leverage > limit:
        return ReasonCode.LEVERAGE_TOO_HIGH, f"leverage {ctx.order.leverage} > {limit}"
    return None


def _check_precision(ctx: _Context) -> _Failure:
    """An entry is a market order: its quantity on the market order step (MARKET_LOT_SIZE's and
    LOT_SIZE's), its stop and target on the tick."""
    o, order_lot = ctx.order, ctx.rules.market_order_lot
    if not order_lot.lot.is_on_step(o.quantity):
        return (
            ReasonCode.BAD_PRECISION,
            f"quantity {o.quantity} not a multiple of the market order step "
            f"{order_lot.lot.step_size} ({order_lot.step_filter})",
        )
    for label, price in (("stop", o.stop_price), ("take-profit", o.take_profit_price)):
        if not ctx.rules.is_price_precise(price):
            return (
                ReasonCode.BAD_PRECISION,
                f"{label} {price} not a multiple of {ctx.rules.tick_size}",
            )
    return None


def _check_exchange_minimums(ctx: _Context) -> _Failure:
    o, order_lot = ctx.order, ctx.rules.market_order_lot
    if o.quantity < order_lot.lot.min_quantity:
        return (
            ReasonCode.BELOW_MIN_QUANTITY,
            f"quantity {o.quantity} < the market order minimum {order_lot.lot.min_quantity} "
            f"({order_lot.minimum_filter})",
        )
    notional = o.quantity * o.entry_price
    if notional < ctx.rules.min_notional:
        return ReasonCode.BELOW_MIN_NOTIONAL, f"notional {notional} < {ctx.rules.min_notional}"
    return None


def _check_market_maximum(ctx: _Context) -> _Failure:
    """An entry is a market order: above MARKET_LOT_SIZE maxQty Binance refuses it (-4005)."""
    order_lot = ctx.rules.market_order_lot
    if order_lot.lot.exceeded_by(ctx.order.quantity):
        return (
            ReasonCode.ABOVE_MAX_QUANTITY,
            f"quantity {ctx.order.quantity} > market order maximum "
            f"{order_lot.lot.max_quantity} ({order_lot.maximum_filter})",
        )
    return None


def _check_free_balance(ctx: _Context) -> _Failure:
    needed = required_margin_usdt(ctx.order) * as_decimal(ctx.settings.free_margin_buffer)
    if ctx.portfolio.free_usdt < needed:
        return ReasonCode.INSUFFICIENT_FREE_BALANCE, f"free {ctx.portfolio.free_usdt} < {needed}"
    return None


def _check_margin_per_trade(ctx: _Context) -> _Failure:
    cap = ctx.portfolio.equity_usdt * as_decimal(ctx.settings.max_margin_per_trade)
    margin = required_margin_usdt(ctx.order)
    if margin > cap:
        return ReasonCode.MARGIN_PER_TRADE_EXCEEDED, f"margin {margin} > {cap}"
    return None


def _check_notional_exposure(ctx: _Context) -> _Failure:
    after = ctx.portfolio.gross_notional_usdt + ctx.order.quantity * ctx.order.entry_price
    cap = ctx.portfolio.equity_usdt * as_decimal(ctx.settings.max_notional_exposure)
    if after > cap:
        return ReasonCode.NOTIONAL_EXPOSURE_EXCEEDED, f"gross notional after {after} > {cap}"
    return None


def _check_open_positions(ctx: _Context) -> _Failure:
    positions = ctx.portfolio.positions
    limit = ctx.settings.max_open_positions
    if ctx.order.symbol not in positions and len(positions) >= limit:
        return ReasonCode.MAX_OPEN_POSITIONS, f"{len(positions)} open positions >= {limit}"
    return None


def risk_cap_usdt(portfolio: PortfolioView, settings: RiskGuardSettings) -> Decimal:
    """The most an order may risk at its stop: `max_risk_per_trade` of the equity."""
    return portfolio.equity_usdt * as_decimal(settings.max_risk_per_trade)


def _check_risk(ctx: _Context) -> _Failure:
    risk = risk_at_stop_usdt(ctx.order)
    cap = risk_cap_usdt(ctx.portfolio, ctx.settings)
    if risk > cap:
        return ReasonCode.RISK_PER_TRADE_EXCEEDED, f"risk at stop {risk} > {cap}"
    return None


def _check_reward_risk(ctx: _Context) -> _Failure:
    ratio = reward_risk_ratio(ctx.order)
    minimum = as_decimal(ctx.settings.min_reward_risk)
    if ratio < minimum:
        return ReasonCode.REWARD_RISK_TOO_LOW, f"reward:risk {ratio:.4f} < {minimum}"
    return None


_CHECKS: tuple[_Check, ...] = (
    _check_geometry,
    _check_balance,
    _check_leverage,
    _check_precision,
    _check_exchange_minimums,
    _check_market_maximum,
    _check_free_balance,
    _check_margin_per_trade,
    _check_notional_exposure,
    _check_open_positions,
    _check_risk,
    _check_reward_risk,
)


@record
class RiskGuard:
    """OrderGate: approve a sized order only if every §4.4 check passes."""

    settings: RiskGuardSettings

    @property
    def name(self) -> GateName:
        return GateName.RISK_GUARD

    def risk_cap_usdt(self, portfolio: PortfolioView) -> Decimal:
        """The per-trade cap on risk at the stop its check applies to `portfolio` now."""
        return risk_cap_usdt(portfolio, self.settings)

    def review_order(
        self, order: SizedOrder, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> Verdict:
        """Return the first failing check's denial, or an approval. Pure; `now` is unused."""
        rules = market.rules.get(order.symbol)
        if rules is None:
            return Verdict.deny(
                self.name, order.symbol, ReasonCode.UNKNOWN_SYMBOL, "no market definition"
            )
        ctx = _Context(order, portfolio, rules, self.settings)
        for check in _CHECKS:
            failure = check(ctx)
            if failure is not None:
                return Verdict.deny(self.name, order.symbol, failure[0], failure[1])
        return Verdict.allow(self.name, order.symbol)
