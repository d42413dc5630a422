"""The keeper's planner: the books and what the exchange holds → bookings and order actions.

Pure and synchronous: `plan(book, observation, now, context)` returns the new book and what
to do; the keeper (keeper.py) carries it out. It runs at start, on every monitor tick and at
once after an order whose outcome is unknown, so start-up reconciliation, crash recovery and
the 5 s tick are one code path. Per tick (planner.py, settle.py, reduce_settle.py):

1. orders: an order of ours settles once the exchange reports how it ended and, if it filled,
   once the exchange position shows it (or `unknown_order_final_s` has passed); one the
   exchange does not know that long after it was sent was never accepted. A stop or
   take-profit of ours the exchange no longer lists is looked up and its end recorded.
   Unsettled orders block new entries on their symbol; so does a working order of ours that
   met its trigger and is not final (keeper/firing.py);
2. positions: the ledger's quantity follows the exchange's. A reduction is booked from our
   exits that filled (market exits, triggered stops and take-profits) — in full when the
   exchange had reported the fill before the positions were read, even where the position
   shows no reduction (it was reopened since: the rest is adopted) — the rest as a close
   outside this program, at the price and fee of the account's own trades when they show it
   (keeper/external.py: the keeper reads them and plans again; replayed when they do not add
   up, and for a position held as booked at another entry price: keeper/round_trip.py),
   else at the mark — unless an
   order of ours on that symbol is still
   unsettled, which may explain it later (an intent, or a stop or take-profit of ours no
   longer listed whose end is not known yet, or one executing: settle.working_unsettled;
   a stop covers what the exchange holds meanwhile,
   protect.stop_while_unsettled: what we booked while only the stream shows the reduction).
   An increase, or a position we did not hold, is adopted: protected by our stop already on
   the exchange, else by its entry's plan, else by the default. A symbol the user-data
   stream has not caught up with (an order of ours booked from its answer, not echoed yet)
   is not reconciled from the stream, but its position keeps a stop all the same
   (cover.stop_while_unechoed);
3. each reconciled position is managed at its mark price (monitor/stops.py): exits, partial
   take-profit, break-even, trailing, time exit; then protected: one reduce-only stop of ours
   at the managed stop, and after it, for an entry of ours this tick settled (answered NEW
   and filled later, or its answer lost), the take-profit of its plan, as an entry booked
   from its answer gets (protect.entry_target). Our conditional orders where no position
   needs them are cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ExchangeSnapshot,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderStatus,
    PositionEvent,
)
from quantum_trader.keeper.book import Book, TradeFees
from quantum_trader.keeper.booking import TradeDraft
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.external_saved import LastExit
from quantum_trader.keeper.firing import with_looked_up_open
from quantum_trader.keeper.ids import as_sent
from quantum_trader.keeper.protect import OrderAction
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import record, replace


@record
class FlatRead:
    """A whole tick that read a symbol flat with nothing booked on it: its time, and the
    leverage of the last position the keeper read there (1 when none: a round trip
    replayed from flat is booked with it; the flat read does not tell it). `restored`: read
    by a run before the last start (keeper/flat_reads.py): no trade before it is taken in."""

    at: datetime
    leverage: int = 1
    restored: bool = False


@record
class BeforeEntry:
    """A symbol read flat at a look (`flat`) where the user-data stream reported a change
    before an entry of ours there was booked: the account's trades from that look to our
    entry's first fill (`trades`, ours left out), where a person's round trip may lie
    (keeper/flat_reads.py `FlatReads.before_entry`). `told_apart`: the round trips a read of
    the position's own trades found there (keeper/external.py `read_account_fills`), left out
    of them: booked whatever the tick holds."""

    flat: FlatRead
    trades: tuple[Fill, ...]
    told_apart: bool = False


@record
class Observation:
    """What the keeper read this tick.

    `found`: orders looked up by client order id (None: the exchange does not know it);
    `fills`: the fills of settled orders, by client order id (absent: could not be read);
    `marks`: mark prices (a missing one is absent);
    `reflected`: our orders the exchange had reported filled before this snapshot's positions
    were read, so a REST snapshot shows their fills (see `Plan.unreflected`);
    `fills_unread`: the orders whose fills the keeper tried to read this tick and could not
    (an order that ended is then booked from its state, its fee read later: keeper/fees.py);
    `account_fills`: the account's trades on a symbol whose position a first plan found
    reduced with no order of ours to explain it, by symbol (keeper/external.py);
    `account_unread`: such symbols whose trades could not be read;
    `force_orders`: by symbol, the exchange's own orders (order id → LIQUIDATION or ADL) near
    the account's trades a first plan booked such a reduction at (keeper/forced.py);
    `last_exits`: by symbol held, the last exit of ours that left some of the position, on an
    earlier tick (keeper/external_saved.py);
    `flat_at`: by symbol the books hold nothing on, the last whole tick that read it flat on
    the exchange: what happened there since is replayed from flat with the account's trades
    (keeper/from_flat_settle.py);
    `flat_again`: by symbol the books hold nothing on, read flat at a look before and where
    a person may have opened and closed a position since (a round trip: nothing held to
    adopt, so nothing else reads its trades): within a run, those of `flat_at` the user-data
    stream reported a change of position or a fill on since; on the second whole tick after
    a start, those the last run read flat (its read) and both ticks read flat: the round
    trips made there are booked (keeper/flat_reads.py);
    `unlisted_fills`: by symbol whose trades were read from where it was read flat, the
    time of the latest trade the user-data stream reported in the read's window that the
    read does not list (Binance lists a trade a while after it: keeper/from_flat_settle.py);
    `before_entry`: by symbol an entry of ours was booked on since a look read it flat,
    where the stream reported a change before it, the trades between (`BeforeEntry`);
    `restored_unseen`: the positions an earlier run booked that no whole tick of this run
    found held as booked yet: an exit of ours that filled on one may have come after trades
    by hand made while the daemon was stopped (keeper/exit_replay_settle.py).
    """

    snapshot: ExchangeSnapshot
    found: Mapping[str, Order | None] = field(default_factory=dict)
    fills: Mapping[str, Sequence[Fill]] = field(default_factory=dict)
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    reflected: frozenset[str] = frozenset()
    fills_unread: frozenset[str] = frozenset()
    account_fills: Mapping[str, Sequence[Fill]] = field(default_factory=dict)
    account_unread: frozenset[str] = frozenset()
    force_orders: Mapping[str, Mapping[str, ExitReason]] = field(default_factory=dict)
    last_exits: Mapping[str, LastExit] = field(default_factory=dict)
    flat_at: Mapping[str, FlatRead] = field(default_factory=dict)
    flat_again: Mapping[str, FlatRead] = field(default_factory=dict)
    unlisted_fills: Mapping[str, datetime] = field(default_factory=dict)
    before_entry: Mapping[str, BeforeEntry] = field(default_factory=dict)
    restored_unseen: frozenset[str] = frozenset()

    def trade_ids_read(self) -> set[str]:
        """The trade ids of this tick's fills of our orders: not recorded yet, so not left
        out of the account's trades when those were read (keeper/external.py)."""
        return {f.trade_id for read in self.fills.values() for f in read}


