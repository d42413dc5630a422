"""A position reduced with no order of ours to explain it (closed by hand on Binance,
liquidated, auto-deleveraged): booked from the account's own trades when they show it. The
matching is pure; `read_account_fills` is the keeper's one read for it.

Such a reduction used to be booked at the mark of the tick that saw it, without fees: a close
by hand seconds or hours earlier (the daemon down meanwhile) at another price, its commission
missing from the trade's PnL. The keeper now reads the account's trades on the symbol since it
last saw the position as booked (`Exchange.fetch_account_fills`) and plans again with them:
the newest trades on the reducing side that are not ours, nor booked on an earlier tick, and add
up exactly to the unexplained quantity (with a flip, and what the exchange now holds the other
way) give the price (their average) and the fee (their sum). Anything else — a read that
failed, trades that do not add up (some older than the window, some not listed yet), trades
that added to the position by hand since it opened (a reopen, a round trip: the reducing trades
may be the person's own position's), an order of ours on the symbol whose fills are unread and
so cannot be told apart — is replayed from the position as booked (keeper/round_trip.py),
and books at the mark as before where that does not show it either, the note saying why.

A trade the books took a reduction from — an exit of ours (a partial take-profit of a tick
before lies in the window) or a person's trade booked for an earlier reduction — is never taken
again: the keeper remembers them while the position is held (`Plan.reducing_trades`), saved
so a restart keeps them (keeper/external_saved.py). Found by an outside probe (2026-12-03): with
the person's own trade not listed yet, our partial take-profit of a tick before — or, after a
restart, the person's earlier trade — added up and was booked again, its price taken for the
close and its fee counted twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import ZERO, ExchangeSnapshot, Fill, Position, StreamMoves
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.plan import BeforeEntry, FlatRead, Note, Observation, Plan
from quantum_trader.keeper.round_trip import round_trips_before
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange, Repository
from quantum_trader.record import record, replace

log = get_logger("keeper")

# Our clock against the exchange's trade times, and a tick's snapshot against its trades.
ACCOUNT_TRADES_SLACK = timedelta(minutes=5)
# Binance's userTrades: startTime and endTime at most 7 days apart.
ACCOUNT_TRADES_SPAN = timedelta(days=7) - timedelta(seconds=1)


@record
class ExternalExecution:
    """What the account's own trades say took `quantity` off a position."""

    quantity: Decimal
    price: Decimal
    fee_usdt: Decimal
    trades: int
    trade_ids: frozenset[str]
    opened_fee_usdt: Decimal = ZERO  # a flip: the fee of what opened the other side


