"""A round trip by hand the keeper never saw: the exchange holds the position as booked (side
and quantity) but at another entry price. Pure.

A person who flips a position and flips it back, or closes it and reopens it, between two of
the keeper's looks — the user-data events lost or late, and they carry no sequence number —
leaves the side and quantity as they were: nothing told the keeper to book the close. Binance's
entry price tells: it is the average price of what opened the position and what added to it
(positionRisk `entryPrice`, ACCOUNT_UPDATE `ep`), it is set anew when a position opens from
flat or across zero, and a reduction leaves it as it was (so our partial take-profits and stop
moves never change it). A held position whose exchange entry differs from the book's by more
than `entry_tolerance` was traded by hand since the last look: the keeper reads the account's
trades (keeper/external.py) and replays them here from the position as booked.

`replay` finds the longest run of the account's trades (not ours — but for the fills of an exit
of ours on the side that adds to the position, keeper/exit_replay_settle.py — not booked before)
that takes the position as booked to what the exchange holds now, at its entry price: the
position's reductions and its close (each at its trades' price, with their share of the fee),
the positions the person opened and closed in between, and the one held now, opened by the trades
(adopted at Binance's entry) or the booked one still held (reduced and added to again). None
when no run does: a trade not listed yet, one older than the window, a round trip at exactly
the booked price (the entry unchanged: nothing to see). The longest, its oldest start first:
two round trips within one look are both booked (the newest start, tried first until
2026-12-05, closed the booked position at the second close's price, the first close and the
person's position between them never booked; trades within 5 min of the opening are not
"later than it", so nothing skipped that run).

`replay_from_flat` does the same from flat for a position found where the books held nothing
(keeper/from_flat_settle.py): the trades since a look that read the symbol flat.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    ExchangePosition,
    Fill,
    MarketRules,
    OrderSide,
    Position,
    Side,
)
from quantum_trader.keeper.external_saved import trade_order
from quantum_trader.record import record

# Without a tick size: a rounding of the same average (Binance's precision, our Decimal
# division of our fills' prices), not a trade.
RELATIVE_TOLERANCE = Decimal("1e-9")
OPENING_SLACK = timedelta(minutes=5)  # our clock against the exchange's (external.py's)
MOST_TRADES = 100  # a replay tries each run's start and end: bounded
EARLIER_MOST = 5  # a replay from flat: trades before the flat look it may take in


def in_trade_order(fill: Fill) -> tuple[datetime, int]:
    """`trade_order` as a sort key (an id not numeric first within its millisecond): a
    person's trade in the millisecond of our fill's is placed by Binance's id, increasing
    on a symbol (was: after our fills, which the replays append to the account's)."""
    time, trade_id = trade_order(fill)
    return time, -1 if trade_id is None else trade_id


def entry_tolerance(price: Decimal, rules: MarketRules | None) -> Decimal:
    """How far Binance's entry may lie from the book's with nothing traded by hand: half a
    tick. Both are averages of the same fills — ours in exact Decimal, Binance's at its own
    precision (assumed finer than half a tick) — and a single fill's price, on the tick grid,
    differs from any other by a tick at least. Less than half a tick apart a round trip goes
    unseen."""
    if rules is not None and rules.tick_size > 0:
        return rules.tick_size / 2
    return price * RELATIVE_TOLERANCE


def entry_moved(position: Position, held: ExchangePosition, rules: MarketRules | None) -> bool:
    """Whether the exchange holds `position` as booked (side, quantity) at another entry."""
    if held.entry_price == position.entry_price:  # most ticks, and every backtest's
        return False
    if held.side is not position.side or held.quantity != position.quantity:
        return False
    gap = abs(held.entry_price - position.entry_price)
    return gap > entry_tolerance(position.entry_price, rules)


@dataclass(slots=True)
class Leg:
    """A position as the account's trades took it: opened at `opened_at` (the booked one:
    its own), `quantity` held now, `entry_price` its average; what its reductions realized,
    their quantity, each reduction (its trade, part and price), and the fees of the trades in
    the run (their share of one that crossed zero)."""

    side: Side
    quantity: Decimal
    entry_price: Decimal
    opened_at: datetime
    opened: Decimal = ZERO  # what the trades opened or added (the booked one: what they added)
    realized_usdt: Decimal = ZERO
    reductions: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    fees_usdt: Decimal = ZERO
    closed_at: datetime | None = None
    trade_ids: set[str] = field(default_factory=set)

    @property
    def reduced(self) -> Decimal:
        return sum((part for _, part, _ in self.reductions), ZERO)

    @property
    def last_reduced_by(self) -> str:
        """The trade that reduced it last: its close, once closed."""
        return self.reductions[-1][0] if self.reductions else ""

    @property
    def exit_price(self) -> Decimal:
        """The average price of all its reductions."""
        return self.exit_price_by({})

    def exit_price_by(self, orders: Mapping[str, str]) -> Decimal:
        """The price its close is booked at: the average of its last reductions by one hand —
        the person's (trades not in `orders`) or one order of ours (`orders`: trade id → the
        order's client id) — as a daemon that saw each reduction books the earlier ones as
        reductions of their own and the close at its own trades. Was: the average of all, so
        a long grown by hand, reduced by our stop and closed by hand while the daemon was
        stopped was booked closed at a price no trade had (the restart campaign with round
        trips, seed 40625). With no order of ours among them: the average of all."""
        last = orders.get(self.reductions[-1][0])
        quantity = notional = ZERO
        for trade_id, part, price in reversed(self.reductions):
            if orders.get(trade_id) != last:
                break
            quantity += part
            notional += part * price
        return notional / quantity


@record
class Replay:
    """What a run of the account's trades did: `ours`, the booked position (closed when its
    quantity is 0); `between`, positions they opened and closed; `now_held`, the one they
    opened that is held now (None: `ours` is)."""

    ours: Leg
    between: tuple[Leg, ...]
    now_held: Leg | None
    trade_ids: frozenset[str]


def replay(
    position: Position,
    held: ExchangePosition | None,
    fills: Sequence[Fill],
    rules: MarketRules | None,
) -> Replay | None:
    """The longest run of `fills` (the account's trades on the symbol, not ours, not
    booked) taking `position` to `held` (None: nothing held) at its entry price — its oldest
    start first —; None when none does. Runs ending before the newest trade are tried too:
    trades made after the positions were read."""
    trades = sorted(fills, key=in_trade_order)[-MOST_TRADES:]
    start_amount = position.quantity * position.side.sign
    held_amount = ZERO if held is None else held.quantity * held.side.sign
    # Trades before the run are the position's own entry or were booked (left out): one
    # later than its opening is a change the run leaves out (a close older than the window
    # and a round trip after it: the run would take the round trip's sell for our close).
    opened = position.opened_at + OPENING_SLACK
    for end in range(len(trades), 0, -1):
        for first in sorted(_run_starts(trades[:end], start_amount, held_amount)):
            if any(f.time > opened for f in trades[:first]):
                continue
            done = _replayed(position, trades[first:end])
            if _lands_on(done, held, rules):
                return done
    return None


def _run_starts(trades: Sequence[Fill], start: Decimal, held: Decimal) -> Iterator[int]:
    """The indices of the trades from which `trades` take the amount `start` to `held`
    (signed: long positive), newest first. Not the newest alone: a reduction by hand of the
    position a round trip reopened starts a run that takes its amount to `held` too, and so
    does each round trip before the newest."""
    amount = held
    for index in range(len(trades) - 1, -1, -1):
        fill = trades[index]
        amount -= fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
        if amount == start:
            yield index


def _replayed(position: Position, trades: Sequence[Fill]) -> Replay:
    """`trades`, oldest first, applied to `position`."""
    ours = Leg(position.side, position.quantity, position.entry_price, position.opened_at)
    legs, leg = _walked(ours, trades)
    now_held = leg if leg is not ours else None
    between = tuple(g for g in legs if g is not ours)
    ids = frozenset(i for g in (ours, *between, *([leg] if leg else [])) for i in g.trade_ids)
    return Replay(ours, between, now_held, ids)


@record
class FromFlat:
    """What the trades since a look that read the symbol flat did: `between`, positions
    they opened and closed; `now_held`, the one held now (None: none)."""

    between: tuple[Leg, ...]
    now_held: Leg | None
    trade_ids: frozenset[str]


def replay_from_flat(
    held: ExchangePosition | None,
    fills: Sequence[Fill],
    since: datetime,
    rules: MarketRules | None,
    earlier: int = EARLIER_MOST,
) -> FromFlat | None:
    """`fills` (the account's trades on the symbol around and after a look at `since` that
    read it flat, not booked; ours only where given: an exit of ours that closed a person's
    position) taking flat to `held` (None: flat again) at its entry price; None when they do
    not. All of those from `since` on: the symbol was flat before them. Where they do not
    show it, up to `earlier` trades before `since` are taken in, newest first, the fewest
    that do: a read that lagged the exchange (the streams' mirror an event behind) showed
    flat after a trade. Runs ending before the newest trade are tried too (trades
    made after the positions were read); more than `MOST_TRADES`: None."""
    ordered = sorted(fills, key=in_trade_order)
    after = [f for f in ordered if f.time >= since]
    before = [f for f in ordered if f.time < since][-earlier:] if earlier > 0 else []
    for taken in range(len(before) + 1):
        trades = before[len(before) - taken :] + after
        if not trades or len(trades) > MOST_TRADES:
            continue
        found = _run_from_flat(held, trades, rules)
        if found is not None:
            return found
    return None


def _run_from_flat(
    held: ExchangePosition | None, trades: Sequence[Fill], rules: MarketRules | None
) -> FromFlat | None:
    """`trades` (oldest first) from flat, or a run of them ending before the newest,
    landing on `held`; None when none does."""
    held_amount = ZERO if held is None else held.quantity * held.side.sign
    amount = sum((_signed(f) for f in trades), ZERO)
    for end in range(len(trades), 0, -1):
        if amount == held_amount:
            legs, leg = _walked(None, trades[:end])
            if held is None or (leg is not None and _leg_lands_on(leg, held, rules)):
                ids = frozenset(i for g in (*legs, *([leg] if leg else [])) for i in g.trade_ids)
                return FromFlat(tuple(legs), leg, ids)
        amount -= _signed(trades[end - 1])
    return None


def round_trips_before(fills: Sequence[Fill], entered: datetime) -> tuple[list[Fill], list[Fill]]:
    """`fills` (a person's trades on a symbol since a look read it flat, ours left out),
    split: those that take it from flat back to flat before `entered` (our entry's first
    fill, in the exchange's time) — round trips made before our position existed, which
    cannot have changed it — and the rest (what our entry may have met, and every trade
    from its fill on)."""
    ordered = sorted(fills, key=in_trade_order)
    amount, cut = ZERO, 0
    for index, fill in enumerate(ordered):
        if fill.time >= entered:
            break
        amount += _signed(fill)
        if amount == 0:
            cut = index + 1
    return ordered[:cut], ordered[cut:]


def _signed(fill: Fill) -> Decimal:
    return fill.quantity if fill.side is OrderSide.BUY else -fill.quantity


def _walked(leg: Leg | None, trades: Sequence[Fill]) -> tuple[list[Leg], Leg | None]:
    """`trades`, oldest first, applied to `leg` (None: flat): the legs they closed, and the
    one held after them (None: flat)."""
    legs: list[Leg] = []
    for fill in trades:
        left = fill.quantity
        if leg is not None and fill.side is leg.side.exit_order_side:
            part = min(left, leg.quantity)
            _reduce(leg, fill, part)
            left -= part
            if leg.quantity == 0:
                leg.closed_at = fill.time
                legs.append(leg)
                leg = None
        if left > 0:
            leg = _add(leg, fill, left)
    return legs, leg


def _reduce(leg: Leg, fill: Fill, part: Decimal) -> None:
    leg.quantity -= part
    leg.realized_usdt += (fill.price - leg.entry_price) * leg.side.sign * part
    leg.reductions.append((fill.trade_id, part, fill.price))
    leg.fees_usdt += fill.fee_usdt * part / fill.quantity
    leg.trade_ids.add(fill.trade_id)


def _add(leg: Leg | None, fill: Fill, part: Decimal) -> Leg:
    """`part` of `fill` added to `leg`, or opening a position (`leg` None)."""
    fee = fill.fee_usdt * part / fill.quantity
    if leg is None:
        side = Side.LONG if fill.side is OrderSide.BUY else Side.SHORT
        leg = Leg(side, ZERO, fill.price, fill.time)
    total = leg.quantity + part
    leg.entry_price = (leg.entry_price * leg.quantity + fill.price * part) / total
    leg.quantity = total
    leg.opened += part
    leg.fees_usdt += fee
    leg.trade_ids.add(fill.trade_id)
    return leg


def _lands_on(done: Replay, held: ExchangePosition | None, rules: MarketRules | None) -> bool:
    """Whether the replay ends holding `held`, at its entry price (within the tolerance)."""
    last = done.now_held or done.ours
    if held is None:
        return last.quantity == 0
    return _leg_lands_on(last, held, rules)


def _leg_lands_on(leg: Leg, held: ExchangePosition, rules: MarketRules | None) -> bool:
    if (leg.side, leg.quantity) != (held.side, held.quantity):
        return False
    return abs(leg.entry_price - held.entry_price) <= entry_tolerance(held.entry_price, rules)
