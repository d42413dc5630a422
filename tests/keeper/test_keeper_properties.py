"""The keeper against an exchange that loses answers and requests, fills half, rejects, refuses
every exit for a while, goes dark for tens of seconds, moves its prices, and is traded on by
hand; with restarts in between.

For any such script (hypothesis), ticking every 5 s like the daemon:
- no decision produces more than one entry, and no entry goes where an order of ours is
  unsettled, nor where a stop of ours the keeper has read firing is still not done (should
  it execute later, it would reduce the new position);
- after a tick that read the exchange with no fault armed, every position on the exchange has
  a reduce-only stop of ours covering all of it, also while every exit is refused (a fault
  that lasts, not one of those armed for one request); a stop the exchange left firing for
  good counts for `monitor.stop_stuck_after_s` at most, one that expired unexecuted not at all;
- no order of ours stays unsettled longer than `unknown_order_final_s` once the exchange can
  be read;
- the books agree with the exchange: with nothing unsettled, the ledger's positions are the
  exchange's; every order of ours on the exchange is in the database with the state the
  exchange gives it;
- a tick that read neither the account's trades nor the marks is not held to the two
  checks above (no mark: no stop can be placed clear of it; a part reduced by hand then
  waits, booked as it was, for a price: keeper/unpriced.py), and once they read again every
  close by hand that awaited a price is booked within `external_close_mark_after_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from model_exchange import ModelExchange

from quantum_trader.domain import (
    ExitMode,
    MarketRules,
    OrderKind,
    OrderSide,
    OrderStatus,
    Side,
    SizedOrder,
)
from quantum_trader.errors import OrderRejected, RetryLater
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

T0 = datetime(2025, 6, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
PRICES = {SYMBOLS[0]: Decimal(100), SYMBOLS[1]: Decimal(50)}
RULES = {
    s: MarketRules(s, Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal(1))
    for s in SYMBOLS
}
TICK = timedelta(seconds=5)
KEEPER = KeeperSettings()
GRACE = timedelta(seconds=KEEPER.unknown_order_final_s)
FAULTS = ("lose_next", "drop_next", "half_next", "reject_next", "stall_next", "expire_next")
STUCK_AFTER = timedelta(seconds=MonitorSettings().stop_stuck_after_s)


@dataclass
class Harness:
    exchange: ModelExchange
    repository: InMemoryRepository
    keeper: PositionKeeper
    now: datetime
    armed: bool = False
    prices_down: bool = False  # the last tick could not read the marks (keeper/unpriced.py)
    unprotected_ticks: dict[str, int] = field(default_factory=dict)
    firing_read: set[str] = field(default_factory=set)  # by the keeper's last good tick

    @classmethod
    async def start(cls) -> Harness:
        exchange = ModelExchange(RULES, dict(PRICES), T0)
        repository = InMemoryRepository()
        return cls(exchange, repository, await keeper_on(exchange, repository, T0), T0)

    async def restart(self) -> None:
        self.keeper = await keeper_on(self.exchange, self.repository, self.now)
        self.firing_read = set()  # this keeper has read nothing yet

    def advance(self, by: timedelta) -> None:
        self.now += by
        self.exchange.now = self.now

    async def tick(self) -> bool:
        """One 5 s tick; False when the exchange could not be read."""
        self.advance(TICK)
        armed = self.armed_faults()
        self.prices_down = self.exchange.marks_unreadable > 0
        firing = {c for c, o in self.exchange.orders.items() if o.triggered_at is not None}
        try:
            await self.keeper.tick(self.now)
        except RetryLater:
            return False
        self.firing_read = firing
        self.armed = bool(armed - self.armed_faults())  # a fault went off during the tick
        return True

    def armed_faults(self) -> set[str]:
        return {name for name in FAULTS if getattr(self.exchange, name)}

    async def enter(self, symbol: str, side: Side) -> None:
        entries_before = entries(self.exchange)
        blocked_before = symbol in self.keeper.view().blocked
        held_before = symbol in self.keeper.positions
        orders = self.exchange.orders
        firing_before = any(
            orders[c].symbol == symbol and orders[c].status is OrderStatus.OPEN
            for c in self.firing_read
        )
        with contextlib.suppress(OrderRejected, RetryLater):
            await self.keeper.enter(sized(symbol, side, self.exchange.marks[symbol]), self.now)
        sent = entries(self.exchange) - entries_before
        assert sent <= 1, "one decision, one entry"
        if blocked_before or held_before:
            assert sent == 0, "no entry where a position or an unsettled order is"
        if firing_before:
            assert blocked_before or held_before, "no entry beside a stop of ours firing"


async def keeper_on(
    exchange: ModelExchange, repository: InMemoryRepository, now: datetime
) -> PositionKeeper:
    ledger = await Ledger.load(repository, Decimal(10_000), now, PerformanceSettings())
    return await PositionKeeper.load(exchange, repository, ledger, RULES, KEEPER, MonitorSettings())


def entries(exchange: ModelExchange) -> int:
    return sum(1 for r in exchange.received if purpose_of(r.client_order_id) is Purpose.ENTRY)


def sized(symbol: str, side: Side, price: Decimal) -> SizedOrder:
    quantity = (Decimal(300) / price).quantize(Decimal("0.001"))
    stop = price * (1 - Decimal("0.03") * side.sign)
    target = price * (1 + Decimal("0.06") * side.sign)
    return SizedOrder(
        symbol=symbol,
        side=side,
        quantity=quantity,
        entry_price=price,
        stop_price=stop.quantize(Decimal("0.01")),
        take_profit_price=target.quantize(Decimal("0.01")),
        leverage=3,
        notional_usdt=quantity * price,
        margin_usdt=quantity * price / 3,
        expected_loss_usdt=quantity * price * Decimal("0.03"),
        expected_profit_usdt=quantity * price * Decimal("0.06"),
        costs_usdt=Decimal(0),
        atr_pct=0.02,
        confidence=0.8,
        exit_mode=ExitMode.DEFENSIVE_TRAIL,
    )


# -- the invariants -------------------------------------------------------------------------------


def assert_protected(harness: Harness) -> None:
    """Every exchange position has a reduce-only stop of ours covering it; one that fired and
    never executed counts for `monitor.stop_stuck_after_s` at most."""
    exchange = harness.exchange
    for symbol, (side, quantity, _) in exchange.held.items():
        stops = [
            o
            for o in exchange.orders.values()
            if o.symbol == symbol
            and o.status is OrderStatus.OPEN
            and o.kind is OrderKind.STOP_MARKET
            and o.reduce_only
            and o.side is side.exit_order_side
            and is_ours(o.client_order_id)
            and (o.triggered_at is None or harness.now - o.triggered_at < STUCK_AFTER)
        ]
        assert any(o.quantity >= quantity for o in stops), f"{symbol} {quantity} unprotected"


async def assert_books_agree(harness: Harness) -> None:
    view = harness.keeper.view()
    if view.unsettled == 0:
        ledger = {s: (p.side, p.quantity) for s, p in view.positions.items()}
        exchange = {s: (side, q) for s, (side, q, _) in harness.exchange.held.items()}
        assert ledger == exchange
    for order in harness.exchange.orders.values():
        if not is_ours(order.client_order_id):
            continue
        recorded = await harness.repository.get_order(order.client_order_id)
        assert recorded is not None, f"{order.client_order_id} missing from the database"
        if recorded.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            continue  # an unsettled intent: bounded by the time check
        assert recorded.status is order.status, (order, recorded)


async def assert_no_stale_intents(harness: Harness) -> None:
    for order in await harness.repository.open_orders():
        if order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            age = harness.now - (order.created_at)
            assert age <= GRACE + TICK, f"{order.client_order_id} unsettled for {age}"


# -- the scripts ----------------------------------------------------------------------------------

symbol_index = st.integers(0, len(SYMBOLS) - 1)
steps = st.one_of(
    st.tuples(st.just("enter"), symbol_index, st.sampled_from([Side.LONG, Side.SHORT])),
    st.tuples(st.just("move"), symbol_index, st.integers(-500, 500)),
    st.tuples(st.just("fault"), st.sampled_from(FAULTS), st.just(0)),
    st.tuples(st.just("outage"), st.integers(5, 40), st.just(0)),
    st.tuples(st.just("fills_down"), st.integers(1, 6), st.just(0)),
    st.tuples(st.just("prices_down"), st.integers(1, 3), st.just(0)),
    st.tuples(st.just("refuse_exits"), st.integers(5, 60), st.just(0)),
    st.tuples(st.just("by_hand"), symbol_index, st.sampled_from(["open", "close", "reduce"])),
    st.tuples(st.just("wait"), st.integers(1, 3), st.just(0)),
    st.tuples(st.just("restart"), st.just(0), st.just(0)),
)


async def apply(harness: Harness, step: tuple[object, object, object]) -> None:
    kind, a, b = step
    exchange = harness.exchange
    if kind == "enter":
        assert isinstance(a, int)
        assert isinstance(b, Side)
        await harness.enter(SYMBOLS[a], b)
    elif kind == "move":
        assert isinstance(a, int)
        assert isinstance(b, int)
        symbol = SYMBOLS[a]
        price = exchange.marks[symbol] * (1 + Decimal(b) / 10_000)
        exchange.move(symbol, price.quantize(Decimal("0.01")))
    elif kind == "fault":
        setattr(exchange, str(a), True)
    elif kind == "outage":
        assert isinstance(a, int)
        exchange.reads_down_until = harness.now + timedelta(seconds=a)
    elif kind == "fills_down":  # the next reads of fills fail; all else reads
        assert isinstance(a, int)
        exchange.fills_unreadable = a
    elif kind == "prices_down":  # the next reads of the account's trades and the marks fail
        assert isinstance(a, int)
        exchange.account_fills_unreadable = exchange.marks_unreadable = a
    elif kind == "refuse_exits":  # as Binance's -4131 PERCENT_PRICE on a thin book
        assert isinstance(a, int)
        exchange.exits_refused_until = harness.now + timedelta(seconds=a)
    elif kind == "by_hand":
        assert isinstance(a, int)
        by_hand(exchange, SYMBOLS[a], str(b))
    elif kind == "wait":
        assert isinstance(a, int)
        for _ in range(a):
            await harness.tick()
    elif kind == "restart":
        await harness.restart()


def by_hand(exchange: ModelExchange, symbol: str, what: str) -> None:
    held = exchange.held.get(symbol)
    if what == "open":
        exchange.by_hand(symbol, OrderSide.BUY, Decimal("1.5"))
    elif held is not None:
        side, quantity, _ = held
        part = quantity if what == "close" else (quantity / 2).quantize(Decimal("0.001"))
        if part > 0:
            exchange.by_hand(symbol, side.exit_order_side, part)


async def run_script(script: list[tuple[object, object, object]]) -> None:
    harness = await Harness.start()
    await harness.keeper.tick(harness.now, rest=True)
    for step in script:
        await apply(harness, step)
        if not await harness.tick():
            continue
        await check(harness)
    harness.exchange.reads_down_until = harness.exchange.exits_refused_until = None
    harness.exchange.fills_unreadable = 0
    harness.exchange.account_fills_unreadable = harness.exchange.marks_unreadable = 0
    for fault in FAULTS:
        setattr(harness.exchange, fault, False)
    for _ in range(int(GRACE / TICK) + 2):  # the exchange is back: everything settles
        await harness.tick()
    await check(harness)
    for _ in range(int(KEEPER.external_close_mark_after_s / TICK.total_seconds()) + 1):
        if not harness.keeper.book.unpriced:
            break
        await harness.tick()  # a close awaiting its price: at its trades, or the mark after
    assert harness.keeper.book.unpriced == {}
    assert harness.keeper.view().unsettled == 0
    assert harness.keeper.book.fees_unread == {}  # every fee read once the fills can be
    await assert_books_agree(harness)


async def check(harness: Harness) -> None:
    if harness.prices_down:
        return  # neither the trades nor the marks read (see the module docstring)
    if not harness.armed:
        assert_protected(harness)
    await assert_books_agree(harness)
    await assert_no_stale_intents(harness)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(script=st.lists(steps, max_size=40))
# A lost stop request, then a partial take-profit: the rest was left without a stop for a tick.
@example(script=[("fault", "drop_next", 0), ("by_hand", 0, "open"), ("move", 0, 400)])
# A lost stop request, then a reduction by hand: the position waited for the request to settle
# (30 s) with no stop, as the planner neither managed nor protected it meanwhile.
@example(script=[("fault", "drop_next", 0), ("by_hand", 1, "open"), ("by_hand", 1, "reduce")])
# A lost stop request, then a full exit the exchange refuses for a minute: no stop was placed.
@example(
    script=[
        ("refuse_exits", 60, 0),
        ("fault", "drop_next", 0),
        ("by_hand", 0, "open"),
        ("move", 0, -500),
    ]
)
# A position opened by hand, a read outage, entries refused meanwhile, then a fall through
# the stop: the database kept a stop OPEN that the exchange had FILLED.
@example(
    script=[
        ("by_hand", 0, "open"),
        ("outage", 31, 0),
        ("enter", 0, Side.LONG),
        ("enter", 0, Side.LONG),
        ("enter", 0, Side.LONG),
        ("enter", 0, Side.LONG),
        ("move", 0, -300),
        ("by_hand", 0, "open"),
    ]
)
# A stop refused and the market exit that replaced it lost; then the mark reached the stop: a
# stop there was refused (-2021) and, with the exit in flight, the position waited unprotected.
@example(
    script=[
        ("fault", "drop_next", 0),
        ("fault", "reject_next", 0),
        ("by_hand", 0, "open"),
        ("move", 0, -300),
    ]
)
# A position grown by hand past its stop, then a partial take-profit refused (-4131): the stop,
# sized for the old quantity, no longer covered the position.
@example(
    script=[
        ("enter", 1, Side.LONG),
        ("outage", 16, 0),
        ("by_hand", 1, "open"),
        ("move", 1, 399),
        ("outage", 11, 0),
        ("enter", 0, Side.LONG),
        ("refuse_exits", 6, 0),
    ]
)
# A stop the exchange left firing for good (Binance's TRIGGERING) while the exit was refused,
# then the mark came back above it: the keeper counted it as the position's stop for ever.
@example(
    script=[
        ("enter", 0, Side.LONG),
        ("fault", "stall_next", 0),
        ("refuse_exits", 60, 0),
        ("move", 0, -400),
        ("move", 0, 600),
        ("wait", 3, 0),
        ("wait", 3, 0),
    ]
)
# A stop left firing for good, the position closed at market by the stop maths meanwhile: an
# entry went beside the firing stop, which could still execute against the new position.
@example(
    script=[
        ("enter", 0, Side.LONG),
        ("fault", "stall_next", 0),
        ("move", 0, -400),
        ("wait", 2, 0),
        ("enter", 0, Side.LONG),
    ]
)
# A close by hand seen with neither the trades nor a mark read (seed 30066 of the hand-trading
# campaign), a restart while it awaits its price, a flip by hand beside it.
@example(
    script=[
        ("enter", 0, Side.LONG),
        ("prices_down", 2, 0),
        ("by_hand", 0, "close"),
        ("restart", 0, 0),
        ("by_hand", 0, "open"),
        ("wait", 3, 0),
    ]
)
def test_the_keeper_keeps_every_position_protected_and_the_books_true(
    script: list[tuple[object, object, object]],
) -> None:
    asyncio.run(run_script(script))
