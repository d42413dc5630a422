"""Catch the paper account up to `now`: conditional-order triggers and funding, in time order.

Lazily, on every public call: the bars that closed and the funding settlements that fell due
since the last catch-up are processed in time order across symbols. Each symbol's next trigger
is found by screening the new bars against the symbol's nearest low-side and high-side triggers
(a scalar loop for a few bars, a vectorized scan for many), so a step of one bar costs a few
comparisons per active symbol however long the recording is.

Timing conventions: a trigger inside a bar is known when the bar closes and is stamped with the
bar's close time; a funding settlement at the same instant comes after it (the trigger happened
inside the bar, before the settlement). A low-side order (sell stop, buy take-profit) triggers
when the bar's low reaches the trigger and fills at min(trigger, open); a high-side order (buy
stop, sell take-profit) at high ≥ trigger, filled at max(trigger, open): a gap fills at the open.
When several orders of a symbol trigger in one bar, stops go first (conservative).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from decimal import Decimal

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import Order, OrderKind, OrderSide, OrderStatus
from quantum_trader.execution.paper_ledger import Ledger
from quantum_trader.execution.paper_markets import to_decimal
from quantum_trader.execution.paper_state import PaperState
from quantum_trader.record import record, replace

QUIET_SCAN_MS = 3_600_000  # how far ahead `quiet_through` looks for what falls due

TRIGGER, FUNDING = 0, 1


def triggers_on_low(order: Order) -> bool:
    """Sell stops and buy take-profits trigger on a falling price."""
    is_stop = order.kind is OrderKind.STOP_MARKET
    return is_stop == (order.side is OrderSide.SELL)


def would_trigger_now(order: Order, price: Decimal) -> bool:
    """True when the trigger is already crossed at `price` (Binance -2021)."""
    assert order.trigger_price is not None
    if triggers_on_low(order):
        return price <= order.trigger_price
    return price >= order.trigger_price


def reaches(order: Order, low: float, high: float) -> bool:
    """True when a bar with this low and high reaches the order's trigger."""
    assert order.trigger_price is not None
    if triggers_on_low(order):
        return low <= float(order.trigger_price)
    return high >= float(order.trigger_price)


def trigger_fill_base(order: Order, bar_open: Decimal) -> Decimal:
    """Price a triggered order executes at before slippage: the trigger, or the open on a gap."""
    assert order.trigger_price is not None
    if triggers_on_low(order):
        return min(order.trigger_price, bar_open)
    return max(order.trigger_price, bar_open)


class ConditionalBook:
    """Open conditional orders per symbol, in placement order (rebuilt from the state).

    Keeps, per symbol, the highest low-side trigger and the lowest high-side trigger: a bar
    that reaches neither triggers nothing, so one comparison per side screens a whole symbol.
    """

    def __init__(self, state: PaperState) -> None:
        self._open: dict[str, list[Order]] = {}
        self._levels: dict[str, tuple[float, float]] = {}
        # Each open order's trigger as a float and whether it triggers on a low, by client
        # order id: made once an order (`float(Decimal)` goes through a string), read at every
        # re-levelling of its symbol.
        self._triggers: dict[str, tuple[float, bool]] = {}
        # Placement rank, so the all-symbol listing is in placement order after a restart too.
        self._rank: dict[str, int] = {}
        self._placed = itertools.count()
        self._listing: list[Order] | None = None  # every open order, placement order (cache)
        self.version = 0  # moves with every order added or removed
        for order in state.orders.values():
            if order.kind.is_conditional and order.status is OrderStatus.OPEN:
                self.add(order)

    def add(self, order: Order) -> None:
        self.version += 1
        self._triggers[order.client_order_id] = (
            float(order.trigger_price or 0),
            triggers_on_low(order),
        )
        self._rank.setdefault(order.client_order_id, next(self._placed))
        self._open.setdefault(order.symbol, []).append(order)
        self._listing = None
        self._relevel(order.symbol)

    def remove(self, order: Order) -> None:
        self.version += 1
        orders = self._open.get(order.symbol, [])
        orders[:] = [o for o in orders if o.client_order_id != order.client_order_id]
        if not orders:
            self._open.pop(order.symbol, None)
        self._rank.pop(order.client_order_id, None)
        self._triggers.pop(order.client_order_id, None)
        self._listing = None
        self._relevel(order.symbol)

    @property
    def empty(self) -> bool:
        return not self._open

    def orders(self, symbol: str | None = None) -> list[Order]:
        if symbol is None:
            if self._listing is None:  # listed on every monitor tick, changed far less often
                every = [order for orders in self._open.values() for order in orders]
                self._listing = sorted(every, key=lambda order: self._rank[order.client_order_id])
            return list(self._listing)
        return list(self._open.get(symbol, ()))

    def levels(self, symbol: str) -> tuple[float, float]:
        """(highest low-side trigger or -inf, lowest high-side trigger or +inf)."""
        return self._levels.get(symbol, (-math.inf, math.inf))

    def symbols(self) -> list[str]:
        return list(self._open)

    def count(self, symbol: str) -> int:
        return len(self._open.get(symbol, ()))

    def _relevel(self, symbol: str) -> None:
        orders = self._open.get(symbol)
        if not orders:
            self._levels.pop(symbol, None)
            return
        low, high = -math.inf, math.inf
        for order in orders:
            trigger, on_low = self._triggers[order.client_order_id]
            if on_low:
                if trigger > low:
                    low = trigger
            elif trigger < high:
                high = trigger
        self._levels[symbol] = (low, high)


