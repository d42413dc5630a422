"""What the campaign with a person trading by hand (by_hand.py) measures of our protective
stops beside their absence (by_hand_check.py), from the stand-in's books at the end: on each
symbol, every span during which

- more than one reduce-only STOP_MARKET of ours was open (NEW) there (`SEVERAL`), and
- one of ours was open (NEW) while the stand-in held nothing there (`FLAT`),

each in the stand-in's ms and in the keeper's ticks that could send
(`campaign_watch.sending_ticks`: not those a Retry-After hold overlapped) planned within it.
A firing stop (met its trigger: TRIGGERING, TRIGGERED) is not NEW and is not counted:
Binance refuses to cancel it.

The bounds. The keeper keeps exactly one stop of ours a position (docs/KEEPER.md). It
replaces one by placing the new stop and then cancelling the old, in the same tick and in
that order (keeper/protect.py `protection_actions`: the `PlaceStop` before a `CancelOrder` of
every other stop of ours listed; keeper/carry_actions.py `act`: in order, the symbol's
actions after a failed one skipped, so the old stop stays whenever the new one's placement
is refused or unanswered). Two of ours are open for the moment between the two requests,
inside the tick that placed the new one, which was planned before the span began: no tick is
planned within it. When the cancel does not go through, the next tick — planned within the
span — lists the old one beside the new one and cancels it: `SEVERAL_TICKS`, 1 (two ticks
in all with the one that placed it). A symbol the stand-in holds nothing on has our stops
released by the tick that reads it flat (keeper/guard.py `release_orphans`,
keeper/protect.py `plan_release`): planned after the close, one tick; two when the close came
as a tick was reading (its plan made from before it): `FLAT_TICKS`, 2.

On top of either, what the design allows:

- a tick for each request of the daemon's about the symbol a fault answered in the span
  (`COSTS_A_TICK`): an order change refused or unanswered (the symbol's actions after it
  skipped), a lookup by client id (the order it settles left for the next tick), its open
  orders' read (REST only: none of them planned that tick, keeper/reads.py `_orders`);
- while a placement of ours on the symbol is unsettled (a fault on it, up to
  `keeper.unknown_order_final_s` after: keeper/settle.py `_maybe_never_accepted`), the ticks
  until then: nothing is released on a symbol with an order in flight (`release_orphans`:
  an entry's blind stop where the entry never arrived, KEEPER.md "Entries"), nor cancelled
  while a reduction awaits it (keeper/protect.py `stop_while_unsettled`: a flip by hand
  meanwhile is covered on its side beside ours on the other);
- for `FLAT`, a close whose ACCOUNT_UPDATE never reached the daemon (`hidden`): the ticks
  until the check of positions (`keeper.rest_position_check_s`) reveals it;
- a span a read outage of the keeper's routes overlapped is shown, not held to its bound (as
  a span without our stop: campaign_watch.py).

Not allowed: an event of ours lost on the user-data stream beside the `FLAT` case above. The
keeper needs no event to cancel an old stop it replaced, nor to know of a stop it placed
itself: the exchange's answer to the placement says so, and a tick that finds it missing
from the streams' mirror looks it up by client id. Nor a stop larger than what is held:
since Binance exempts reduce-only stop-market orders of the position's size or more from its
refusal of larger ones (commit e9d4850, keeper/protect.py `covers`), one covers what is held
and is no reason for a second.

Spans still open when the run ends (after the settling without faults) are problems
whatever their length.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from by_hand_targets import lives
from campaign import MONITOR_S
from campaign_watch import KEEPER_ROUTES, ORDER_ROUTES
from loopback.state import LoopbackState

from quantum_trader.clock import utc_from_ms
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.settings import KeeperSettings

if TYPE_CHECKING:
    from by_hand_check import HandOutcome

TICK_MS = round(MONITOR_S * 1000)
SEVERAL, FLAT = "several", "flat"
SEVERAL_TICKS = 1  # the tick after the one that placed the new stop, its cancel retried
FLAT_TICKS = 2  # the tick that reads the symbol flat, or the next when one was reading
# The daemon's requests that place or cancel an order (by_hand_check.ORDER_CHANGES).
ORDER_CHANGES = frozenset(
    (method, path)
    for method in ("POST", "DELETE")
    for path in ("/fapi/v1/order", "/fapi/v1/algoOrder")
)
# The daemon's requests about a symbol a fault on which costs it a tick: order changes,
# lookups of our orders by client id, and the read of the symbol's open orders (REST only).
COSTS_A_TICK = ORDER_CHANGES | {
    ("GET", "/fapi/v1/order"),
    ("GET", "/fapi/v1/algoOrder"),
    ("GET", "/fapi/v1/openAlgoOrders"),
}


@dataclass(frozen=True, slots=True)
class StopSpan:
    """On `market_id` from `start_ms` to `end_ms` (the stand-in's ms; the run's end when
    `open_at_end`): more than one stop of ours open (`SEVERAL`, `most` at once at most), or
    one or more on a symbol holding nothing (`FLAT`); `stops` the client ids open in it;
    `ticks` the planned times of the keeper's ticks that could send planned within it."""

    market_id: str
    kind: str
    start_ms: int
    end_ms: int
    stops: tuple[str, ...]
    most: int
    ticks: tuple[int, ...]
    open_at_end: bool = False

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms

    def __str__(self) -> str:
        what = f"{self.most} stops of ours" if self.kind == SEVERAL else "a stop of ours, flat"
        end = "the end" if self.open_at_end else f"{utc_from_ms(self.end_ms):%H:%M:%S.%f}"[:-3]
        return (
            f"{self.market_id} {what} from {utc_from_ms(self.start_ms):%H:%M:%S.%f}"[:-3]
            + f" to {end} ({self.length_ms} ms, {len(self.ticks)} ticks planned within): "
            + " ".join(self.stops)
        )


