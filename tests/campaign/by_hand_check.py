"""What the campaign with a person trading by hand (by_hand.py) checks in a seed's outcome:
each span without our stop against its bound, every close by hand booked MANUAL at the
account's trades (or at the mark where the design allows it), no fee booked twice, an
entry of ours beside a position opened by hand only before the keeper could see it; and our
take-profits (by_hand_targets.py): one cancelled by hand back in time, never two at once,
none after one executed."""

from __future__ import annotations

import itertools
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from by_hand_person import PERSON_PREFIX, HandAction, booking_key
from by_hand_stops import stop_problems
from by_hand_targets import target_problems
from campaign import MARKET_IDS, MONITOR_S, Outcome, campaign_problems
from loopback.faults import Outage
from loopback.state import LoopbackState

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import ClosedTrade, ExitReason
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.settings import KeeperSettings

# The bound on a position without a covering stop of ours, in the keeper's ticks that could
# send: the fault campaign's (campaign.STOP_WITHIN_TICKS), the design's promise for what the
# keeper can know. What a user-data event the stand-in never delivered (dropped, silenced, no
# stream connected: `StreamHub.hidden`) kept from it is seen only by its REST checks
# (KEEPER.md, "Streams first, REST to check"): a position changed (a flip: ACCOUNT_UPDATE
# hidden) by the check of positions every `keeper.rest_position_check_s`, our stop cancelled
# by hand (its ALGO_UPDATE hidden) by the full check every `keeper.rest_check_interval_s`. A
# span on a symbol with such an event hidden since the last full check before it is held to
# that check's ticks (those planned until it is due), plus STOP_WITHIN_TICKS (the tick that
# reads it may find it just after; ticks the person's trades wake count too: a span of 3 can
# last 2 s); and a tick more for each order change on the symbol a fault answered.
STOP_WITHIN_TICKS = 2
# The daemon's requests that place or cancel an order (a fault on one about a symbol costs
# that symbol a tick: `allowed_ticks`).
ORDER_CHANGES = frozenset(
    (method, path)
    for method in ("POST", "DELETE")
    for path in ("/fapi/v1/order", "/fapi/v1/algoOrder")
)
FEE_SLACK_USDT = Decimal("0.000001")  # rounding of a fee shared between two positions
PRICE_DIGITS = Decimal("1e-12")
STORED_DECIMALS_HALF = Decimal("5e-9")  # half the last of the 8 decimals a row stores
TICK_MS = round(MONITOR_S * 1000)
BOOKING_TICK_TICKS = 3  # how long a tick that books may last, in the stand-in's ticks
# The longest a tick's start may precede one of its reads: a lost answer waits out the
# client's 2 s timeout, 60 s of the stand-in's 30× clock (seen: 61–63 s, seed 30123).
LONGEST_TICK_MS = 70_000


@dataclass(frozen=True, slots=True)
class CloseByHand:
    """A person's trade that took a position to zero or across it, at `price`.

    `exit_prices` are the exit prices the books may show for it: the keeper books the
    person's reducing trades it has not booked yet in one reduction, at their average, so a
    close by hand is booked at the average of the last one, two, … of the person's reductions
    of that position ending with it (the share of a flip that closed it counted)."""

    market_id: str
    time_ms: int
    price: Decimal
    held_before: Decimal
    exit_prices: tuple[Decimal, ...]
    raced: str = ""  # an entry of ours that met a position opened by hand (`raced_closes`)


def closes_by_hand(state: LoopbackState) -> list[CloseByHand]:
    """The stand-in's trades in order, the position on each symbol followed from flat."""
    client_of = {o["orderId"]: o["clientOrderId"] for o in state.orders.values()}
    held: dict[str, Decimal] = defaultdict(Decimal)
    reductions: dict[str, list[tuple[Decimal, Decimal]]] = defaultdict(list)  # (qty, price)
    closes = []
    for trade in sorted(state.trades, key=lambda t: int(t["id"])):
        market_id, before = trade["symbol"], held[trade["symbol"]]
        price = Decimal(trade["price"])
        signed = Decimal(trade["qty"]) * (1 if trade["side"] == "BUY" else -1)
        held[market_id] = after = before + signed
        by_hand = client_of.get(trade["orderId"], "").startswith(PERSON_PREFIX)
        if before == 0 or (before > 0) == (signed > 0):
            continue  # it opened or added to a position
        if by_hand:
            reductions[market_id].append((min(abs(signed), abs(before)), price))
        if after == 0 or (after > 0) != (before > 0):
            if by_hand:
                prices = _averages_ending_last(reductions[market_id])
                closes.append(CloseByHand(market_id, trade["time"], price, before, prices))
            reductions[market_id] = []
    return closes