@dataclass(slots=True)
class _Cursor:
    """Unprocessed bars [bar_from, bar_to) and funding settlements [fund_from, fund_to)."""

    bar_from: int
    bar_to: int
    fund_from: int
    fund_to: int


@record
class _Event:
    time_ms: int
    kind: int
    symbol: str
    index: int
    order_ids: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.time_ms, self.kind, self.symbol)


class CatchUp:
    """Advances the account over recorded prices; see the module docstring for the rules."""

    def __init__(self, ledger: Ledger, book: ConditionalBook) -> None:
        self.ledger = ledger
        self.book = book
        # (what it was found for: book version, held symbols; the first instant something
        # falls due after the catch-up it was found at, or one past the end of the scan; the
        # scan's end): a backtest asks `quiet_through` at every step of a quiet stretch, the
        # account unchanged. A catch-up short of that first instant processed nothing, so the
        # scan holds from the later catch-up too (`_scan_holds`).
        self._due: tuple[tuple[int, tuple[str, ...]], int, int] | None = None

    def run(self, now_ms: int) -> bool:
        """Process everything due in (last catch-up, now_ms]; True if the account changed."""
        state = self.ledger.state
        if now_ms <= state.last_ms:
            return False
        if self._found_quiet(now_ms):  # a backtest's step that ran after its checks
            state.last_ms = now_ms
            return False
        active = sorted(set(self.book.symbols()) | set(state.positions))
        cursors: dict[str, _Cursor] = {}
        pending: dict[str, _Event] = {}
        for symbol in active:
            cursor = _Cursor(*self.ledger.tapes[symbol].span(state.last_ms, now_ms))
            event = self._next_event(symbol, cursor)
            if event is not None:
                cursors[symbol], pending[symbol] = cursor, event
        changed = bool(pending)
        while pending:
            event = min(pending.values(), key=lambda e: e.key)
            cursor = cursors[event.symbol]
            self._apply(event, cursor)
            following = self._next_event(event.symbol, cursor)
            if following is None:
                del pending[event.symbol]
            else:
                pending[event.symbol] = following
        state.last_ms = now_ms
        return changed

    def quiet_through(self, now_ms: int) -> bool:
        """Whether nothing is due in (last catch-up, now_ms]: no trigger, no funding.

        The first instant something falls due is found once for the account as it stands
        (scanning an hour ahead, or to `now_ms`) and kept until the account or the book moves:
        an event is due from its bar's close, or its settlement's time, on."""
        state = self.ledger.state
        due = self._due
        if due is None or now_ms > due[2] or not self._scan_holds(due):
            last_ms = state.last_ms
            # Comparisons, not max(): in 3.11 a two-value max() parses its keywords.
            end = now_ms if now_ms > last_ms + QUIET_SCAN_MS else last_ms + QUIET_SCAN_MS
            key = (self.book.version, tuple(state.positions))
            due = self._due = (key, self._first_due(last_ms, end), end)
        return now_ms < due[1]

    def _found_quiet(self, now_ms: int) -> bool:
        """Whether `quiet_through` found nothing due through `now_ms` for the account as it
        stands, without a look at the bars: then catching up only moves the time."""
        due = self._due
        return due is not None and now_ms < due[1] and now_ms <= due[2] and self._scan_holds(due)

    def _scan_holds(self, due: tuple[tuple[int, tuple[str, ...]], int, int]) -> bool:
        """Whether a scan still answers for the account as it stands: the same book and held
        symbols (what falls due depends on nothing else), and the account not yet caught up
        to what the scan found due (a catch-up since then processed nothing: it would have
        moved the book, the positions or, by funding, the catch-up past that instant)."""
        state = self.ledger.state
        return state.last_ms < due[1] and due[0] == (self.book.version, tuple(state.positions))

    def _first_due(self, last_ms: int, end_ms: int) -> int:
        """The first instant in (last_ms, end_ms] at which a trigger or a funding settlement
        falls due; end_ms + 1 when none does."""
        state = self.ledger.state
        first = end_ms + 1
        for symbol in set(self.book.symbols()) | set(state.positions):
            cursor = _Cursor(*self.ledger.tapes[symbol].span(last_ms, end_ms))
            event = self._next_event(symbol, cursor)
            if event is not None and event.time_ms < first:
                first = event.time_ms
        return first

    def _next_event(self, symbol: str, cursor: _Cursor) -> _Event | None:
        trigger = self._next_trigger(symbol, cursor)
        if symbol in self.ledger.state.positions and cursor.fund_from < cursor.fund_to:
            funding = self.ledger.tapes[symbol].funding
            assert funding is not None
            time_ms = int(funding.time_ms[cursor.fund_from])
            if trigger is None or time_ms < trigger.time_ms:
                return _Event(time_ms, FUNDING, symbol, cursor.fund_from)
        return trigger

    def _next_trigger(self, symbol: str, cursor: _Cursor) -> _Event | None:
        if cursor.bar_from >= cursor.bar_to:
            return None
        tape = self.ledger.tapes[symbol]
        low_level, high_level = self.book.levels(symbol)
        first = tape.first_reach(cursor.bar_from, cursor.bar_to, low_level, high_level)
        if first is None:
            return None
        low, high = float(tape.bars.low[first]), float(tape.bars.high[first])
        hits = [o for o in self.book.orders(symbol) if reaches(o, low, high)]
        hits.sort(key=lambda order: order.kind is not OrderKind.STOP_MARKET)
        close_ms = int(tape.bars.time_ms[first]) + tape.bars.timeframe_ms
        ids = tuple(order.client_order_id for order in hits)
        return _Event(close_ms, TRIGGER, symbol, first, ids)

    def _apply(self, event: _Event, cursor: _Cursor) -> None:
        if event.kind == FUNDING:
            self.ledger.settle_funding(event.symbol, event.index)
            cursor.fund_from = event.index + 1
            return
        for order_id in event.order_ids:
            self._trigger(self.ledger.state.orders[order_id], event)
        cursor.bar_from = event.index + 1

    def _trigger(self, order: Order, event: _Event) -> None:
        if order.status is not OrderStatus.OPEN:  # a close-all ended with its position
            return
        ledger = self.ledger
        tape = ledger.tapes[order.symbol]
        position = ledger.state.positions.get(order.symbol)
        self.book.remove(order)
        stamp = utc_from_ms(event.time_ms)
        if position is None or position.side.exit_order_side is not order.side:
            expired = replace(
                order,
                status=OrderStatus.EXPIRED,
                updated_at=stamp,
                detail="triggered with no position to reduce",
            )
            ledger.state.orders[order.client_order_id] = expired
            return
        quantity = position.quantity
        if not order.close_position:
            quantity = min(order.quantity, quantity)
        bar_open_ms = int(tape.bars.time_ms[event.index])
        base = trigger_fill_base(order, to_decimal(tape.bars.open[event.index]))
        price = ledger.taker_price(order.symbol, order.side, base, quantity, bar_open_ms)
        fill = ledger.execute(
            order.client_order_id, order.symbol, order.side, quantity, price, event.time_ms
        )
        ledger.state.orders[order.client_order_id] = replace(
            order,
            status=OrderStatus.FILLED,
            filled_quantity=quantity,
            average_price=price,
            fee_usdt=fill.fee_usdt,
            updated_at=stamp,
        )
        expire_close_all(ledger, self.book, order.symbol, event.time_ms)


def closes_held(ledger: Ledger, symbol: str, side: OrderSide) -> bool:
    """Whether an order on `side` closes (part of) the position held of `symbol`."""
    position = ledger.state.positions.get(symbol)
    return position is not None and position.side.exit_order_side is side


def expire_close_all(ledger: Ledger, book: ConditionalBook, symbol: str, now_ms: int) -> None:
    """End the close-all orders of `symbol` once no position they would close is held: Binance
    ends a GTE order with its position (an order left would close a later one)."""
    for order in book.orders(symbol):
        if order.close_position and not closes_held(ledger, symbol, order.side):
            book.remove(order)
            ledger.state.orders[order.client_order_id] = replace(
                order,
                status=OrderStatus.EXPIRED,
                updated_at=utc_from_ms(now_ms),
                detail="expired with its position (GTE)",
            )