@record
class Context:
    """Settings, market rules and the market conditions the stop maths reads."""

    rules: Mapping[str, MarketRules]
    keeper: KeeperSettings
    monitor: MonitorSettings
    defensive_exit: bool = False
    turned_choppy: frozenset[str] = frozenset()


@record
class Note:
    """One log line about what reconciliation found; `error` for what needs attention,
    `warning` for what is short but needs none."""

    event: str
    symbol: str
    detail: str
    error: bool = False
    warning: bool = False


@record
class Plan:
    """The books after a tick, what to persist, and the orders to send, in order.

    `unreflected`: exits of ours that filled (fills read) but the position does not show, not
    in `Observation.reflected` (a stop or take-profit that ran out of position, where the
    position still shows some held on its side), or entries of ours that filled for more than
    is held on their side (keeper/unseen_entry.py): they may have filled after the positions
    were read, or the position was reopened (or traded away) since. The keeper plans again
    from a fresh REST read, which then books them in full (keeper/recheck.py).
    `amendments`: closed trades booked without some fees, now read (keeper/fees.py).
    `reducing_trades`: by symbol, the account's trades a reduction was booked from — an exit
    of ours, or a reduction with no order of ours (keeper/external.py): never taken again for
    one. `last_exits`: by symbol, an exit of ours this plan booked that left some of the
    position (keeper/external_saved.py). `flat_kept`: the symbols of `Observation.flat_again`
    whose round trips by hand this plan left for a later tick — an order of ours unsettled
    there, the trades unread, or not back to flat yet (one not listed yet): their flat read
    is kept (keeper/flat_reads.py).
    """

    book: Book
    records: tuple[tuple[Order, tuple[Fill, ...]], ...] = ()
    trades: tuple[TradeDraft, ...] = ()
    events: tuple[PositionEvent, ...] = ()
    actions: tuple[OrderAction, ...] = ()
    notes: tuple[Note, ...] = ()
    unreflected: tuple[str, ...] = ()
    amendments: tuple[TradeFees, ...] = ()
    reducing_trades: Mapping[str, frozenset[str]] = field(default_factory=dict)
    last_exits: Mapping[str, LastExit] = field(default_factory=dict)
    flat_kept: frozenset[str] = frozenset()


