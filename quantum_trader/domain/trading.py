"""Immutable trading vocabulary: signals, candidates, verdicts, orders, fills, positions."""

from __future__ import annotations

from dataclasses import field
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain.enums import (
    Action,
    ExitMode,
    ExitReason,
    GateName,
    OrderKind,
    OrderSide,
    OrderStatus,
    ReasonCode,
    Regime,
    Side,
    TrailMode,
)
from quantum_trader.record import record

ZERO = Decimal(0)
_APPROVED = ReasonCode.APPROVED  # every approval: not read through its class (domain/enums.py)


@record
class Vote:
    """One model's opinion, kept on the signal for the audit log."""

    model: str
    action: Action
    confidence: float


@record
class Signal:
    """A recommendation for one symbol at one time; confidence in [0, 1]."""

    symbol: str
    action: Action
    confidence: float
    source: str
    votes: tuple[Vote, ...] = ()


@record
class Candidate:
    """A tradeable signal with the market facts the gates and the sizer need."""

    signal: Signal
    side: Side
    price: Decimal
    atr_pct: float
    regime: Regime
    # The signal's, kept on the candidate: the gates read them tens of times a candidate
    # (a property's call each time cost more than making the candidate).
    symbol: str = field(init=False, repr=False, compare=False)
    confidence: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbol", self.signal.symbol)
        object.__setattr__(self, "confidence", self.signal.confidence)


@record
class Verdict:
    """A gate's answer for one candidate. Denials are values, never exceptions.

    An approving verdict may adjust the trade: `size_factor` multiplies its size, `exit_mode` and
    `tp_r_multiple` shape its plan. `until` says when a time-bound denial ends.
    """

    gate: GateName
    symbol: str
    approved: bool
    reason: ReasonCode
    detail: str = ""
    until: datetime | None = None
    size_factor: float = 1.0
    exit_mode: ExitMode | None = None
    tp_r_multiple: float | None = None

    @classmethod
    def allow(cls, gate: GateName, symbol: str, detail: str = "", **adjust: object) -> Verdict:
        return cls(gate, symbol, True, _APPROVED, detail, **adjust)  # type: ignore[arg-type]

    @classmethod
    def deny(
        cls,
        gate: GateName,
        symbol: str,
        reason: ReasonCode,
        detail: str = "",
        until: datetime | None = None,
    ) -> Verdict:
        return cls(gate, symbol, False, reason, detail, until)


@record
class TradePlan:
    """What the approval chain decided about an approved candidate's shape."""

    size_factor: float = 1.0
    exit_mode: ExitMode = ExitMode.DEFENSIVE_TRAIL
    tp_r_multiple: float | None = None


@record
class SizedOrder:
    """The sizer's proposal: a concrete entry with its protection, in exchange units.

    Invariant: `expected_loss_usdt` (loss at the stop, before costs) is at most the risk budget.
    `market_max_quantity`: the exchange's market-order maximum (MARKET_LOT_SIZE maxQty) when it
    capped `quantity` below what the budget and the margin cap allowed; None when it did not.
    `slippage_max_quantity`: likewise the market's depth as the cost model sees it (the most
    whose expected slippage stays within `sizing.max_slippage_stop_share` of the stop distance).
    """

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    stop_price: Decimal
    take_profit_price: Decimal
    leverage: int
    notional_usdt: Decimal
    margin_usdt: Decimal
    expected_loss_usdt: Decimal
    expected_profit_usdt: Decimal
    costs_usdt: Decimal
    atr_pct: float
    confidence: float
    method: str = "math"
    exit_mode: ExitMode = ExitMode.DEFENSIVE_TRAIL
    market_max_quantity: Decimal | None = None
    slippage_max_quantity: Decimal | None = None

    @property
    def reward_risk(self) -> float:
        if self.expected_loss_usdt <= 0:
            return 0.0
        return float(self.expected_profit_usdt / self.expected_loss_usdt)


@record
class OrderRequest:
    """An order we want on the exchange, identified by our own client order id.

    `close_position`: a STOP_MARKET that closes whatever is held when it fires (Binance's
    closePosition, "Close-All": sent without a quantity, so no lot filter applies; one per
    symbol and side). It reduces only, so `reduce_only` is True with it."""

    client_order_id: str
    symbol: str
    side: OrderSide
    kind: OrderKind
    quantity: Decimal
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    close_position: bool = False