def _averages_ending_last(parts: list[tuple[Decimal, Decimal]]) -> tuple[Decimal, ...]:
    """The average price of the last one, two, … of `parts` (quantity, price)."""
    averages = []
    for first in range(len(parts) - 1, -1, -1):
        tail = parts[first:]
        quantity = sum((q for q, _ in tail), Decimal(0))
        averages.append(sum((q * p for q, p in tail), Decimal(0)) / quantity)
    return tuple(averages)


@dataclass
class HandOutcome:
    outcome: Outcome
    actions: list[HandAction]
    closes: list[CloseByHand]
    closed: list[ClosedTrade]
    trades_unread_ms: list[int]  # when a fault answered a read of the account's trades
    holds_ms: list[tuple[int, int]]  # Retry-After holds: the daemon's client sent nothing
    standin: LoopbackState  # the stand-in's books at the end
    hidden: list[tuple[int, dict[str, Any]]]  # user-data events no stream delivered
    rest_position_check_s: float
    rest_check_interval_s: float
    fees_paid: dict[str, Decimal] = field(default_factory=dict)  # by market id
    fees_booked: dict[str, Decimal] = field(default_factory=dict)
    # each closed trade (`booking_key`) → the stand-in's ms when the database first held it,
    # while the person traded (`Person.watch_bookings`)
    booked_seen_ms: dict[tuple[str, str, int], int] = field(default_factory=dict)
    # faults drawn for the daemon's requests about a symbol, lost answers too (stand-in ms,
    # market id, method, path); the read outages; the take-profit's back-off
    faults_on: list[tuple[int, str, str, str]] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    take_profit_retry_s: float = 60.0
    unconnected: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # of `hidden`


_POSITION_EVENT_MS = 1_000  # after a symbol's last trade, its position event's latest


def unseen_round_trip(result: HandOutcome, close: CloseByHand) -> bool:
    """Whether `close` ended a round trip by hand from flat that the user-data stream never
    reported: every trade from the one that opened it to the close had its fill's
    ORDER_TRADE_UPDATE and its ACCOUNT_UPDATE hidden by a silent stream or a dropped event
    — not by a stream unconnected, whose reconnect's seed makes the daemon read the trades.
    Nothing tells the daemon of it (KEEPER.md, *A round trip between two looks on a flat
    symbol, within a run*, "Not seen"); a look that read the position held between would
    have, and such a close is not a round trip between two looks."""
    if close.held_before == 0 or abs(close.held_before) != abs(_last_move(result, close)):
        return False
    trades = sorted(
        (t for t in result.standin.trades if t["symbol"] == close.market_id),
        key=lambda t: int(t["id"]),
    )
    ending = [t for t in trades if int(t["time"]) == close.time_ms]
    if not ending:
        return False
    opener, _ = _opened_by(result.standin, close.market_id, int(ending[-1]["id"]) - 1)
    if opener is None:
        return False
    first, last = int(opener["id"]), int(ending[-1]["id"])
    client_of = {o["orderId"]: o["clientOrderId"] for o in result.standin.orders.values()}
    unconnected = {id(event) for _, event in result.unconnected}
    hidden = [(at, e) for at, e in result.hidden if id(e) not in unconnected]
    times = sorted({int(t["time"]) for t in trades})
    for trade in (t for t in trades if first <= int(t["id"]) <= last):
        client_id, at_ms = client_of.get(trade["orderId"], ""), int(trade["time"])
        filled = any(
            e["e"] == "ORDER_TRADE_UPDATE" and e["o"].get("c") == client_id
            and e["o"].get("x") == "TRADE"
            for _, e in hidden
        )  # fmt: skip
        # Its ACCOUNT_UPDATE: hidden before the symbol's next trade, a few ms after this one
        # at times (the stand-in's clock runs on while it emits: seeds 40398, 40400, 30013).
        until = next((t for t in times if t > at_ms), at_ms + _POSITION_EVENT_MS)
        position = any(
            at_ms <= at < until and _hidden_about(e, close.market_id) == "positions"
            for at, e in hidden
        )
        if not (filled and position):
            return False
    return True