def account_trades_window(
    position: Position, held_at: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """Where to look for what reduced `position`: since the last tick that found the exchange
    holding it as booked (`held_at`; not the last tick: ticks awaiting an unsettled order of
    ours saw it reduced already), else since it opened, within Binance's widest window."""
    since = position.opened_at if held_at is None else max(held_at, position.opened_at)
    return trades_window_since(since, now)


def trades_window_since(since: datetime, now: datetime) -> tuple[datetime, datetime]:
    """From `since` to `now`, each widened by the clocks' slack, within Binance's widest
    window. Also where a look at `since` read a symbol flat (a read that lagged:
    keeper/round_trip.py `replay_from_flat` takes in the fewest trades before it it must)."""
    end = now + ACCOUNT_TRADES_SLACK
    return max(since - ACCOUNT_TRADES_SLACK, end - ACCOUNT_TRADES_SPAN), end


def held_as_booked(
    before: Mapping[str, datetime],
    positions: Mapping[str, Position],
    snapshot: ExchangeSnapshot,
    now: datetime,
) -> dict[str, datetime]:
    """By symbol held, the last tick that found the exchange holding the position as booked:
    `now` where `snapshot` shows it so, else as `before`."""
    seen = {}
    for symbol, position in positions.items():
        held = snapshot.positions.get(symbol)
        if held is not None and (held.side, held.quantity) == (position.side, position.quantity):
            seen[symbol] = now
        elif symbol in before:
            seen[symbol] = before[symbol]
    return seen


def external_execution(
    position: Position,
    quantity: Decimal,
    fills: Sequence[Fill],
    ours: Collection[str],
    opened: Decimal = ZERO,
) -> ExternalExecution | None:
    """The newest trades reducing `position` whose trade ids are not in `ours`, when they add
    up to exactly `quantity` and `opened` (what a flip opened on the other side: the exchange
    now holds that much the other way); None when they do not. Where the newest do not, those
    up to an earlier instant are tried (trades after the positions were read). With a flip
    the oldest of them closed the position (the one that crossed zero in part, with that
    share of its fee)."""
    side = position.side.exit_order_side
    reducing = [f for f in fills if f.side is side and f.trade_id not in ours]
    taken = _newest_up_to_an_instant(reducing, quantity + opened)
    return _execution(quantity, taken) if taken else None


def unexplained_beside(
    fills: Sequence[Fill], taken: Collection[str], ours: Collection[str]
) -> bool:
    """Whether trades not ours are left beside those `taken` (ids): the newest trades, or
    those up to an earlier instant, add up to what changed, but others are unexplained by
    them — a flip by hand and a flip back before the last flip, all while the daemon was
    stopped (the hand-trading campaign with a restart, seed 40019: the last flip alone
    booked, the two round trips before it lost), or after a reduction (seed 40084: the
    reduction booked, the flip and flip back after it lost). The replay from the position
    as booked is tried first then (it books nothing unless it lands exactly on what is
    held, its entry price too)."""
    return any(f.trade_id not in ours and f.trade_id not in taken for f in fills)


def added_trades(
    position: Position, added: Decimal, fills: Sequence[Fill], ours: Collection[str]
) -> list[Fill]:
    """The newest trades adding to `position` whose trade ids are not in `ours`, when they
    add up to exactly `added` (a growth by hand the keeper books), newest first; empty when
    they do not (as for a reduction, those up to an earlier instant are tried too)."""
    side = position.side.entry_order_side
    adding = [f for f in fills if f.side is side and f.trade_id not in ours]
    return _newest_up_to_an_instant(adding, added)


def _newest_up_to_an_instant(trades: Sequence[Fill], wanted: Decimal) -> list[Fill]:
    """`_newest_adding_up` of the trades up to the newest instant where they add up to
    `wanted`, newest first; empty when at none."""
    ordered = sorted(trades, key=lambda f: f.time)  # stable: one instant's in listed order
    for instant in sorted({f.time for f in ordered}, reverse=True):
        taken = _newest_adding_up([f for f in ordered if f.time <= instant], wanted)
        if taken:
            return taken
    return []


def _newest_adding_up(reducing: Sequence[Fill], wanted: Decimal) -> list[Fill]:
    """The newest of `reducing` (oldest first) adding up to exactly `wanted`, newest first;
    empty when they do not. Newer trades than a tick's positions show are left out by the
    caller's trying each instant: a person's second sell between the read of the positions
    and that of the trades (found by an outside-style probe, 2026-12-03: the first sell was
    booked at the mark)."""
    taken: list[Fill] = []
    total = ZERO
    for fill in reversed(reducing):
        if total >= wanted:
            break
        taken.append(fill)
        total += fill.quantity
    return taken if total == wanted else []


def _execution(quantity: Decimal, taken: Sequence[Fill]) -> ExternalExecution:
    """What `taken` (newest first) says took `quantity` off: the oldest of them closed it."""
    notional = fee = ZERO
    used: list[Fill] = []
    left = quantity
    for fill in reversed(taken):  # oldest first: they closed the position
        if left <= 0:
            break
        part = min(left, fill.quantity)
        notional += part * fill.price
        fee += fill.fee_usdt * part / fill.quantity
        left -= part
        used.append(fill)
    ids = frozenset(f.trade_id for f in used)
    opened_fee = sum((f.fee_usdt for f in taken), ZERO) - fee
    return ExternalExecution(quantity, notional / quantity, fee, len(used), ids, opened_fee)


def added_by_hand(
    position: Position,
    fills: Sequence[Fill],
    ours: Collection[str],
    until: datetime | None = None,
) -> bool:
    """Whether the account's trades add to `position`'s side after it opened (beyond the
    clocks' slack), and not after `until` (when the trades that closed it were made), in a
    trade not ours: the position was reopened or added to by hand, so the reducing trades may
    have closed the person's position, not ours (a round trip by hand while the close itself
    fell out of Binance's 7-day window, a close then a reopen). One after the close belongs
    to what came next: a buy reducing the short a flip of a long opened (seed 30186 of the
    hand-trading campaign: it was taken for an addition, the flip booked at the mark)."""
    side, since = position.side.entry_order_side, position.opened_at + ACCOUNT_TRADES_SLACK
    return any(
        f.side is side
        and f.time > since
        and (until is None or f.time <= until)
        and f.trade_id not in ours
        for f in fills
    )


# The last five: a position held as booked at another entry price
# (keeper/round_trip_settle.py); an exit of ours on the side that adds to the position,
# filled on a position booked by an earlier run after trades by hand, filled for all of the
# position with something held after it, or filled for more than it with nothing held
# (keeper/exit_replay_settle.py).
EXTERNAL_NOTES = (
    "position_closed_externally",
    "external_close_awaits_price",
    "entry_price_moved",
    "exit_filled_other_side",
    "exit_filled_after_trades_by_hand",
    "exit_filled_then_opened_by_hand",
    "exit_filled_beyond_booked",
    "exit_filled_after_entry_moved",
)
# Trades on a symbol read flat at a look before and at this one that do not take it back to
# flat (keeper/from_flat_settle.py `settle_flat_again`).
ROUND_TRIPS_BETWEEN_LOOKS = "round_trips_between_looks"
ROUND_TRIPS_WHILE_STOPPED = "round_trips_while_stopped"
FLAT_AGAIN_NOTES = (ROUND_TRIPS_BETWEEN_LOOKS, ROUND_TRIPS_WHILE_STOPPED)
# A position adopted, or an exit of ours filled with no position of ours, where the symbol
# was read flat (keeper/from_flat_settle.py).
FROM_FLAT_NOTES = ("position_adopted", "order_settled_unreflected")


def unread_external_exits(plan: Plan, seen: Observation) -> list[str]:
    """Symbols `plan` books reduced with no order of ours, or leaves a close awaiting its
    price on (keeper/unpriced.py), a growth awaiting its trades (keeper/added_unread.py) or a
    part booked at the mark awaiting them (keeper/part_unread.py),
    or adopts a position on where the last whole tick read it flat, whose account trades
    are not read."""
    noted = {
        n.symbol
        for n in plan.notes
        if n.event in EXTERNAL_NOTES or _grown_by_hand(n) or _adopted_from_flat(n, seen)
    }
    again = {  # an entry of ours in flight there: its trades not told apart (not replayed)
        s
        for s in seen.flat_again
        if s not in seen.snapshot.positions and not plan.book.intents_for(s)
    }
    read = seen.account_fills.keys() | seen.account_unread
    waiting = plan.book.unpriced.keys() | plan.book.added_unread.keys()
    waiting |= plan.book.parts_unread.keys()
    return sorted((noted | waiting | again) - read)


def _adopted_from_flat(note: Note, seen: Observation) -> bool:
    """A position adopted, or an exit of ours filled with no position of ours, where the
    last whole tick read the symbol flat: the trades since are replayed from flat
    (keeper/from_flat_settle.py)."""
    return note.event in FROM_FLAT_NOTES and note.symbol in seen.flat_at


def _grown_by_hand(note: Note) -> bool:
    """A position grown with no entry of ours (keeper/planner.py `_grow`): the trades that
    made it are read and taken, so that a later close does not see an addition unbooked."""
    return note.event == "position_grown" and note.error


def closed_positions(
    book: Book, held_at: Mapping[str, datetime], plan: Plan
) -> tuple[dict[str, Position], dict[str, datetime]]:
    """The positions whose reductions the account's trades are read for, by symbol, and the
    last tick each was held as booked: a close awaiting its price reads for the position it
    closed (since it opened: a flip's other side, held now, does not bound its window); a
    position an entry of ours opened where the books held none, booked by `plan` from its
    fill and traded by hand before it was read (keeper/unseen_entry.py), since it was sent
    (was: no window for it where no look had read the symbol flat — the tick failed); one
    grown by hand while the trades could not be read, since the growth (added_unread.py), or
    since it opened where it closed first and nothing is held there; one reduced by hand and
    booked at the mark meanwhile, since that part (part_unread.py)."""
    ours = {i.client_order_id for i in book.intents.values()}
    after = plan.book
    opened = [t.position for t in plan.trades] + [u.position for u in after.unpriced.values()]
    opened += after.positions.values()
    positions = {p.symbol: p for p in opened if p.entry_order_id in ours}
    positions |= {**book.positions, **{s: u.position for s, u in book.unpriced.items()}}
    at = {s: t for s, t in held_at.items() if s not in book.unpriced}
    for symbol, waiting in after.added_unread.items():  # from the growth (added_unread.py)
        if waiting.position is not None:  # its position closed first: read in its window
            positions.setdefault(symbol, waiting.position)
        elif symbol in at:
            at[symbol] = min(at[symbol], waiting.since)
    for symbol, parts in after.parts_unread.items():  # from the first part (part_unread.py)
        if symbol in at:
            at[symbol] = min(at[symbol], *(p.since for p in parts))
    return positions, at


async def read_account_fills(
    exchange: Exchange,
    seen: Observation,
    positions: Mapping[str, Position],
    symbols: Iterable[str],
    held_at: Mapping[str, datetime],
    now: datetime,
    booked: Mapping[str, frozenset[str]],
    entered: Mapping[str, datetime],
    reported: StreamMoves | None = None,
    first_fills: Mapping[str, datetime] | None = None,
) -> Observation:
    """`seen` with the account's trades on `symbols` (each position's window: `held_at`, by
    symbol, the last tick that found it held as booked; a symbol with no position, since
    the last whole tick read it flat, `seen.flat_at`), or with the symbols whose trades
    could not be read (then booked at the mark, as before). For a symbol with no position,
    the trades `reported` by the user-data stream in its window that the read does not list
    yet (`Observation.unlisted_fills`).

    The trades `booked` on an earlier tick (`Plan.reducing_trades`: our exits', and those of
    reductions with no order of ours) and all of ours recorded (`OwnTrades.left_out`) are
    left out: the window reaches back before that tick,
    and a reduction whose own trades Binance does not list yet must not be booked at them (at
    the mark instead: its trades do not add up). So are the trades before the position's own
    entry (`entered`, by symbol: its entry's first fill, in the exchange's time; or the last
    read of the symbol flat before the entry, keeper/entry.py `FlatBefore`, a position a
    person opened there after it met by our entry): the window reaches 5 min before it
    opened, where the last position's exit on the symbol may lie (found by an outside-style
    probe, 2026-12-03: taken for a close by hand of the next one whose trade Binance did
    not list yet).

    Where the window begins at that flat read, before the entry's first fill (`first_fills`,
    by symbol), the round trips a person made from it before that fill are taken out of the
    position's trades and left to be booked as trades of their own (`BeforeEntry`,
    `told_apart`): a replay from the position as booked took them for changes of it (the
    hand-trading campaign, seed 33720: a short opened and bought back by hand 2 s before
    our long filled, its sale taken for our long's close)."""
    fills, unread = dict(seen.account_fills), set(seen.account_unread)
    unlisted, before_entry = dict(seen.unlisted_fills), dict(seen.before_entry)
    for symbol in symbols:
        position, since = positions.get(symbol), entered.get(symbol)
        if position is not None:
            start, end = account_trades_window(position, held_at.get(symbol), now)
        else:  # where it was read flat: the trades before that look too (round_trip.py)
            flat = seen.flat_again.get(symbol) or seen.flat_at[symbol]
            start, end = trades_window_since(flat.at, now)
        try:
            read = await exchange.fetch_account_fills(symbol, start, end)
        except (RetryLater, MarketDataError) as error:
            log.warning("account_trades_unread", symbol=symbol, error=str(error))
            unread.add(symbol)
            continue
        before = booked.get(symbol, frozenset())
        fills[symbol] = [
            f for f in read if f.trade_id not in before and (since is None or f.time >= since)
        ]
        first = (first_fills or {}).get(symbol)
        if position is not None and since is not None and first is not None and since < first:
            made, fills[symbol] = round_trips_before(fills[symbol], first)
            if made:
                flat = FlatRead(since, position.leverage)
                before_entry[symbol] = BeforeEntry(flat, tuple(made), told_apart=True)
        if position is None and reported is not None:  # a round trip's trade not listed yet
            trade = reported.unlisted(symbol, {f.trade_id for f in read}, start, end)
            if trade is not None:
                unlisted[symbol] = trade
    return replace(
        seen,
        account_fills=fills,
        account_unread=frozenset(unread),
        unlisted_fills=unlisted,
        before_entry=before_entry,
    )


@record
class OwnTrades:
    """By symbol, from the fills of our orders as recorded: the time of the position's
    entry's first fill (none for an adopted position, or one whose entry's fills were never
    read), and the ids of every trade of ours (left out of the account's trades: never a
    person's)."""

    entered: Mapping[str, datetime]
    trade_ids: Mapping[str, frozenset[str]]

    def left_out(self, booked: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
        """`booked` (trades a reduction was booked from) and ours."""
        ours = self.trade_ids
        return {
            s: booked.get(s, frozenset()) | ours.get(s, frozenset())
            for s in booked.keys() | ours.keys()
        }


async def own_trades(
    repository: Repository,
    positions: Mapping[str, Position],
    symbols: Iterable[str],
    unrecorded: Mapping[str, Sequence[Fill]],
) -> OwnTrades:
    """Our recorded trades on `symbols`. Ours include the entry of a position a flip by hand
    closed: the position adopted from the flip reaches 5 min before it was adopted, where
    that entry's trade may lie, and it was taken for the adopted position's close by hand
    (the hand-trading campaign, seed 30513: the person's own trades did not add up).
    `unrecorded`: this tick's fills of our orders, by client order id — an entry booked this
    tick from its fill (keeper/unseen_entry.py) is entered at its first."""
    entered, ours = {}, {}
    for symbol in symbols:
        position, fills = positions.get(symbol), await repository.fills(symbol)
        if position is not None:
            fills = [*fills, *unrecorded.get(position.entry_order_id, ())]
        times = [f.time for f in fills if position and f.client_order_id == position.entry_order_id]
        if times:
            entered[symbol] = min(times)
        ours[symbol] = frozenset(f.trade_id for f in fills)
    return OwnTrades(entered, ours)