def our_stops(state: LoopbackState) -> list[dict[str, Any]]:
    """The reduce-only STOP_MARKET orders of ours the stand-in ever held (close-all ones are
    reduce-only), by creation."""
    ours = [
        o
        for o in state.algo_orders.values()
        if o["orderType"] == "STOP_MARKET" and o["reduceOnly"] and is_ours(o["clientAlgoId"])
    ]
    return sorted(ours, key=lambda o: (o["createTime"], int(o["algoId"])))


def open_until(order: dict[str, Any]) -> int | None:
    """When a conditional order stopped resting (NEW): met its trigger, or was cancelled,
    expired, refused; None while it rests."""
    if order["algoStatus"] == "NEW":
        return None
    return int(order["triggerTime"]) or int(order["updateTime"])


def stop_spans(state: LoopbackState, sending_ms: Sequence[int]) -> list[StopSpan]:
    """Every span with more than one stop of ours open on a symbol, or one open on a symbol
    holding nothing, in the stand-in's books at the end (`state`), counted in `sending_ms`."""
    end_ms = state.now_ms
    # By market id: (ms, order of processing, what, client id). At one instant an end comes
    # before a start (a stop ended as another was made: never both at once), a position's
    # end before its start (a flip's close and open: held throughout).
    moves: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)
    for order in our_stops(state):
        until = open_until(order)
        moves[order["symbol"]].append((int(order["createTime"]), 3, "stop+", order["clientAlgoId"]))
        if until is not None:
            moves[order["symbol"]].append((until, 0, "stop-", order["clientAlgoId"]))
    for life in lives(state):
        moves[life.market_id].append((life.start_ms, 2, "held+", ""))
        if life.end_ms is not None:
            moves[life.market_id].append((life.end_ms, 1, "held-", ""))
    spans = []
    for market_id, steps in sorted(moves.items()):
        spans += _spans(market_id, sorted(steps), end_ms, sending_ms)
    return sorted(spans, key=lambda s: (s.start_ms, s.market_id, s.kind))


def _spans(
    market_id: str, steps: list[tuple[int, int, str, str]], end_ms: int, sending_ms: Sequence[int]
) -> list[StopSpan]:
    open_: set[str] = set()
    held = 0
    several: tuple[int, set[str], int] | None = None  # start, ids seen, most at once
    flat: tuple[int, set[str]] | None = None
    found = []

    def span(kind: str, start: int, until: int, ids: set[str], most: int, at_end: bool) -> None:
        ticks = tuple(t for t in sending_ms if start <= t < until)
        found.append(StopSpan(market_id, kind, start, until, tuple(sorted(ids)), most, ticks,
                              at_end))  # fmt: skip

    for at_ms, _, what, client_id in steps:
        if what == "stop+":
            open_.add(client_id)
        elif what == "stop-":
            open_.discard(client_id)
        elif what == "held+":
            held += 1
        else:
            held -= 1
        if len(open_) > 1:
            if several is None:
                several = (at_ms, set(open_), len(open_))
            else:
                several = (several[0], several[1] | open_, max(several[2], len(open_)))
        elif several is not None:
            span(SEVERAL, several[0], at_ms, several[1], several[2], False)
            several = None
        if open_ and held == 0:
            flat = (at_ms, set(open_)) if flat is None else (flat[0], flat[1] | open_)
        elif flat is not None:
            span(FLAT, flat[0], at_ms, flat[1], 1, False)
            flat = None
    if several is not None:
        span(SEVERAL, several[0], end_ms, several[1], several[2], True)
    if flat is not None:
        span(FLAT, flat[0], end_ms, flat[1], 1, True)
    return found


