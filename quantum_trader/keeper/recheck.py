"""When a tick's plan must be dropped and planned again from a fresh REST read. Pure.

A plan is only as true as the positions it was made from. Two cases call for a fresh read:

- a plan from the streams' mirror that books a position (or part of it) closed with no order
  of ours to explain it: a stream that missed an event must not free a symbol the exchange
  still holds (only REST may say a position is gone);
- a plan from the mirror that adopts a position, or books one grown, with no order of ours to
  explain it: a mirror behind the exchange must not resurrect a position a REST read showed
  closed (only REST may say a position appeared by hand). Found by the campaign with a person
  trading by hand (seed 30079, 2026-12-03): a reseed re-applied an entry's event received
  after the tick began, its close's event dropped; the next tick adopted the closed position
  from the mirror and booked its close again at the same trade;
- a plan from the mirror, made again with the account's trades (`rest_recheck_of_trades`),
  whose trades since a look that read a symbol flat, read flat again, do not come back to
  flat (`round_trips_between_looks`,
  `round_trips_while_stopped`): the mirror may have missed the position they opened (its
  ACCOUNT_UPDATE lost, the fill's event received: the hand-trading campaign, seed 32885),
  which REST shows and the next plan adopts from flat; a REST read that shows it flat too
  leaves the line standing (a trade not listed yet);
- a plan made again with the account's trades on a symbol held, whose positions read again
  after those trades (REST, weight 5) differ from the snapshot they were planned with
  (`POSITIONS_MOVED`, keeper/reads.py `positions_moved`; once a tick): a trade the trades
  list and the positions do not show came between the two reads — our stop filling, its
  market order's trade under an id not ours, was taken for a person's reduction and booked
  again as our close (the campaign with a person trading by hand, seed 33081);
- an exit of ours that filled while the position shows no reduction, or an entry of ours that
  filled for more than its side holds (keeper/unseen_entry.py), that the exchange had not
  reported filled before the positions were read (`Plan.unreflected`): it may have filled
  after the read, or the position was reopened (or traded away) since, by hand. Positions
  read after the lookup show the fill either way, so the next plan books it — in full, the
  rest adopted or booked as a reduction by hand. Once per order from REST; from the
  streams' mirror, on every plan that leaves one so: the mirror's positions are never taken
  to reflect a fill (`Planner.reflected` is empty there), so an entry a person traded away
  whose one fresh read met a failed lookup was waited on from the mirror until the grace
  period ran out, then settled "filled but not reflected" and never booked, the person's
  side adopted (the restart campaign, seed 41643: our short's answer lost, a flip by hand,
  the reads rate limited).

And when a REST snapshot checks the streams' mirror: what the mirror got wrong
(`mirror_difference`; the keeper logs it and reseeds the mirror), or, for the cheaper check of
positions alone, whether the mirror's positions are wrong (`positions_difference`).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Decimal

from quantum_trader.domain import ExchangePosition, ExchangeSnapshot, SnapshotSource
from quantum_trader.keeper.external import EXTERNAL_NOTES, FLAT_AGAIN_NOTES
from quantum_trader.keeper.plan import Plan
from quantum_trader.keeper.round_trip import RELATIVE_TOLERANCE

POSITIONS_MOVED = "positions_moved_checked_by_rest"


def rest_recheck(plan: Plan, source: SnapshotSource, known_filled: Set[str]) -> str | None:
    """The log event naming why `plan` must be planned again from REST, or None.

    `known_filled`: our orders the exchange had reported filled before this plan's positions
    were read (from REST each id triggers at most one fresh read: the next pass knows it;
    from the mirror, which never shows a fill, every plan that leaves one unreflected does).
    """
    from_mirror = source is not SnapshotSource.REST
    if from_mirror and _unexplained_exit(plan):
        return "stream_exit_checked_by_rest"
    if from_mirror and _unexplained_entry(plan):
        return "stream_adoption_checked_by_rest"
    if plan.unreflected and (from_mirror or any(c not in known_filled for c in plan.unreflected)):
        return "exit_fill_checked_by_rest"
    return None


def _unexplained_exit(plan: Plan) -> bool:
    """The plan books a position (or part of it) closed with no order of ours to explain it,
    or takes it off the books to await a price (keeper/unpriced.py)."""
    return any(note.event in EXTERNAL_NOTES for note in plan.notes)


def _unexplained_entry(plan: Plan) -> bool:
    """The plan adopts a position, or grows one, with no order of ours to explain it."""
    return any(
        note.event == "position_adopted" or (note.event == "position_grown" and note.error)
        for note in plan.notes
    )


def rest_recheck_of_trades(plan: Plan, source: SnapshotSource) -> str | None:
    """The log event naming why `plan`, made again with the account's trades read, must be
    planned once more from REST, or None: from the mirror, trades on a symbol read flat
    again that do not take it back to flat (the only case a plan made with those trades adds
    to `rest_recheck`'s: the first plan reads no trades)."""
    if source is not SnapshotSource.REST and any(n.event in FLAT_AGAIN_NOTES for n in plan.notes):
        return "stream_flat_checked_by_rest"
    return None


def mirror_difference(mirrored: ExchangeSnapshot, fresh: ExchangeSnapshot) -> str:
    """What the streams' mirror got wrong, or "" when it agrees with REST. The open orders by
    client id alone: an id of ours is never sent twice and Binance cannot modify an algo
    order, so its trigger and quantity are those it was placed with (docs/KEEPER.md). An
    order the mirror holds firing (TRIGGERING, TRIGGERED) that REST does not list is no
    difference: Binance does not say whether GET openAlgoOrders lists firing orders, and the
    stream tells their end (was: a reseed from that read, the stop executing taken for a
    missing one and another placed beside it; one left firing for good is the stuck rule's,
    keeper/protect.py)."""

    def orders(s: ExchangeSnapshot) -> set[str]:
        return {o.client_order_id for o in s.open_conditional_orders}

    firing = {o.client_order_id for o in mirrored.open_conditional_orders if o.triggered_at}
    parts = [positions_difference(mirrored.positions, fresh.positions)]
    only_stream = sorted(orders(mirrored) - orders(fresh) - firing)
    only_rest = sorted(orders(fresh) - orders(mirrored))
    if only_stream or only_rest:
        parts.append(f"open orders stream-only {only_stream} rest-only {only_rest}")
    return "; ".join(part for part in parts if part)


def positions_difference(
    mirrored: Mapping[str, ExchangePosition], fresh: Mapping[str, ExchangePosition]
) -> str:
    """How the mirror's positions (side and quantity by symbol) differ from REST's, or "".
    Their entry prices too, beyond rounding: a round trip by hand whose events were lost
    moves only Binance's entry (keeper/round_trip.py; was: seen by the full check alone)."""

    def held(positions: Mapping[str, ExchangePosition]) -> dict[str, tuple[str, Decimal]]:
        return {k: (p.side.value, p.quantity) for k, p in positions.items()}

    if held(mirrored) == held(fresh):
        moved = [
            f"{symbol} entry stream {p.entry_price} rest {fresh[symbol].entry_price}"
            for symbol, p in sorted(mirrored.items())
            if abs(p.entry_price - fresh[symbol].entry_price) > p.entry_price * RELATIVE_TOLERANCE
        ]
        return "positions " + ", ".join(moved) if moved else ""
    return f"positions stream {held(mirrored)} rest {held(fresh)}"
