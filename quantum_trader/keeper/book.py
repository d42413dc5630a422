"""The keeper's books: open positions and our orders whose outcome is not settled yet.

An `Intent` is one of our orders between the moment it is written (PENDING, before the request
leaves) and the moment its outcome is known. Entries carry the sizer's `EntryPlan`, so a fill
found later (a lost answer, a position found on the exchange) is protected as intended; exits
carry their reason. The `Book` is immutable: the planner returns a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.domain import (
    ExitMode,
    ExitReason,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    Side,
    SizedOrder,
)
from quantum_trader.gates.risk_guard import risk_at_stop_usdt
from quantum_trader.keeper.added_unread import UnreadAddition
from quantum_trader.keeper.firing import firing_reason, left_reason
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.keeper.part_unread import UnreadPart
from quantum_trader.keeper.trade_ref import TradeRef as TradeRef
from quantum_trader.keeper.trade_ref import finite
from quantum_trader.keeper.unpriced import UnpricedClose
from quantum_trader.record import record, replace


@record
class EntryPlan:
    """The protection and shape the sizer chose for an entry, and what was approved: the
    sizer's `entry_price` and `quantity`, the risk at the stop the risk guard approved
    (`risk_usdt`) and its per-trade cap then (`risk_cap_usdt`), against which the fill is
    checked (keeper/fill_check.py). None in a plan saved before they were (not checked)."""

    side: Side
    stop_price: Decimal
    take_profit_price: Decimal
    leverage: int
    atr_pct: float
    exit_mode: ExitMode
    entry_price: Decimal | None = None
    quantity: Decimal | None = None
    risk_usdt: Decimal | None = None
    risk_cap_usdt: Decimal | None = None

    @classmethod
    def of(cls, sized: SizedOrder, risk_cap_usdt: Decimal | None = None) -> EntryPlan:
        return cls(
            sized.side,
            sized.stop_price,
            sized.take_profit_price,
            sized.leverage,
            sized.atr_pct,
            sized.exit_mode,
            sized.entry_price,
            sized.quantity,
            risk_at_stop_usdt(sized),
            risk_cap_usdt,
        )

    def to_dict(self) -> dict[str, Any]:
        saved: dict[str, Any] = {
            "side": self.side.value,
            "stop_price": str(self.stop_price),
            "take_profit_price": str(self.take_profit_price),
            "leverage": self.leverage,
            "atr_pct": self.atr_pct,
            "exit_mode": self.exit_mode.value,
        }
        for name in _APPROVED:
            value = getattr(self, name)
            if value is not None:
                saved[name] = str(value)
        return saved

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EntryPlan:
        approved = {n: Decimal(raw[n]) for n in _APPROVED if raw.get(n) is not None}
        return cls(
            Side(raw["side"]),
            Decimal(raw["stop_price"]),
            Decimal(raw["take_profit_price"]),
            int(raw["leverage"]),
            float(raw["atr_pct"]),
            ExitMode(raw["exit_mode"]),
            **approved,
        )


_APPROVED = ("entry_price", "quantity", "risk_usdt", "risk_cap_usdt")
# Asked of every order at every tick: kept here, not read through their class
# (domain/enums.py). A tuple: `in` finds a member by identity, where a set would call the
# enum's Python `__hash__`.
_UNKNOWN_OUTCOME, _OPEN = (OrderStatus.PENDING, OrderStatus.UNKNOWN), OrderStatus.OPEN


@record
class Intent:
    """One of our orders whose outcome is not settled: PENDING, UNKNOWN, or a plain order the
    exchange still reports open. `sent_at` is when the request left (our clock)."""

    order: Order
    sent_at: datetime
    plan: EntryPlan | None = None
    reason: ExitReason | None = None

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def symbol(self) -> str:
        return self.order.symbol

    @property
    def request(self) -> OrderRequest:
        order = self.order
        return OrderRequest(
            order.client_order_id,
            order.symbol,
            order.side,
            order.kind,
            order.quantity,
            trigger_price=order.trigger_price,
            reduce_only=order.reduce_only is True,  # ours as sent, or as_sent
            close_position=order.close_position,
        )

    @property
    def purpose(self) -> Purpose:
        return purpose_of(self.order.client_order_id) or Purpose.ENTRY

    def extra_to_dict(self) -> dict[str, Any]:
        """What the orders table does not hold, for the repository's state."""
        return {
            "sent_at": self.sent_at.isoformat(),
            "plan": self.plan.to_dict() if self.plan else None,
            "reason": self.reason.value if self.reason else None,
        }

    @classmethod
    def restore(cls, order: Order, extra: Mapping[str, Any] | None) -> Intent:
        if not extra:
            return cls(order, order.updated_at or order.created_at)
        plan = extra.get("plan")
        reason = extra.get("reason")
        return cls(
            order,
            datetime.fromisoformat(extra["sent_at"]),
            EntryPlan.from_dict(plan) if plan else None,
            ExitReason(reason) if reason else None,
        )