def plan(
    book: Book,
    observation: Observation,
    now: datetime,
    context: Context,
    checks: ProtectionChecks | None = None,
) -> Plan:
    """Plan one tick (see the module docstring); `checks` remembers protection checks across
    ticks (the same plan, less work)."""
    # The planner imports these types, so it is imported here; by `import`, not `from …
    # import`: that form looks up the loaded module's `__path__`, which a module lacks, and
    # the AttributeError it makes costs ≈ 5,000 instructions a plan.
    import quantum_trader.keeper.planner

    return quantum_trader.keeper.planner.Planner(book, observation, now, context, checks).run()


def lookups_needed(book: Book, snapshot: ExchangeSnapshot) -> list[tuple[str, str]]:
    """(symbol, client order id) of the orders to look up before planning: every unsettled
    intent, and every working stop or take-profit of ours the exchange no longer lists, or
    lists firing, that the snapshot says nothing final about. A firing one is looked up
    because the streams' mirror keeps it firing until its end event, which may be lost: the
    restart campaign's seed 34309 kept our stop firing after it filled, until it counted as
    stuck and the position's close was booked MANUAL (`without_ended` drops it from the
    listing once a lookup says it ended). One the snapshot leaves out is listed again as the
    lookup finds it open (`as_looked_up`)."""
    listed = {o.client_order_id for o in snapshot.open_conditional_orders if o.triggered_at is None}
    wanted = [
        (i.symbol, i.client_order_id)
        for i in book.intents.values()
        if ended(snapshot.orders.get(i.client_order_id)) is None
    ]
    wanted += [
        (o.symbol, o.client_order_id)
        for o in book.working.values()
        if o.client_order_id not in listed
        and snapshot.lists_orders_of(o.symbol)  # unread this tick is not gone
        and _final(snapshot.orders.get(o.client_order_id)) is None
    ]
    return wanted


def orders_to_read_fills(
    book: Book, snapshot: ExchangeSnapshot, found: Mapping[str, Order | None]
) -> list[tuple[str, str]]:
    """(symbol, client order id) of our orders that ended with something filled."""
    if not found and not snapshot.orders:
        return []  # nothing reported how an order ended (`state_of` is None for every one)
    symbols = {i.client_order_id: i.symbol for i in book.intents.values()}
    symbols.update({o.client_order_id: o.symbol for o in book.working.values()})
    wanted = []
    for order_id, symbol in symbols.items():
        state = state_of(order_id, snapshot, found)
        if state is not None and state.status.is_final and may_have_filled(state):
            wanted.append((symbol, order_id))
    return wanted


def ended(order: Order | None) -> Order | None:
    """`order` if it says how the order ended, or that a conditional order is working."""
    if order is None or order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
        return None
    if order.status is OrderStatus.OPEN and not order.kind.is_conditional:
        return None
    return order


def _final(order: Order | None) -> Order | None:
    return order if order is not None and order.status.is_final else None


def state_of(
    order_id: str, snapshot: ExchangeSnapshot, found: Mapping[str, Order | None]
) -> Order | None:
    """The latest state the exchange reported of one of our orders, if it says anything (read
    as sent where the answer leaves reduceOnly out: ids.as_sent)."""
    streamed = ended(snapshot.orders.get(order_id))
    looked_up = ended(found.get(order_id))
    if streamed is not None and looked_up is not None:
        return as_sent(looked_up if looked_up.status.is_final else streamed)
    state = streamed or looked_up
    return as_sent(state) if state is not None else None


def may_have_filled(order: Order) -> bool:
    return order.filled_quantity > 0 or (
        order.kind.is_conditional and order.status is OrderStatus.FILLED
    )


def as_looked_up(
    snapshot: ExchangeSnapshot, found: Mapping[str, Order | None], book: Book
) -> ExchangeSnapshot:
    """`snapshot` as this tick's lookups `found` our orders: without the open ones they found
    ended (`without_ended`), with our working ones it leaves out that they found open, or
    the book knows firing (keeper/firing.py `with_looked_up_open`)."""
    return with_looked_up_open(without_ended(snapshot, found), found, book.working.values())


def without_ended(
    snapshot: ExchangeSnapshot, found: Mapping[str, Order | None]
) -> ExchangeSnapshot:
    """`snapshot` without the open conditional orders a lookup of this tick found ended: the
    lookup is the later word (`lookups_needed`: a firing order the mirror keeps)."""
    ended_ids = {cid for cid, order in found.items() if order is not None and order.status.is_final}
    kept = tuple(o for o in snapshot.open_conditional_orders if o.client_order_id not in ended_ids)
    if len(kept) == len(snapshot.open_conditional_orders):
        return snapshot
    return replace(snapshot, open_conditional_orders=kept)
