"""What the campaign with a person trading by hand (by_hand.py) checks of our take-profits
(KEEPER.md, "A take-profit placed again"), from the stand-in's books at the end:

- one the person cancelled (`cancel_target`) on a position an entry of ours opened is back —
  a reduce-only take-profit of ours on the same side at the same trigger, for all that is
  held (the position's quantity: keeper/target.py) —
  within the keeper's ticks `target_allowed_ticks` derives, unless before then the position
  changed (a trade on the symbol: an exit, a stop, the person) or the mark reached the
  target (Binance would refuse one, -2021, and the stop maths exits at market);
- never two take-profits of ours open at once on one symbol;
- none placed after one of ours executed while the position it executed on is held (it stays
  the position's own: keeper/settle.py `took_profit`).

The ticks counted are those that could settle the cancelled one and send its successor
(`campaign_watch.settling_ticks`: not those a Retry-After hold overlapped, nor those whose
every lookup a fault answered), planned after the cancel: the tick under way then read the
books before it. A return during a read outage is shown, not held to its bound (as a span
without our stop: campaign_watch.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from campaign import MONITOR_S
from campaign_watch import KEEPER_ROUTES, ORDER_ROUTES
from loopback.state import LoopbackState

from quantum_trader.clock import utc_from_ms
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of
from quantum_trader.keeper.settings import KeeperSettings

if TYPE_CHECKING:
    from by_hand_check import HandOutcome

TICK_MS = round(MONITOR_S * 1000)
TARGET = "TAKE_PROFIT_MARKET"
# A tick plans with a mark up to this old: the streams count as silent past it
# (`exchange.stream_silence_s`, campaign_settings), and REST's then.
MARK_AGE_MS = 10_000
# by_hand_check.allowed_ticks: the ticks a span without our stop may last (market id, from,
# to, the ticks counted), the same for a take-profit cancelled by hand before any back-off
Allowed = Callable[["HandOutcome", str, int, int, Sequence[int]], int]


@dataclass(frozen=True, slots=True)
class Life:
    """A position the stand-in held on `market_id` from `start_ms` to `end_ms` (None: still
    held at the end): from the trade that opened it to the one that took it to zero or across;
    `ours` when an entry of ours opened it; `changes_ms` when each trade in it moved it."""

    market_id: str
    start_ms: int
    end_ms: int | None
    ours: bool
    changes_ms: tuple[int, ...]

    def holds(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms and (self.end_ms is None or at_ms < self.end_ms)


def lives(state: LoopbackState) -> list[Life]:
    """Every position the stand-in held, from its trades in order."""
    client_of = {o["orderId"]: o["clientOrderId"] for o in state.orders.values()}
    held: dict[str, Decimal] = defaultdict(Decimal)
    open_: dict[str, tuple[int, bool, list[int]]] = {}
    found = []
    for trade in sorted(state.trades, key=lambda t: int(t["id"])):
        market_id, at = trade["symbol"], trade["time"]
        before = held[market_id]
        signed = Decimal(trade["qty"]) * (1 if trade["side"] == "BUY" else -1)
        held[market_id] = after = before + signed
        if before != 0:
            start, ours, changes = open_[market_id]
            changes.append(at)
            if after == 0 or (after > 0) != (before > 0):
                found.append(Life(market_id, start, at, ours, tuple(changes)))
                del open_[market_id]
        if after != 0 and market_id not in open_:
            client_id = client_of.get(trade["orderId"], "")
            open_[market_id] = (at, purpose_of(client_id) is Purpose.ENTRY, [at])
    for market_id, (start, ours, changes) in open_.items():
        found.append(Life(market_id, start, None, ours, tuple(changes)))
    return found


def _targets(state: LoopbackState) -> list[dict[str, Any]]:
    """Our take-profits the stand-in ever held, by creation."""
    ours = [
        o
        for o in state.algo_orders.values()
        if o["orderType"] == TARGET and is_ours(o["clientAlgoId"])
    ]
    return sorted(ours, key=lambda o: (o["createTime"], int(o["algoId"])))


def _open_until(order: dict[str, Any]) -> int | None:
    """When a take-profit stopped waiting (triggered, cancelled, …): None while it waits."""
    if order["algoStatus"] == "NEW":
        return None
    return int(order["triggerTime"]) or int(order["updateTime"])


def _executed_ms(order: dict[str, Any], state: LoopbackState) -> int | None:
    """When a take-profit of ours executed (any of it), else None."""
    actual = state.orders.get(f"algo-{order['algoId']}")
    if actual is None or Decimal(actual["executedQty"]) == 0:
        return None
    return int(order["triggerTime"])


def target_problems(seed: int, result: HandOutcome, base: Allowed) -> Iterator[str]:
    """What this seed broke of our take-profits, one line each (`base`: see `Allowed`)."""
    state = result.standin
    targets = _targets(state)
    by_market: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for order in targets:
        by_market[order["symbol"]].append(order)
    for market_id, orders in sorted(by_market.items()):
        for index, second in enumerate(orders):
            for first in orders[:index]:
                until = _open_until(first)
                if until is None or second["createTime"] < until:
                    yield (
                        f"seed {seed}: two take-profits of ours open at once on {market_id}: "
                        f"{first['clientAlgoId']} and {second['clientAlgoId']} from "
                        f"{utc_from_ms(second['createTime']):%H:%M:%S}"
                    )
    every = lives(state)
    for order in targets:
        executed = _executed_ms(order, state)
        if executed is None:
            continue
        on = [x for x in every if x.market_id == order["symbol"] and x.holds(executed - 1)]
        if not on:
            continue
        life = on[0]
        for later in by_market[order["symbol"]]:
            if later["createTime"] > executed and life.holds(later["createTime"]):
                yield (
                    f"seed {seed}: take-profit {later['clientAlgoId']} placed on "
                    f"{order['symbol']} after {order['clientAlgoId']} executed for the same "
                    f"position"
                )
    for cancel in target_returns(result, base):
        if cancel.problem:
            yield f"seed {seed}: {cancel}"


@dataclass(frozen=True, slots=True)
class Return:
    """What followed a take-profit of ours the person cancelled at `at_ms`: `how` it ended
    (back, the position changed, the mark reached the target, never; or not checked:
    adopted, reads down), the ticks it took and those allowed, and whether that broke it."""

    market_id: str
    cancelled: str
    at_ms: int
    how: str
    ticks: int = 0
    allowed: int = 0
    problem: bool = False

    def __str__(self) -> str:
        return (
            f"{self.market_id} take-profit {self.cancelled} cancelled by hand at "
            f"{utc_from_ms(self.at_ms):%H:%M:%S}: {self.how} after {self.ticks} ticks "
            f"(at most {self.allowed})"
        )


def target_returns(result: HandOutcome, base: Allowed) -> list[Return]:
    """Each take-profit of ours the person cancelled, and what followed."""
    every = lives(result.standin)
    return [
        _target_back(result, every, action.cancelled, base)
        for action in result.actions
        if action.kind == "cancel_target" and action.cancelled
    ]


def _target_back(result: HandOutcome, every: list[Life], cancelled: str, base: Allowed) -> Return:
    """Whether the take-profit cancelled by hand, `cancelled`, is back in time."""
    state = result.standin
    gone = state.algo_orders[cancelled]
    market_id, at_ms = gone["symbol"], int(gone["updateTime"])
    life = next((x for x in every if x.market_id == market_id and x.holds(at_ms)), None)
    if life is None or not life.ours:  # adopted, or closed as it was cancelled: none is due
        return Return(market_id, cancelled, at_ms, "not ours to place again")
    ends = {c: "the position changed" for c in life.changes_ms if c > at_ms}
    reached = _mark_reached(state, gone, at_ms - MARK_AGE_MS, state.now_ms)
    if reached is not None:
        ends.setdefault(reached, "the mark reached the target")
    back = next(
        (
            o
            for o in _targets(state)
            if o["symbol"] == market_id
            and o["createTime"] >= at_ms
            and o["clientAlgoId"] != cancelled
            and o["side"] == gone["side"]
            and Decimal(o["triggerPrice"]) == Decimal(gone["triggerPrice"])
            and o["reduceOnly"]
        ),
        None,
    )
    if back is not None:
        ends[int(back["createTime"])] = f"back as {back['clientAlgoId']}"
    end_ms = min(ends, default=state.now_ms)
    how = ends.get(end_ms, "not back")
    planned = [t for t in result.outcome.watch.settling_ms if at_ms < t <= end_ms]
    ticks = len(planned)
    allowed = target_allowed_ticks(result, market_id, at_ms, end_ms, planned, base)
    if _reads_down(result, at_ms, end_ms):  # as a span without our stop: not held to it
        return Return(market_id, cancelled, at_ms, f"{how}, reads down", ticks, allowed)
    held = _held(state, market_id, at_ms)
    if _refusing_ms(result, market_id, at_ms, end_ms):
        how += " (a fault or Retry-After on the symbol: the back-off allowed)"
    if back is not None and how.startswith("back") and Decimal(back["quantity"]) < held:
        how = f"{how} for {back['quantity']}, {held} held"
        return Return(market_id, cancelled, at_ms, how, ticks, allowed, problem=True)
    return Return(market_id, cancelled, at_ms, how, ticks, allowed, ticks > allowed)


def target_allowed_ticks(
    result: HandOutcome,
    market_id: str,
    at_ms: int,
    end_ms: int,
    planned: Sequence[int],
    base: Allowed,
) -> int:
    """The ticks a take-profit of ours cancelled by hand at `at_ms` may take to be back.

    The tick that sees the cancel places it (keeper/target.py, after the stop; the lookup of
    the one cancelled settles it in that tick): the same 2 ticks as a stop of ours cancelled
    by hand (by_hand_check.STOP_WITHIN_TICKS), or, where a user-data event about the symbol
    never reached the daemon, the REST check's that reveals it (`allowed_ticks`). Plus the
    back-off, `monitor.take_profit_retry_s` in ticks, where something may have refused or held
    back an order of ours on the symbol: a fault the stand-in drew for a request about it (a
    503 or a 429 refuses the take-profit, RetryLater or OrderRejected: tried again after the
    back-off; a lost answer or 503 leaves an order of ours unsettled, which it waits out, at
    most `keeper.unknown_order_final_s`, less than the back-off) from that wait before the
    cancel on, or a Retry-After hold (every request refused: RetryLater) meanwhile. The
    back-off is a time: every tick planned within it after the first such refusal to the
    last (events wake ticks between the 5 s ones: 16 ticks in 63 s, seed 30718), at least
    its 12 ticks of 5 s, and the tick at or after its end that places it."""
    allowed = base(result, market_id, at_ms, end_ms, planned)
    refusing = _refusing_ms(result, market_id, at_ms, end_ms)
    if not refusing:
        return allowed
    retry_ms = round(result.take_profit_retry_s * 1000)
    within = sum(1 for t in planned if min(refusing) < t <= max(refusing) + retry_ms)
    return allowed + max(math.ceil(retry_ms / TICK_MS), within) + 1


def _refusing_ms(result: HandOutcome, market_id: str, at_ms: int, end_ms: int) -> list[int]:
    """When something may have refused or held back an order of ours on `market_id` between
    `at_ms` (less the wait for an unsettled one) and `end_ms`: each fault the stand-in drew
    for a request about it, and the end of each Retry-After hold (a tick sending in it is
    refused; its `now`, from which the back-off counts, is before the hold's end)."""
    since = at_ms - round(KeeperSettings().unknown_order_final_s * 1000)
    faults = [t for t, m, _, _ in result.faults_on if m == market_id and since <= t <= end_ms]
    return faults + [b for a, b in result.holds_ms if a <= end_ms and at_ms < b]


def _mark_reached(
    state: LoopbackState, order: dict[str, Any], from_ms: int, to_ms: int
) -> int | None:
    """The first second in [from_ms, to_ms] the stand-in's mark was at or past `order`'s
    trigger, where Binance would trigger (or refuse) it."""
    path, market = state.mark_path, state.markets[order["symbol"]]
    if path is None:
        return None
    trigger, sells = Decimal(order["triggerPrice"]), order["side"] == "SELL"
    for second in range(from_ms // 1000, to_ms // 1000 + 1):
        mark = path.price(market, second * 1000)
        if (mark >= trigger) if sells else (mark <= trigger):
            return second * 1000
    return None


def _held(state: LoopbackState, market_id: str, at_ms: int) -> Decimal:
    """How much the stand-in held on `market_id` at `at_ms`, either side."""
    trades = [t for t in state.trades if t["symbol"] == market_id and t["time"] <= at_ms]
    signed = (Decimal(t["qty"]) * (1 if t["side"] == "BUY" else -1) for t in trades)
    return abs(sum(signed, Decimal(0)))


def _reads_down(result: HandOutcome, start_ms: int, end_ms: int) -> bool:
    routes = KEEPER_ROUTES + ORDER_ROUTES
    return any(
        o.start_ms < end_ms and start_ms < o.end_ms and any(r in o.path for r in routes)
        for o in result.outages
    )