def _last_move(result: HandOutcome, close: CloseByHand) -> Decimal:
    """The quantity of the trade that made `close` (what a round trip's close takes)."""
    moved = [
        Decimal(t["qty"])
        for t in result.standin.trades
        if t["symbol"] == close.market_id and int(t["time"]) == close.time_ms
    ]
    return sum(moved, Decimal(0))


def _hidden_about(event: dict[str, Any], market_id: str) -> str | None:
    """Which REST check reveals `event` about `market_id`: "positions", "orders" or None."""
    if event["e"] == "ACCOUNT_UPDATE":
        rows = event["a"]["P"]
        return "positions" if any(r["s"] == market_id for r in rows) else None
    if event["e"] in ("ALGO_UPDATE", "ORDER_TRADE_UPDATE"):
        return "orders" if event["o"]["s"] == market_id else None
    return None


def allowed_ticks(
    result: HandOutcome, market_id: str, start_ms: int, end_ms: int, planned: Sequence[int]
) -> int:
    """The ticks a span without our stop on `market_id` from `start_ms` may last, `planned`
    the planned times of those it counts: the design's bound, or the REST check's that
    reveals a user-data event hidden before or during it — its interval in ticks, or every
    tick planned before it is due if events woke more (seed 30726: 7 in 20 s) — plus a tick
    for each request of the daemon's that changes an order on the symbol a fault answered
    (`ORDER_CHANGES`; seed 30745: two stops answered 503, the third tick's placed): that
    tick's stop, or its actions on the symbol after the failed one, could not go out
    (keeper/carry_actions.py), and the next tick tries again. And a tick more for each tick
    planned within a Retry-After hold (`holds_ms`): the daemon's client sends nothing then,
    neither the REST check nor a stop (seed 30970: a 429 at the check of positions due after a
    hidden flip held the client back; the hold is Binance's seconds, on the stand-in's clock
    30 times as many)."""
    full_ms = round(result.rest_check_interval_s * 1000)
    checks_ms = {"positions": round(result.rest_position_check_s * 1000), "orders": full_ms}
    allowed = STOP_WITHIN_TICKS
    for at_ms, event in result.hidden:
        which = _hidden_about(event, market_id)
        if which is not None and start_ms - full_ms <= at_ms <= end_ms:
            due_ms = max(start_ms, at_ms) + checks_ms[which]
            within = sum(1 for t in planned if t <= due_ms)
            ticks = max(math.ceil(checks_ms[which] / TICK_MS), within)
            allowed = max(allowed, ticks + STOP_WITHIN_TICKS)
    refused = sum(
        1
        for at_ms, on, method, path in result.faults_on
        if on == market_id and start_ms <= at_ms <= end_ms and (method, path) in ORDER_CHANGES
    )
    held = sum(1 for t in planned if any(a <= t < b for a, b in result.holds_ms))
    return allowed + refused + held


def covered_apart(
    result: HandOutcome, market_id: str, start_ms: int, end_ms: int, planned: list[int]
) -> list[tuple[int, int, list[int]]]:
    """A span without our stop as the watcher sampled it (every simulated second), split where
    the person saw the position covered by a stop of ours just before cancelling it
    (`HandAction.covered_ms`): two spans the samples merged. Each part with the ticks it
    counts: those planned up to the moment it was covered (one of them placed that stop), and
    after it those planned since. Seed 30187: a stop placed at the tick of 13:26:20.317 after
    an entry left bare and cancelled by hand 0.27 s later, re-placed the next tick — one span
    of 3 ticks, two of 2 and 1. A span that a cancel by hand began (the person's cancel of our
    stop since the sample before it) counts the ticks planned after the cancel only: one
    planned before it read a stop still there, as one planned before an entry filled cannot
    protect it (seed 30908: a tick planned 0.64 s before the cancel counted, 3 ticks where 2
    were allowed, the two after it the design's)."""
    began = [
        a.time_ms
        for a in result.actions
        if a.market_id == market_id
        and a.covered_ms is not None
        and start_ms - TICK_MS < a.time_ms <= start_ms  # since the sample before, at most
    ]
    if began:
        planned = [t for t in planned if t > max(began)]
    cuts = sorted(
        a.covered_ms
        for a in result.actions
        if a.market_id == market_id
        and a.covered_ms is not None
        and start_ms < a.covered_ms < end_ms
    )
    bounds = [start_ms, *cuts, end_ms]
    parts = []
    for first, last in itertools.pairwise(bounds):
        ticks = [
            t for t in planned if (first == start_ms or t > first) and (last == end_ms or t <= last)
        ]
        parts.append((first, last, ticks))
    return parts