@record
class Order:
    """An order as the exchange (or our intent record) knows it.

    `reduce_only`: None when the exchange's answer left the field out (Binance documents it in
    every order answer, but an answer without it says nothing either way; keeper/ids.py
    `as_sent` reads an order of ours as this program sent it).
    `triggered_at`: when a conditional order still open met its trigger condition (Binance's
    algo statuses TRIGGERING and TRIGGERED: its market order is on the way or running). Such
    an order is executing, not waiting: it cannot be cancelled, and one that stays so (Binance
    has left some in TRIGGERING for good) protects nothing (keeper/protect.py).
    `close_position`: a close-all stop (OrderRequest), which covers any quantity held.
    """

    client_order_id: str
    symbol: str
    side: OrderSide
    kind: OrderKind
    quantity: Decimal
    status: OrderStatus
    created_at: datetime
    exchange_order_id: str | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool | None = False
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    fee_usdt: Decimal = ZERO
    updated_at: datetime | None = None
    detail: str = ""
    triggered_at: datetime | None = None
    close_position: bool = False  # closes whatever is held: `quantity` is 0 (OrderRequest)

    @classmethod
    def pending(cls, request: OrderRequest, now: datetime) -> Order:
        return cls(
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            kind=request.kind,
            quantity=request.quantity,
            status=OrderStatus.PENDING,
            created_at=now,
            trigger_price=request.trigger_price,
            reduce_only=request.reduce_only,
            updated_at=now,
            close_position=request.close_position,
        )


@record
class Fill:
    """One execution. `fee_usdt` is positive when paid."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee_usdt: Decimal
    time: datetime
    is_maker: bool = False


@record
class Balance:
    """Account in USDT. Equity = wallet + unrealized PnL."""

    wallet_usdt: Decimal
    free_usdt: Decimal
    used_margin_usdt: Decimal
    unrealized_pnl_usdt: Decimal = ZERO

    @property
    def equity_usdt(self) -> Decimal:
        return self.wallet_usdt + self.unrealized_pnl_usdt


@record
class ExchangePosition:
    """A position as the exchange reports it (one-way mode: one per symbol)."""

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin_usdt: Decimal = ZERO
    unrealized_pnl_usdt: Decimal = ZERO


@record
class Position:
    """A position in our ledger, with the state the monitor manages.

    `stop_price` is the managed stop; it only ever moves in the position's favour.
    `stop_order_id` is the client id of the protective stop order on the exchange.
    """

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    stop_price: Decimal
    take_profit_price: Decimal
    opened_at: datetime
    entry_order_id: str
    initial_stop_price: Decimal
    initial_quantity: Decimal
    atr_pct: float = 0.0
    exit_mode: ExitMode = ExitMode.DEFENSIVE_TRAIL
    trail_mode: TrailMode = TrailMode.BALANCED
    stop_order_id: str | None = None
    take_profit_order_id: str | None = None
    stop_replaced_at: datetime | None = None
    break_even_done: bool = False
    partial_taken: bool = False
    trailing_active: bool = False
    realized_pnl_usdt: Decimal = ZERO
    fees_usdt: Decimal = ZERO
    highest_price: Decimal = ZERO
    lowest_price: Decimal = ZERO

    @property
    def notional_usdt(self) -> Decimal:
        return self.quantity * self.entry_price

    @property
    def risk_usdt(self) -> Decimal:
        """Loss if the managed stop is hit now (zero or negative once the stop locks in profit)."""
        return (self.entry_price - self.stop_price) * self.side.sign * self.quantity

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        return (price - self.entry_price) * self.side.sign * self.quantity


@record
class ClosedTrade:
    """A round trip, written when a position is fully closed. PnL is net of fees and funding.

    `r_multiple` is the PnL over the initial risk (|entry − initial stop| × initial quantity);
    None when that risk is unknown (a stop at the entry price), never 0.0, which is a
    break-even trade.
    """

    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    opened_at: datetime
    closed_at: datetime
    exit_reason: ExitReason
    pnl_usdt: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal
    r_multiple: float | None
    entry_order_id: str


@record
class PositionEvent:
    """An adjustment or exit the monitor made, with its reason."""

    symbol: str
    time: datetime
    reason: ExitReason
    detail: str = ""
    price: Decimal | None = None
    quantity: Decimal | None = None
    new_stop_price: Decimal | None = None


@record
class Decision:
    """A verdict recorded in context: which cycle, when."""

    cycle_id: str
    time: datetime
    verdict: Verdict
    confidence: float = 0.0
    side: Side | None = None
    extra: dict[str, object] = field(default_factory=dict)


@record
class EquitySnapshot:
    time: datetime
    equity_usdt: Decimal
    wallet_usdt: Decimal
    used_margin_usdt: Decimal
    open_positions: int
