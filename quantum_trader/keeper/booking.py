"""Booking maths: fills and exchange positions → ledger positions and closed trades. Pure.

The position's quantity always follows the exchange; these functions turn what filled into
prices, fees, realized PnL and exit reasons. A full exit yields a `TradeDraft`: its funding
comes from the exchange's income history, which the keeper fetches before `finish_trade`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    ClosedTrade,
    ExchangePosition,
    ExitReason,
    Fill,
    Order,
    OrderKind,
    OrderStatus,
    Position,
)
from quantum_trader.keeper.book import Book, EntryPlan, Intent
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor import stops
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import record, replace

STORED_DECIMALS = 8  # the most an exchange reports (Binance: prices, fees, PnL)


@record
class Execution:
    """What one of our settled orders did: `quantity` at `price` for `fee_usdt`."""

    order: Order
    quantity: Decimal
    price: Decimal | None
    fee_usdt: Decimal


@record
class TradeDraft:
    """A position closed at `exit_price`; funding still to be added. `approved_risk_usdt`:
    the risk approved for its entry, where its fill lay far from its plan (`approved`)."""

    position: Position
    exit_price: Decimal
    reason: ExitReason
    closed_at: datetime
    approved_risk_usdt: Decimal | None = None


def execution_of(order: Order, fills: Sequence[Fill] | None) -> Execution:
    """Quantity, average price and fees of a settled order, from its fills when known.

    A triggered conditional order may report no executed quantity of its own (Binance's algo
    orders carry it on the order they started): then its whole quantity is assumed, and the
    caller caps it at what the exchange position shows was reduced.

    Fills that fall short of the quantity the order reports executed are not all of them
    (Binance lists at most 1,000 trades of an order, and none older than 7 days): the order's
    own quantity and average price count, its fee is the fills' scaled up to that quantity.
    """
    if fills:
        quantity = sum((f.quantity for f in fills), ZERO)
        notional = sum((f.quantity * f.price for f in fills), ZERO)
        fee = sum((f.fee_usdt for f in fills), ZERO)
        executed = order.filled_quantity
        if executed > quantity > 0:
            average = order.average_price or notional / quantity
            return Execution(order, executed, average, fee * executed / quantity)
        return Execution(order, quantity, notional / quantity if quantity > 0 else None, fee)
    quantity = order.filled_quantity
    if quantity <= 0 and order.kind.is_conditional and order.status is OrderStatus.FILLED:
        quantity = order.quantity
    price = order.average_price or (order.trigger_price if order.kind.is_conditional else None)
    return Execution(order, quantity, price, order.fee_usdt)


def executed_at(order: Order, fills: Sequence[Fill] | None, seen_at: datetime) -> datetime:
    """When `order` executed, as the exchange reports it: its last fill's time, else its last
    update's; `seen_at` (when the keeper saw it) where it reports neither."""
    return max((f.time for f in fills or ()), default=order.updated_at or seen_at)


def exit_reason(
    position: Position, order: Order, intent: Intent | None, monitor: MonitorSettings
) -> ExitReason:
    """Why `order` of ours took (part of) `position` off: its intent's reason when it has one,
    else by kind (a stop's reason by where it stood, SPEC §6)."""
    if intent is not None and intent.reason is not None:
        return intent.reason
    if order.kind is OrderKind.TAKE_PROFIT_MARKET:
        return ExitReason.TP_HIT
    if order.kind is OrderKind.STOP_MARKET:
        return stops.stop_exit_reason(position, stops.break_even_level(position, monitor))
    return ExitReason.MANUAL


def holds_more(position: Position | None, held: ExchangePosition) -> bool:
    """The exchange holds more on the position's side (a side flip waits for the old side's
    booking)."""
    if position is None:
        return True
    return held.side is position.side and held.quantity > position.quantity


def holds_same(position: Position, held: ExchangePosition) -> bool:
    return held.side is position.side and held.quantity == position.quantity


def opened_position(
    held: ExchangePosition,
    plan: EntryPlan | None,
    entry_order_id: str | None,
    opened_at: datetime,
    fees_usdt: Decimal,
    settings: KeeperSettings,
    stop: Order | None = None,
    target: Order | None = None,
) -> Position:
    """A ledger position for what the exchange holds.

    Protection, in order of preference: an open stop (and take-profit) of ours already on the
    exchange; the entry's plan (the sizer's stop and target); else `adopt_stop_pct` from the
    entry price and `adopt_reward_risk` times that distance for the target.
    """
    sign = held.side.sign
    if plan is not None and plan.side is held.side:
        stop_price, target_price = plan.stop_price, plan.take_profit_price
        atr_pct, exit_mode, leverage = plan.atr_pct, plan.exit_mode, plan.leverage
    else:
        distance = held.entry_price * Decimal(repr(settings.adopt_stop_pct))
        reward = distance * Decimal(repr(settings.adopt_reward_risk))
        stop_price = held.entry_price - distance * sign
        target_price = held.entry_price + reward * sign
        atr_pct, exit_mode, leverage = settings.adopt_stop_pct / 1.5, None, held.leverage
    if stop is not None and stop.trigger_price is not None:
        stop_price = stop.trigger_price
    if target is not None and target.trigger_price is not None:
        target_price = target.trigger_price
    base = held.symbol.split("/", 1)[0]
    position = Position(
        symbol=held.symbol,
        side=held.side,
        quantity=held.quantity,
        entry_price=held.entry_price,
        leverage=leverage,
        stop_price=stop_price,
        take_profit_price=target_price,
        opened_at=opened_at,
        entry_order_id=entry_order_id or f"adopted-{base}-{int(opened_at.timestamp() * 1000)}",
        initial_stop_price=stop_price,
        initial_quantity=held.quantity,
        atr_pct=atr_pct,
        stop_order_id=stop.client_order_id if stop else None,
        take_profit_order_id=target.client_order_id if target else None,
        stop_replaced_at=opened_at if stop else None,
        fees_usdt=fees_usdt,
        highest_price=held.entry_price,
        lowest_price=held.entry_price,
    )
    return replace(position, exit_mode=exit_mode) if exit_mode is not None else position