@record
class TradeFees:
    """The fees read for a trade booked without them (`fee_usdt`, of `orders`): its
    amendment, carried out by the keeper (keeper/fee_carry.py)."""

    trade: TradeRef
    fee_usdt: Decimal
    orders: tuple[str, ...]


@record
class UnreadFees:
    """One of our orders booked without its fills (they could not be read), so without its
    fee: Binance's answer to an order carries no commission, only its trades do.

    `order` is the state it was booked from, `since` when, `booked_fee_usdt` the fee booked
    then (the order's own figure: 0 from Binance). `trade`: the closed trade it was left out
    of, when its position closed before it was read (None: its fee goes to the position);
    `fee_read`: the fee due, once read, while other orders of that trade are still unread.
    """

    order: Order
    since: datetime
    booked_fee_usdt: Decimal
    trade: TradeRef | None = None
    fee_read: Decimal | None = None

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def symbol(self) -> str:
        return self.order.symbol

    def to_dict(self) -> dict[str, Any]:
        """What the orders table does not hold, for the repository's state."""
        saved: dict[str, Any] = {
            "since": self.since.isoformat(),
            "booked_fee_usdt": str(self.booked_fee_usdt),
        }
        if self.trade is not None:
            saved["trade"] = self.trade.to_dict()
        if self.fee_read is not None:
            saved["fee_read"] = str(self.fee_read)
        return saved

    @classmethod
    def restore(cls, order: Order, extra: Mapping[str, Any]) -> UnreadFees:
        """From `to_dict`'s (one saved before closed trades were amended has no trade: all
        then belonged to open positions)."""
        since = datetime.fromisoformat(extra["since"])
        trade = extra.get("trade")
        fee_read = extra.get("fee_read")
        return cls(
            order,
            since,
            finite(extra["booked_fee_usdt"]),
            TradeRef.from_dict(trade) if trade else None,
            finite(fee_read) if fee_read is not None else None,
        )


def is_unsettled(order: Order) -> bool:
    """An order of ours whose outcome we do not know yet."""
    status = order.status
    if status in _UNKNOWN_OUTCOME:
        return True
    return status is _OPEN and not order.kind.is_conditional


@record
class EntryLimit:
    """What an entry of ours whose fill lay far from its plan may hold (`quantity`; 0: it is
    exited) and the risk the risk guard approved for it (None: a plan saved before it was
    kept): a trade it closes FILL_OFF_PLAN has its R over that risk (keeper/booking.py)."""

    quantity: Decimal
    approved_risk_usdt: Decimal | None = None


