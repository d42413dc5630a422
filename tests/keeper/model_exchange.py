"""A small exchange behind the Exchange port, with the faults the keeper must survive.

One-way positions, market orders that fill at the mark at once, reduce-only STOP_MARKET /
TAKE_PROFIT_MARKET orders that rest until the mark crosses them. Faults, armed by the test: an
answer lost after the order was executed (`lose_next`; `lose_next_exit`: the next reduce-only
market order's), a request lost before it arrived (`drop_next`; `drop_next_stop`: the next
conditional order's), a market order that executes only half and ends EXPIRED (`half_next`), a
rejection (`reject_next`), exits refused until a given time (`exits_refused_until`: every
reduce-only market order is rejected, as Binance does with -4131 PERCENT_PRICE when the book is
too thin), every conditional order refused (`stops_refused`), read outages until a given time
(`reads_down_until`: every read raises RetryLater, as Binance's REST does when it is
unreachable), the next conditional order the mark crosses left firing for good (`stall_next`:
open, `triggered_at` set, never executed nor cancellable, as Binance's demo trading has left
stops in TRIGGERING) or ended with nothing executed (`expire_next`: its market order ran out of
book), the next reads of an order's fills failing (`fills_unreadable`: that many, whatever else
can be read) or answered in a shape the adapter cannot read (`fills_malformed`: that many;
MarketDataError, as the ccxt adapter raises for a userTrades row with a commission "NaN" or a
field missing) or listing none of the order's trades yet (`fills_unlisted`: that many), the
next reads of the account's trades on a symbol failing (`account_fills_unreadable`: that many),
the next lookups of an order failing (`lookups_unreadable`: that many) or answered in a shape
the adapter cannot read (`lookups_malformed`: that many; MarketDataError), the next cancels
answered so (`cancels_malformed`: that many; the adapter's cancel looks the order up when
Binance says it is not open), the next reads of its force orders failing
(`force_orders_unreadable`) or answered in a shape the adapter cannot read
(`force_orders_malformed`). The next market order may execute in two trades, the second at the
mark plus `split_next` (an entry of ours filled at two prices); the positions may report their
entry price rounded to `entry_quantum` (Binance's own precision), and the next entry (a market
order not reduce-only) may fill at `entry_fills_at`, not the mark (a book thinner than the
cost model prices, or a market that moved while the order travelled). A test liquidates or
deleverages a position (`force_close`: the whole of it, by an order not ours that
`fetch_force_orders` lists). As Binance does (-2021), it refuses a conditional order whose
trigger the mark has already reached; with `answers_without_fees`, as Binance's do, its orders
carry no commission (only their fills do). It keeps a log of every order request it received,
so a test can count entries, and of every read of an order's fills (`fills_asked`), of the
account's trades (`account_fills_asked`) and of its force orders (`force_orders_asked`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    Balance,
    ExchangePosition,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    ReasonCode,
    Side,
)
from quantum_trader.errors import MarketDataError, OrderRejected, OrderStateUnknown, RetryLater

FEE = Decimal("0.0004")


@dataclass
class ModelExchange:
    rules: Mapping[str, MarketRules]
    marks: dict[str, Decimal]
    now: datetime
    held: dict[str, tuple[Side, Decimal, Decimal]] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: dict[str, list[Fill]] = field(default_factory=dict)
    received: list[OrderRequest] = field(default_factory=list)
    lose_next: bool = False
    lose_next_exit: bool = False
    drop_next: bool = False
    drop_next_stop: bool = False
    half_next: bool = False
    reject_next: bool = False
    stall_next: bool = False
    expire_next: bool = False
    exits_refused_until: datetime | None = None
    stops_refused: bool = False
    reads_down_until: datetime | None = None
    fills_unreadable: int = 0
    fills_malformed: int = 0
    fills_unlisted: int = 0
    account_fills_unreadable: int = 0
    marks_unreadable: int = 0
    lookups_unreadable: int = 0
    lookups_malformed: int = 0
    cancels_malformed: int = 0
    account_fills_asked: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    forced: dict[str, tuple[str, ExitReason, datetime]] = field(default_factory=dict)
    force_orders_unreadable: int = 0
    force_orders_malformed: int = 0
    force_orders_asked: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    answers_without_fees: bool = False
    fills_asked: list[str] = field(default_factory=list)
    # Set: a funding read waits on it (a process that dies while the read is in flight).
    funding_hangs: asyncio.Event | None = None
    funding_asked: asyncio.Event = field(default_factory=asyncio.Event)
    sequence: int = 0
    split_next: Decimal | None = None
    entry_quantum: Decimal | None = None
    entry_fills_at: Decimal | None = None

    # -- reads ----------------------------------------------------------------------------------

    def _read(self) -> None:
        if self.reads_down_until is not None and self.now < self.reads_down_until:
            raise RetryLater("read outage (loopback model)")

    async def load_markets(self) -> Mapping[str, MarketRules]:
        return self.rules

    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        self._read()
        if self.marks_unreadable > 0:
            self.marks_unreadable -= 1
            raise RetryLater("mark prices read failed (loopback model)")
        return {s: self.marks[s] for s in symbols}

    async def fetch_balance(self) -> Balance:
        self._read()
        return Balance(Decimal(10_000), Decimal(10_000), ZERO)

    async def fetch_positions(self) -> list[ExchangePosition]:
        self._read()
        quantum = self.entry_quantum
        return [
            ExchangePosition(
                symbol, side, quantity, entry.quantize(quantum) if quantum else entry, 3
            )
            for symbol, (side, quantity, entry) in sorted(self.held.items())
        ]

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        self._read()
        if self.lookups_unreadable > 0:
            self.lookups_unreadable -= 1
            raise RetryLater("order lookup failed (loopback model)")
        if self.lookups_malformed > 0:
            self.lookups_malformed -= 1
            raise MarketDataError("order: executedQty 'NaN' (loopback model)")
        return self.orders.get(client_order_id)

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        self._read()
        return [
            o
            for o in self.orders.values()
            if o.kind.is_conditional and o.status is OrderStatus.OPEN and symbol in (None, o.symbol)
        ]

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        self._read()
        self.fills_asked.append(client_order_id)
        if self.fills_unreadable > 0:
            self.fills_unreadable -= 1
            raise RetryLater("fills read failed (loopback model)")
        if self.fills_malformed > 0:
            self.fills_malformed -= 1
            raise MarketDataError(f"userTrades {symbol}: field 'commission' is not finite: 'NaN'")
        if self.fills_unlisted > 0:
            self.fills_unlisted -= 1
            return []
        return list(self.fills.get(client_order_id, []))

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        self._read()
        self.account_fills_asked.append((symbol, start, end))
        if self.account_fills_unreadable > 0:
            self.account_fills_unreadable -= 1
            raise RetryLater("account trades read failed (loopback model)")
        fills = [f for by in self.fills.values() for f in by if f.symbol == symbol]
        return sorted((f for f in fills if start <= f.time <= end), key=lambda f: f.time)

    async def fetch_force_orders(
        self, symbol: str, start: datetime, end: datetime
    ) -> dict[str, ExitReason]:
        self._read()
        self.force_orders_asked.append((symbol, start, end))
        if self.force_orders_unreadable > 0:
            self.force_orders_unreadable -= 1
            raise RetryLater("force orders read failed (loopback model)")
        if self.force_orders_malformed > 0:
            self.force_orders_malformed -= 1
            raise MarketDataError(f"forceOrders {symbol}: missing field 'orderId'")
        return {
            order_id: reason
            for order_id, (forced_symbol, reason, at) in self.forced.items()
            if forced_symbol == symbol and start <= at <= end
        }

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        self.funding_asked.set()
        if self.funding_hangs is not None:
            await self.funding_hangs.wait()
        return ZERO

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- orders ---------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        self.received.append(request)
        if self.reject_next:
            self.reject_next = False
            raise OrderRejected(ReasonCode.ORDER_REJECTED, "model: rejected")
        if self._exits_refused(request):
            raise OrderRejected(ReasonCode.ORDER_REJECTED, "model: -4131 PERCENT_PRICE")
        if self.drop_next:
            self.drop_next = False
            raise OrderStateUnknown(request.client_order_id, "model: the request was lost")
        if self.drop_next_stop and request.kind.is_conditional:
            self.drop_next_stop = False
            raise OrderStateUnknown(request.client_order_id, "model: the request was lost")
        order = self._accept(request)
        exit_ = request.reduce_only and not request.kind.is_conditional
        if self.lose_next_exit and exit_ and not self.lose_next:
            self.lose_next_exit = False
            raise OrderStateUnknown(request.client_order_id, "model: the exit's answer was lost")
        if self.lose_next:
            self.lose_next = False
            raise OrderStateUnknown(request.client_order_id, "model: the answer was lost")
        return order

    def _exits_refused(self, request: OrderRequest) -> bool:
        until = self.exits_refused_until
        exit_ = request.reduce_only and not request.kind.is_conditional
        return exit_ and until is not None and self.now < until

    def _accept(self, request: OrderRequest) -> Order:
        order = Order.pending(request, self.now)
        if request.kind.is_conditional:
            if self.stops_refused or _crossed(order, self.marks[request.symbol]):
                raise OrderRejected(ReasonCode.ORDER_REJECTED, "model: -2021 would trigger")
            order = replace(order, status=OrderStatus.OPEN, exchange_order_id=self._id())
            self.orders[request.client_order_id] = order
            return order
        quantity = request.quantity
        status = OrderStatus.FILLED
        if self.half_next:
            self.half_next = False
            quantity = self.rules[request.symbol].round_quantity_down(quantity / 2)
            status = OrderStatus.EXPIRED
        if request.reduce_only:
            quantity = min(quantity, self._held_quantity(request.symbol, request.side))
            if quantity <= 0:
                raise OrderRejected(ReasonCode.ORDER_REJECTED, "model: reduce-only rejected")
        price = self.marks[request.symbol]
        if self.entry_fills_at is not None and not request.reduce_only:
            price, self.entry_fills_at = self.entry_fills_at, None
        if self.split_next is not None:
            first = self.rules[request.symbol].round_quantity_down(quantity / 3)
            executed = self._execute(order, first, price, status)
            price += self.split_next
            self.split_next = None
            order = self._execute(order, quantity - first, price, status)
            fills = self.fills[request.client_order_id]
            notional = sum((f.quantity * f.price for f in fills), ZERO)
            order = replace(
                order,
                filled_quantity=quantity,
                average_price=notional / quantity,
                fee_usdt=executed.fee_usdt + order.fee_usdt,
            )
        else:
            order = self._execute(order, quantity, price, status)
        self.orders[request.client_order_id] = order
        return order

    def _held_quantity(self, symbol: str, closing_side: OrderSide) -> Decimal:
        side, quantity, _ = self.held.get(symbol, (Side.LONG, ZERO, ZERO))
        return quantity if side.exit_order_side is closing_side else ZERO

    def _execute(
        self, order: Order, quantity: Decimal, price: Decimal, status: OrderStatus
    ) -> Order:
        fee = quantity * price * FEE
        if quantity > 0:
            self._apply(order.symbol, order.side, quantity, price)
            fill = Fill(
                self._id(), order.client_order_id, order.symbol, order.side, quantity, price, fee,
                self.now,
            )  # fmt: skip
            self.fills.setdefault(order.client_order_id, []).append(fill)
        return replace(
            order,
            status=status,
            exchange_order_id=order.exchange_order_id or self._id(),
            filled_quantity=quantity,
            average_price=price if quantity > 0 else None,
            fee_usdt=ZERO if self.answers_without_fees else fee,
            updated_at=self.now,
        )

    def _apply(self, symbol: str, side: OrderSide, quantity: Decimal, price: Decimal) -> None:
        signed = quantity if side is OrderSide.BUY else -quantity
        held_side, held_quantity, entry = self.held.get(symbol, (Side.LONG, ZERO, ZERO))
        current = held_quantity * held_side.sign
        after = current + signed
        if after == 0:
            self.held.pop(symbol, None)
            return
        new_side = Side.LONG if after > 0 else Side.SHORT
        if current == 0 or (current > 0) != (after > 0):
            entry = price
        elif abs(after) > abs(current):
            entry = (entry * abs(current) + price * quantity) / abs(after)
        self.held[symbol] = (new_side, abs(after), entry)

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        if self.cancels_malformed > 0:
            self.cancels_malformed -= 1
            raise MarketDataError("algoOrder: algoStatus 'SOMETHING' (loopback model)")
        order = self.orders.get(client_order_id)
        if order is None or order.status is not OrderStatus.OPEN:
            raise OrderRejected(ReasonCode.ORDER_REJECTED, "model: unknown order")
        if order.triggered_at is not None:  # Binance: -2011, and the adapter finds it open
            raise OrderStateUnknown(client_order_id, "model: cancel refused while firing")
        self.orders[client_order_id] = replace(
            order, status=OrderStatus.CANCELED, updated_at=self.now
        )

    # -- the market and people ------------------------------------------------------------------

    def move(self, symbol: str, price: Decimal) -> None:
        """Set the mark; conditional orders it crosses fire at their trigger (reduce-only)."""
        self.marks[symbol] = price
        for order in list(self.orders.values()):
            if order.symbol != symbol or order.status is not OrderStatus.OPEN:
                continue
            if not order.kind.is_conditional or not _crossed(order, price):
                continue
            if order.triggered_at is not None:
                continue  # stalled: it fired once and never executes
            if self.stall_next:
                self.stall_next = False
                self.orders[order.client_order_id] = replace(order, triggered_at=self.now)
                continue
            if self.expire_next:
                self.expire_next = False
                expired = replace(order, status=OrderStatus.EXPIRED, updated_at=self.now)
                self.orders[order.client_order_id] = expired
                continue
            assert order.trigger_price is not None
            quantity = min(order.quantity, self._held_quantity(symbol, order.side))
            # Binance: reduce-only, its market order executes what is held and, short of the
            # order's quantity, ends EXPIRED with what it executed.
            status = OrderStatus.FILLED if quantity == order.quantity else OrderStatus.EXPIRED
            self.orders[order.client_order_id] = self._execute(
                order, quantity, order.trigger_price, status
            )

    def by_hand(self, symbol: str, side: OrderSide, quantity: Decimal) -> None:
        """A person trades on the account (never through our client ids)."""
        self._apply(symbol, side, quantity, self.marks[symbol])

    def force_close(self, symbol: str, reason: ExitReason) -> str:
        """The exchange closes the whole position itself (LIQUIDATION or ADL) at the mark, by
        an order not ours that `fetch_force_orders` lists; its id."""
        side, quantity, _ = self.held[symbol]
        prefix = "autoclose" if reason is ExitReason.LIQUIDATION else "adl_autoclose"
        name = f"{prefix}-{self._id()}"
        request = OrderRequest(
            name, symbol, side.exit_order_side, OrderKind.MARKET, quantity, reduce_only=True
        )
        order = Order.pending(request, self.now)
        self._execute(order, quantity, self.marks[symbol], OrderStatus.FILLED)
        self.forced[name] = (symbol, reason, self.now)
        return name

    def _id(self) -> str:
        self.sequence += 1
        return str(self.sequence)


def _crossed(order: Order, price: Decimal) -> bool:
    assert order.trigger_price is not None
    sells = order.side is OrderSide.SELL
    if order.kind is OrderKind.STOP_MARKET:
        return price <= order.trigger_price if sells else price >= order.trigger_price
    return price >= order.trigger_price if sells else price <= order.trigger_price