def grown(position: Position, held: ExchangePosition, fees_usdt: Decimal) -> Position:
    """The position after the exchange added to it: quantity and average entry as held."""
    added = held.quantity - position.quantity
    return replace(
        position,
        quantity=held.quantity,
        entry_price=held.entry_price,
        initial_quantity=position.initial_quantity + added,
        fees_usdt=position.fees_usdt + fees_usdt,
    )


def reduced(
    position: Position,
    quantity: Decimal,
    price: Decimal,
    fee_usdt: Decimal,
    reason: ExitReason,
    now: datetime,
) -> Position | TradeDraft:
    """Book an exit of `quantity` (≤ the position's) at `price`: the smaller position, or the
    draft of the closed trade when nothing is left."""
    gross = (price - position.entry_price) * position.side.sign * quantity
    after = replace(
        position,
        quantity=position.quantity - quantity,
        realized_pnl_usdt=position.realized_pnl_usdt + gross,
        fees_usdt=position.fees_usdt + fee_usdt,
    )
    if after.quantity > 0:
        return after
    return TradeDraft(after, price, reason, now)


def initial_risk(position: Position) -> Decimal:
    """What the position risked at its initial stop (USDT): the denominator of its R."""
    return abs(position.entry_price - position.initial_stop_price) * position.initial_quantity


def approved(draft: TradeDraft, book: Book) -> TradeDraft:
    """`draft` with the risk approved for its entry, where `book` (the books before the plan
    that closed it) holds its position with a limit: a fill far from its plan
    (keeper/fill_check.py)."""
    position = draft.position
    held, limit = book.positions.get(position.symbol), book.limits.get(position.symbol)
    if held is None or limit is None or held.entry_order_id != position.entry_order_id:
        return draft
    return replace(draft, approved_risk_usdt=limit.approved_risk_usdt)


def trade_risk(draft: TradeDraft) -> Decimal:
    """The denominator of the trade's R (USDT): the initial risk, but for a trade closed
    FILL_OFF_PLAN the risk approved for its entry where known. Its fill lay at or past its
    plan's stop or target, so the fill's distance to that stop is no risk anyone planned or
    approved — a fill just past the stop made it tiny (−2.08 USDT read as −7.27 R) — and the
    approved risk is the one a reader compares the loss with."""
    risk = draft.approved_risk_usdt
    if draft.reason is ExitReason.FILL_OFF_PLAN and risk is not None and risk > ZERO:
        return risk
    return initial_risk(draft.position)


def finish_trade(draft: TradeDraft, funding_usdt: Decimal) -> ClosedTrade:
    """The closed round trip, net of fees and funding; R against `trade_risk` (None when it
    is unknown: a zero risk would make any PnL a break-even 0 R)."""
    position = draft.position
    pnl = position.realized_pnl_usdt - position.fees_usdt - funding_usdt
    risk = trade_risk(draft)
    return ClosedTrade(
        symbol=position.symbol,
        side=position.side,
        quantity=position.initial_quantity,
        entry_price=position.entry_price,
        exit_price=draft.exit_price,
        opened_at=position.opened_at,
        closed_at=draft.closed_at,
        exit_reason=draft.reason,
        pnl_usdt=pnl,
        fees_usdt=position.fees_usdt,
        funding_usdt=funding_usdt,
        r_multiple=float(pnl / risk) if risk > ZERO else None,
        entry_order_id=position.entry_order_id,
    )


def as_stored(trade: ClosedTrade) -> ClosedTrade:
    """`trade` as the ledger stores it: its prices and sums to 8 decimals where they have
    more. Only our own arithmetic gives more (an average of fills, a fee scaled to an order's
    quantity: a Decimal division's 28 digits — an exit price 3644.637824519230769230769231, a
    PnL ending …99999808); what an exchange reports has at most 8 and is kept as it is. An
    average stays an average (not put on the tick: 100.00666667 for fills at 100 and twice
    100.01), so the row's PnL still follows from its prices within 1e-8 a unit."""
    return replace(
        trade,
        entry_price=stored_sum(trade.entry_price),
        exit_price=stored_sum(trade.exit_price),
        pnl_usdt=stored_sum(trade.pnl_usdt),
        fees_usdt=stored_sum(trade.fees_usdt),
        funding_usdt=stored_sum(trade.funding_usdt),
    )


def stored_sum(value: Decimal) -> Decimal:
    """`value` as a trade row stores it: to 8 decimals where it has more."""
    if _decimals(value) <= STORED_DECIMALS:
        return value
    return value.quantize(Decimal(1).scaleb(-STORED_DECIMALS))


def _decimals(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) else 0