@record
class Book:
    """Open positions by symbol, unsettled intents and working conditional orders of ours by
    client order id.

    `working`: our stops and take-profits the exchange last reported open. One that the
    exchange no longer lists is looked up and its end (filled, cancelled, expired) recorded, so
    the database never keeps an order open that the exchange has closed.
    `unechoed` holds orders booked from the exchange's direct answer (client order id →
    (symbol, when booked)) that the user-data stream has not reported yet: until it does, the
    stream's picture of that symbol may predate the booking, so the symbol is not reconciled
    from it (and once `stream_echo_timeout_s` has passed, the keeper reads REST instead); its
    position is protected meanwhile all the same (cover.stop_while_unechoed).
    `fees_unread` holds our orders booked without their fills, by client order id, until
    their fills are read and their fee booked, in their position or, when it closed first,
    as an amendment of its closed trade (keeper/fees.py).
    `unpriced` holds, by symbol, a position closed outside the program that no price could be
    read for yet, gone from `positions`, until its trade is booked (keeper/unpriced.py).
    `entries_seen` holds, by symbol held, an exchange entry price that differed from the
    position's and that the account's trades did not explain (keeper/round_trip.py): said
    once, not looked at again until it moves once more. In memory only: a restart reads the
    trades once more.
    `limits` holds, by symbol held, the most an entry of ours whose fill lay far from its
    plan may hold (0: it is exited) and the risk its entry was approved for, until it holds
    no more (keeper/fill_check.py); saved in the repository's state (namespace
    `entry_limits`) with the position's bookings.
    `targets_refused` holds, by symbol held, when a take-profit of ours was last refused (or
    kept from going out by a rate limit): it is tried again `monitor.take_profit_retry_s`
    later, the refusal said once until one is placed (keeper/target.py). In memory only: a
    restart tries at once.
    `added_unread` holds, by symbol held (or awaiting a close's price), what a growth by hand
    added while the account's trades could not be read, until they are and its fee is booked
    — where the position closed first, against its closed trade, amended then
    (keeper/added_unread.py); saved in the repository's state with the position's bookings.
    `parts_unread` holds, by symbol held (or awaiting a close's price), the parts a person
    reduced that were booked at the mark while the account's trades could not be read, until
    they are and the position (or its close) is amended to them (keeper/part_unread.py);
    saved with the position's bookings too.
    `entries_moved` holds, by symbol held, an exchange entry price that differed from the
    position's while an order of ours there was unsettled, the round trip's replay waiting
    for it (keeper/round_trip_settle.py): an exit of ours that fills first is replayed with
    the account's trades (keeper/exit_replay_settle.py). In memory only.
    """

    positions: Mapping[str, Position] = field(default_factory=dict)
    intents: Mapping[str, Intent] = field(default_factory=dict)
    unechoed: Mapping[str, tuple[str, datetime]] = field(default_factory=dict)
    working: Mapping[str, Order] = field(default_factory=dict)
    fees_unread: Mapping[str, UnreadFees] = field(default_factory=dict)
    unpriced: Mapping[str, UnpricedClose] = field(default_factory=dict)
    entries_seen: Mapping[str, Decimal] = field(default_factory=dict)
    limits: Mapping[str, EntryLimit] = field(default_factory=dict)
    targets_refused: Mapping[str, datetime] = field(default_factory=dict)
    added_unread: Mapping[str, UnreadAddition] = field(default_factory=dict)
    parts_unread: Mapping[str, tuple[UnreadPart, ...]] = field(default_factory=dict)
    entries_moved: Mapping[str, Decimal] = field(default_factory=dict)
    # `blocked()` once per book: a book is never changed, only replaced (the executor and a
    # backtest's quiet-step checks ask each cycle and each step).
    _blocked: Mapping[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def idle(self) -> bool:
        """No position, order, unsettled intent or unread fee of ours, no close unpriced."""
        return not (
            self.positions
            or self.intents
            or self.working
            or self.unechoed
            or self.fees_unread
            or self.unpriced
        )

    def intents_for(self, symbol: str) -> list[Intent]:
        return [i for i in self.intents.values() if i.symbol == symbol]

    def blocked(self) -> Mapping[str, str]:
        """Symbols no entry may go to now, and why: an unsettled order of ours there, or a
        working stop or take-profit of ours that met its trigger and is not done
        (keeper/firing.py) or that no position holds any more (not released yet: its cancel
        failed or was not sent, `firing.left_reason`), or a close outside the program
        awaiting its price (keeper/unpriced.py); one reason a symbol, the latest unsettled
        order's first."""
        blocked = self._blocked
        if blocked is None:
            blocked = self._find_blocked()
            object.__setattr__(self, "_blocked", blocked)
        return blocked

    def _find_blocked(self) -> dict[str, str]:
        why = {
            o.symbol: left_reason(o)
            for o in self.working.values()
            if o.symbol not in self.positions
        }
        firing = [(o.triggered_at, o) for o in self.working.values() if o.triggered_at]
        why.update((o.symbol, firing_reason(o)) for _, o in sorted(firing, key=lambda f: f[0]))
        why.update((symbol, waiting.blocks()) for symbol, waiting in self.unpriced.items())
        why.update(
            (i.symbol, f"order {i.client_order_id} unsettled since {i.sent_at.isoformat()}")
            for i in sorted(self.intents.values(), key=lambda i: i.sent_at)
        )
        return why

    def with_positions_moved(self, positions: Mapping[str, Position]) -> Book:
        """The book with `positions` in place of its own, the same symbols (their figures
        moved: new highs or lows, a stop): what it blocks reads the symbols alone, so a
        `blocked()` already found goes along (a backtest's steady steps make such a book
        at each step, and its executor asks at each cycle)."""
        moved = replace(self, positions=positions)
        if positions.keys() == self.positions.keys():
            object.__setattr__(moved, "_blocked", self._blocked)
        return moved

    def with_position(self, position: Position) -> Book:
        return replace(self, positions={**self.positions, position.symbol: position})

    def without_position(self, symbol: str) -> Book:
        """The book after the position on `symbol` closed, its trade about to be booked: a
        growth of it whose trades are unread kept for that trade (keeper/fee_carry.py)."""
        positions = {s: p for s, p in self.positions.items() if s != symbol}
        if not any(symbol in m for m in (self.limits, self.parts_unread)):
            return replace(self, positions=positions)
        limits = {s: q for s, q in self.limits.items() if s != symbol}
        parts = {s: a for s, a in self.parts_unread.items() if s != symbol}
        return replace(self, positions=positions, limits=limits, parts_unread=parts)

    def with_intent(self, intent: Intent) -> Book:
        return replace(self, intents={**self.intents, intent.client_order_id: intent})

    def with_fees_unread(self, unread: UnreadFees) -> Book:
        return replace(self, fees_unread={**self.fees_unread, unread.client_order_id: unread})

    def without_intent(self, client_order_id: str) -> Book:
        return replace(
            self, intents={c: i for c, i in self.intents.items() if c != client_order_id}
        )