def allowed(result: HandOutcome, span: StopSpan) -> int:
    """The ticks `span` may have planned within it (the module's docstring)."""
    market_id, start_ms, end_ms = span.market_id, span.start_ms, span.end_ms
    base = SEVERAL_TICKS if span.kind == SEVERAL else FLAT_TICKS
    faults = [(at_ms, (method, path)) for at_ms, on, method, path in result.faults_on
              if on == market_id]  # fmt: skip
    # A tick a fault cost the symbol: an order change refused or unanswered (its actions
    # after it skipped), a lookup unanswered (the order it would settle left for the next),
    # or its open orders unread (none of them planned that tick).
    refused = sum(1 for at_ms, request in faults
                  if start_ms - TICK_MS <= at_ms <= end_ms and request in COSTS_A_TICK)  # fmt: skip
    bound = base
    # A placement of ours on the symbol whose outcome a fault left unknown: nothing of the
    # symbol's is released while an order of ours is in flight there (keeper/guard.py
    # `release_orphans`: the symbol is busy) — an entry's blind stop on a symbol its entry
    # never reached (KEEPER.md, "Entries") — nor cancelled while a reduction awaits it
    # (keeper/protect.py `stop_while_unsettled`: a flip by hand meanwhile gets a stop on its
    # side beside ours on the other); `keeper.unknown_order_final_s` at most when the
    # exchange never took it (keeper/settle.py `_maybe_never_accepted`).
    final_ms = round(KeeperSettings().unknown_order_final_s * 1000)
    placed = [at_ms for at_ms, (method, path) in faults
              if method == "POST" and (method, path) in ORDER_CHANGES]  # fmt: skip
    for at_ms in (t for t in placed if start_ms - final_ms <= t <= end_ms):
        bound = max(bound, _ticks_until(span, at_ms + final_ms) + base)
    if span.kind == FLAT:  # a close the user-data stream never reported: the check of
        check_ms = round(result.rest_position_check_s * 1000)  # positions sees it
        for at_ms, event in result.hidden:
            if event.get("e") != "ACCOUNT_UPDATE":
                continue
            if not any(r.get("s") == market_id for r in event["a"]["P"]):
                continue
            if start_ms - check_ms <= at_ms <= end_ms:
                due_ms = max(start_ms, at_ms) + check_ms
                bound = max(bound, _ticks_until(span, due_ms) + base)
    return bound + refused


def _ticks_until(span: StopSpan, due_ms: int) -> int:
    """The ticks of `span` planned until `due_ms`, at least that time's in ticks of the
    keeper's interval (events wake more: by_hand_check.allowed_ticks)."""
    within = sum(1 for t in span.ticks if t <= due_ms)
    return max(math.ceil((due_ms - span.start_ms) / TICK_MS), within)


def reads_down(result: HandOutcome, span: StopSpan) -> bool:
    """A read outage of what the keeper needs overlapped `span`: shown, not held to its
    bound (as a span without our stop: campaign_watch.py)."""
    routes = KEEPER_ROUTES + ORDER_ROUTES
    return any(
        o.start_ms < span.end_ms and span.start_ms < o.end_ms and any(r in o.path for r in routes)
        for o in result.outages
    )


def stop_problems(seed: int, result: HandOutcome) -> Iterator[str]:
    """What this seed broke of the one stop of ours a position, one line each."""
    for span in stop_spans(result.standin, result.outcome.watch.sending_ms):
        bound = allowed(result, span)
        if span.open_at_end:
            yield f"seed {seed}: still at the end: {span}"
        elif len(span.ticks) > bound and not reads_down(result, span):
            yield f"seed {seed}: {span} (at most {bound} ticks)"


def stops_summary(spans: Sequence[StopSpan]) -> str:
    """The RESULT line's part: the most stops of ours at once, and the longest span of each
    kind (by ticks, then ms)."""
    several = [s for s in spans if s.kind == SEVERAL]
    flat = [s for s in spans if s.kind == FLAT]
    most = max((s.most for s in several), default=1)
    parts = [f"most stops of ours at once {most}"]
    for name, found in (("several", several), ("flat", flat)):
        if not found:
            parts.append(f"{name} none")
            continue
        worst = max(found, key=lambda s: (len(s.ticks), s.length_ms))
        parts.append(
            f"{name} {len(found)} spans, longest {len(worst.ticks)} ticks "
            f"{worst.length_ms} ms {worst.market_id}"
        )
    return ", ".join(parts)