def _booked_at(trade: ClosedTrade, prices: tuple[Decimal, ...]) -> bool:
    """Whether `trade` was booked at one of `prices` (to 12 digits: an average's last digits
    depend on the order the keeper summed it in; or to the 8 decimals a row stores an
    average to, keeper/booking.py `as_stored`)."""
    return any(
        abs(trade.exit_price - price) <= max(price * PRICE_DIGITS, STORED_DECIMALS_HALF)
        for price in prices
    )


def at_the_mark(close: CloseByHand, trade: ClosedTrade, result: HandOutcome) -> bool:
    """Whether the keeper may have booked `close` as `trade` at the mark, as it does only when
    the account's trades stay unreadable for `keeper.external_close_mark_after_s` after the
    tick that saw the close (KEEPER.md, "A close with nothing to book it at"; was: at once, at
    the mark of that tick, accepted here within a window around it). The trade is closed at
    that tick (`closed_at`), and booked on one at least the bound later whose read of the
    trades failed too, at a mark read then. So, of a fault answering a read of the trades or
    a Retry-After hold keeping the daemon's client from sending one:

    - one between the close and the end of the tick that saw it. Its end is not recorded; it
      is before the database first held the trade (`HandOutcome.booked_seen_ms`, sampled
      every simulated second while the person trades), else `BOOKING_TICK_TICKS` ticks past
      its start (a trade booked after the person stopped; seeds 30041, 30188). A tick can
      last far longer than the keeper's interval on the stand-in's accelerated clock: a
      request whose answer the stand-in loses waits out the client's timeout, 2 s real, 60 s
      of the 30× clock (seed 30123: a read of the trades answered 429 59 s into its tick);
    - and one at least the bound after that tick, on the tick that booked it, the trade's
      price the stand-in's mark (`mark_path`) at a second of the tick that saw the close
      (since 2026-12-06 evening the keeper keeps the mark read then: the nearest the close)
      or, where that tick read none, of the tick that booked it — which began at most
      `LONGEST_TICK_MS` before that read and not before the bound —, or up to the 10 s
      before either a streamed mark may be old before the stream counts as silent
      (`exchange.stream_silence_s`).

    Not checked, for want of the stand-in's answered reads in the outcome: that no read of
    the trades answered in between (one would have booked them). The daemon runs the default
    bound (`campaign_settings` sets no keeper settings)."""
    seen_ms, span = ms_from_utc(trade.closed_at), BOOKING_TICK_TICKS * TICK_MS
    start = min(close.time_ms, seen_ms)
    end = result.booked_seen_ms.get(booking_key(trade), max(close.time_ms, seen_ms) + span)
    unread = [(t, t + 1) for t in result.trades_unread_ms] + result.holds_ms  # [a, b) in ms
    if not any(a <= end and start < b for a, b in unread):
        return False
    path, market = result.standin.mark_path, result.standin.markets[close.market_id]
    earliest = seen_ms + round(KeeperSettings().external_close_mark_after_s * 1000)
    if path is not None and any(b >= earliest for _, b in unread):  # the mark when seen
        seconds = range((start - 10_000) // 1000, end // 1000 + 1)
        if _booked_at(trade, tuple(path.price(market, s * 1000) for s in seconds)):
            return True
    for a, b in unread:
        if b < earliest or path is None:
            continue
        first = max(a - LONGEST_TICK_MS, earliest) - 10_000
        seconds = range(first // 1000, (b + span) // 1000 + 1)
        if _booked_at(trade, tuple(path.price(market, s * 1000) for s in seconds)):
            return True
    return False


def _bookings(
    closes: list[CloseByHand], manual: list[ClosedTrade], result: HandOutcome
) -> dict[int, ClosedTrade]:
    """Which closed trade booked each close by hand (by its index in `closes`): first the
    earliest booked at one of its exit prices, then, for the closes left, the earliest left
    booked from a tick before it at most a tick (a tick's time is when it started, so it may
    precede the trade it books) when it may be at the mark (`at_the_mark`)."""
    symbol_of = {m: s for s, m in MARKET_IDS.items()}
    left = sorted(manual, key=lambda t: t.closed_at)
    found: dict[int, ClosedTrade] = {}
    for index, close in enumerate(closes):
        on = [t for t in left if t.symbol == symbol_of[close.market_id]]
        match = next((t for t in on if _booked_at(t, close.exit_prices)), None)
        if match is not None:
            found[index] = match
            left.remove(match)
    for index, close in enumerate(closes):
        on = [t for t in left if t.symbol == symbol_of[close.market_id]]
        after = [t for t in on if ms_from_utc(t.closed_at) >= close.time_ms - TICK_MS]
        if index not in found and after and at_the_mark(close, after[0], result):
            found[index] = after[0]
            left.remove(after[0])
    return found


def entries_beside_an_open(result: HandOutcome) -> set[str]:
    """Entries of ours the stand-in received while it held a position a person's trade opened
    (from flat, or across zero) that the keeper had not acted on yet: no conditional order of
    ours placed on the symbol since that trade, nor a placement there a fault answered. The
    keeper refuses an entry while its books hold the symbol (KEEPER.md, "Entries"), and its
    books learn of a position opened by hand at the tick that reads it — the one that adopts
    it and places its stop, held to its bound as any span without our stop is
    (`allowed_ticks`); an entry sent before then was decided on a symbol the books rightly
    held flat. Once the keeper placed a stop there it knew: an entry after is not excused."""
    state = result.standin
    client_of = {o["orderId"]: o["clientOrderId"] for o in state.orders.values()}
    excused = set()
    for client_id in result.outcome.watch.entries_while_holding:
        order = state.orders.get(client_id)
        if order is None:
            continue
        opener, _ = _opened_by(state, order["symbol"], int(order["orderId"]))
        if opener is None or not client_of.get(opener["orderId"], "").startswith(PERSON_PREFIX):
            continue
        if not _acted_on(result, order["symbol"], opener, order):
            excused.add(client_id)
    return excused


def raced_closes(result: HandOutcome, excused: set[str]) -> list[CloseByHand]:
    """The closes the books show for the entries of ours in `excused` that went against the
    position the person opened without taking it across zero: the keeper, which did not
    know that position, books its entry's fill as our position opened and the person's
    opening trade as its close by hand (and what is left the other way adopted, as for a
    flip) — at that trade's price, which realizes what the account did, the two trades'
    difference on the quantity they share, whichever came first. Seed 32139 (2026-12-04):
    the person's sell 67 ms before our buy, booked so. A close at any other price is not:
    seed 32035, the person's buy 61 s before our sell (a tick stalled on a lost answer), our
    short booked closed at a mark 67 s later, 20 USDT from the account's result."""
    state = result.standin
    closes = []
    for client_id in sorted(excused):
        order = state.orders[client_id]
        market_id = order["symbol"]
        opener, held = _opened_by(state, market_id, int(order["orderId"]))
        ours = [t for t in state.trades if t["orderId"] == order["orderId"]]
        filled = sum((Decimal(t["qty"]) for t in ours), Decimal(0))
        if opener is None or not ours or opener["side"] == order["side"] or filled > abs(held):
            continue  # added to it, or took it across zero: a reduction by hand at most
        price, sign = Decimal(opener["price"]), 1 if order["side"] == "BUY" else -1
        at_ms = min(int(t["time"]) for t in ours)
        closes.append(CloseByHand(market_id, at_ms, price, sign * filled, (price,), client_id))
    return closes


def _opened_by(
    state: LoopbackState, market_id: str, before_id: int
) -> tuple[dict[str, Any] | None, Decimal]:
    """The trade on `market_id` that last took the position from flat or across zero among
    those before the id `before_id` (the stand-in's ids are one sequence), None if none is
    held then; and what was held then (signed)."""
    held, opener = Decimal(0), None
    for trade in sorted(state.trades, key=lambda t: int(t["id"])):
        if trade["symbol"] != market_id or int(trade["id"]) > before_id:
            continue
        signed = Decimal(trade["qty"]) * (1 if trade["side"] == "BUY" else -1)
        after = held + signed
        if after != 0 and (held == 0 or (held > 0) != (after > 0)):
            opener = trade
        held = after
    return (opener if held != 0 else None), held


def _acted_on(
    result: HandOutcome, market_id: str, opener: dict[str, Any], entry: dict[str, Any]
) -> bool:
    """Whether the daemon placed a conditional order of ours on `market_id` between `opener`
    and `entry`, or tried to and a fault answered."""
    first, last = int(opener["id"]), int(entry["orderId"])
    placed = any(
        o["symbol"] == market_id and is_ours(o["clientAlgoId"]) and first < int(o["algoId"]) < last
        for o in result.standin.algo_orders.values()
    )
    refused = any(
        on == market_id and (method, path) == ("POST", "/fapi/v1/algoOrder")
        and opener["time"] <= at_ms <= entry["time"]
        for at_ms, on, method, path in result.faults_on
    )  # fmt: skip
    return placed or refused


def hand_problems(seed: int, result: HandOutcome) -> list[str]:
    """What this seed's run broke, one line each (empty: nothing)."""
    # Spans of our stop's absence: checked here, each against its own bound; and entries
    # while the stand-in held a position opened by hand the keeper had not seen yet.
    excused = entries_beside_an_open(result)
    found = campaign_problems(
        seed, result.outcome, stop_within_ticks=sys.maxsize, excused_entries=excused
    )
    for market_id, start_ms, end_ms, planned in result.outcome.watch.bare_spans:
        for first_ms, last_ms, ticks in covered_apart(result, market_id, start_ms, end_ms, planned):
            allowed = allowed_ticks(result, market_id, first_ms, last_ms, ticks)
            if len(ticks) > allowed:
                found.append(
                    f"seed {seed}: {market_id} without a stop for {len(ticks)} ticks "
                    f"(at most {allowed}) from {utc_from_ms(first_ms):%H:%M:%S}"
                )
    symbol_of = {m: s for s, m in MARKET_IDS.items()}
    manual = [t for t in result.closed if t.exit_reason is ExitReason.MANUAL]
    closes = [*result.closes, *raced_closes(result, excused)]
    bookings = _bookings(closes, manual, result)
    for index, close in enumerate(closes):
        if index in bookings:
            manual.remove(bookings[index])
            continue
        if unseen_round_trip(result, close):
            print(
                f"EXCUSED seed {seed}: round trip by hand on {close.market_id} closed at "
                f"{close.price} (stand-in ms {close.time_ms}): the stream reported none of it"
            )
            continue
        symbol = symbol_of[close.market_id]
        booked = [
            f"{t.exit_reason} {t.side} {t.quantity} at {t.exit_price}"
            for t in result.closed
            if t.symbol == symbol
        ]
        raced = f"our entry {close.raced} against the position opened by hand: " * bool(close.raced)
        found.append(
            f"seed {seed}: {raced}close by hand of {close.held_before} {close.market_id} at "
            f"{close.price} (stand-in ms {close.time_ms}) not booked MANUAL at its trades' "
            f"prices {[f'{p:.4f}' for p in close.exit_prices]}; "
            f"booked on the symbol: {booked}"
        )
    for trade in manual:  # not matched by a close by hand
        found.append(
            f"seed {seed}: {trade.symbol} {trade.side} {trade.quantity} booked MANUAL at "
            f"{trade.exit_price} with no close by hand at that price"
        )
    found += target_problems(seed, result, allowed_ticks)
    found += stop_problems(seed, result)
    for market_id, booked_fees in sorted(result.fees_booked.items()):
        paid = result.fees_paid.get(market_id, Decimal(0))
        if booked_fees > paid + FEE_SLACK_USDT:
            found.append(
                f"seed {seed}: fees on {market_id}: booked {booked_fees}, the stand-in "
                f"charged {paid}"
            )
    return found
