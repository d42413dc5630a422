"""What the fault campaign watches on the stand-in's books while the daemon runs
(campaign.py): entries while a symbol is held, positions without a covering stop of ours and
orders of ours left unsettled, each counted in the keeper's ticks that could have acted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from loopback.server import LoopbackBinance
from loopback.state import LoopbackState

from quantum_trader.app import Runtime
from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import OrderStatus
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of

# What the keeper needs to see and protect: a span during which one of these is down does not
# count against "protected within one tick while the stand-in is reachable".
KEEPER_ROUTES = ("/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders", "/fapi/v1/algoOrder")
# What settling an unknown order needs: its lookup by client id.
ORDER_ROUTES = ("/fapi/v1/order", "/fapi/v1/algoOrder")
RETRY_DELAYS_S = (0.02, 0.05)  # the daemon's client here: a read is tried three times
READ_ATTEMPTS = len(RETRY_DELAYS_S) + 1


@dataclass
class Watch:
    """What the watcher saw on the stand-in's books while the daemon ran."""

    entries: int = 0
    entries_while_holding: list[str] = field(default_factory=list)
    # per symbol, the most keeper ticks that completed while a position it held had no stop
    # of ours covering it (spans when the routes the keeper needs were down are not counted,
    # nor ticks that overlapped a Retry-After hold: `sending_ticks`)
    unprotected_ticks: dict[str, int] = field(default_factory=dict)
    # every such span of more than one tick: (market id, first seen bare, seen covered again,
    # the planned times of the ticks counted), in the stand-in's ms
    bare_spans: list[tuple[str, int, int, list[int]]] = field(default_factory=list)
    # the most keeper ticks that completed while an order of ours stayed unsettled after it
    # could have been settled (past `unknown_order_final_s`, order routes up; ticks whose
    # lookups a fault answered or a Retry-After hold forbade are not counted: `settling_ticks`)
    late_settling_ticks: int = 0
    late_order: str = ""
    # the planned times (stand-in ms) of the completed ticks that could settle an order of
    # ours and send (`settling_ticks`), both phases, in order
    settling_ms: list[int] = field(default_factory=list)
    # the planned times (stand-in ms) of the completed ticks that could send
    # (`sending_ticks`), both phases, in order: what a span with more than one stop of ours,
    # or one on a symbol holding nothing, is counted in (by_hand_stops.py)
    sending_ms: list[int] = field(default_factory=list)
    ticks: int = 0
    trades: int = 0


def watch_entries(server: LoopbackBinance, watch: Watch) -> None:
    """Record, for every entry the stand-in receives, whether it already holds the symbol."""
    place = server.engine.place_order

    def recording(params: dict[str, str], fill: Any = None) -> dict[str, Any]:
        client_id = params.get("newClientOrderId", "")
        if purpose_of(client_id) is Purpose.ENTRY:
            watch.entries += 1
            if server.state.holding(params["symbol"]).amount != 0:
                watch.entries_while_holding.append(client_id)
        return place(params, fill)

    server.engine.place_order = recording  # type: ignore[method-assign]


def unprotected(state: LoopbackState) -> list[str]:
    """Market ids the stand-in holds with no reduce-only stop of ours covering all of it (a
    close-all one covers whatever is held, a larger one what is held: Binance's FAQ exempts
    reduce-only stop-market orders from its refusal of those larger than the position)."""
    bare = []
    for market_id, holding in state.holdings.items():
        if holding.amount == 0:
            continue
        exit_side = "SELL" if holding.amount > 0 else "BUY"
        covered = any(
            o["symbol"] == market_id
            and o["algoStatus"] == "NEW"
            and o["orderType"] == "STOP_MARKET"
            and o["reduceOnly"]
            and o["side"] == exit_side
            and is_ours(o["clientAlgoId"])
            and (o["closePosition"] or Decimal(o["quantity"]) >= abs(holding.amount))
            for o in state.algo_orders.values()
        )
        if not covered:
            bare.append(market_id)
    return bare


class TickCounter:
    """Counts the keeper's completed ticks (each sets `view().reconciled_at`)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._last: datetime | None = None
        self.count = 0

    def sample(self) -> int:
        seen = self._runtime.core.keeper.view().reconciled_at
        if seen != self._last:
            self._last, self.count = seen, self.count + 1
        return self.count

    @property
    def last(self) -> datetime | None:
        """The time the last tick counted was planned for (its `reconciled_at`)."""
        return self._last


class CountedTicks:
    """The keeper's completed ticks that could do a thing: a tick whose span (from its start,
    `reconciled_at`, to the sample that sees it completed) `spoiled` says it could not is not
    counted (`total` counts them all)."""

    def __init__(self, runtime: Runtime, spoiled: Callable[[int, int], bool]) -> None:
        self._runtime = runtime
        self._ticks = TickCounter(runtime)
        self._spoiled = spoiled
        self.total = self.count = 0
        self.planned_ms: list[int] = []  # each counted tick's planned time (`reconciled_at`)

    @property
    def last(self) -> datetime | None:
        """The time the last completed tick sampled was planned for."""
        return self._ticks.last

    def sample(self, now_ms: int) -> int:
        total = self._ticks.sample()
        if total != self.total:
            self.total = total
            started = self._runtime.core.keeper.view().reconciled_at
            start_ms = ms_from_utc(started) if started is not None else now_ms
            if not self._spoiled(start_ms, now_ms):
                self.count += 1
                self.planned_ms.append(start_ms)
        return self.count


def sending_ticks(runtime: Runtime, server: LoopbackBinance) -> CountedTicks:
    """Ticks that could send orders: not those overlapping a Retry-After hold the stand-in
    imposed. After a 429 the daemon's client refuses every request until Retry-After has
    passed (binance_client), so such a tick cannot place a stop; the ticks it wakes for
    meanwhile (user-data events, unknown outcomes) prove nothing."""
    return CountedTicks(runtime, lambda start, end: _held(server, start, end))


def settling_ticks(runtime: Runtime, server: LoopbackBinance) -> CountedTicks:
    """Ticks that could settle an unknown order: could send (`sending_ticks`), and the faults
    answered on the lookups (`ORDER_ROUTES`) were fewer than the client's attempts at a read
    (`READ_ATTEMPTS`): a lookup every attempt of which failed cannot settle the order, and the
    next tick tries again (seen: a 503 retried into a 429, `order_lookup_failed`)."""

    def spoiled(start: int, end: int) -> bool:
        failed = sum(
            1
            for t, method, path in server.faulted
            if start <= t <= end and method == "GET" and any(r in path for r in ORDER_ROUTES)
        )
        return failed >= READ_ATTEMPTS or _held(server, start, end)

    return CountedTicks(runtime, spoiled)


def _held(server: LoopbackBinance, start_ms: int, end_ms: int) -> bool:
    return any(s <= end_ms and start_ms < e for s, e in server.retry_after_ms)


async def watcher(
    server: LoopbackBinance, runtime: Runtime, watch: Watch, stopping: asyncio.Event
) -> None:
    """Sample the stand-in's books and the daemon's database every simulated second.

    A position without a stop counts the sending ticks planned after the last sample that saw
    it covered or flat: a tick planned before its entry filled cannot protect it however late
    it completes (like `_late_orders`'s, a tick may stall on a lost answer's timeout)."""
    ticks, settling = sending_ticks(runtime, server), settling_ticks(runtime, server)
    # market id → (stand-in ms first seen bare, sending ticks then, the sample before's ms)
    bare_since: dict[str, tuple[int, int, int]] = {}
    sampled_ms = server.state.now_ms
    late_since: dict[str, int] = {}  # client order id → tick count when it became late
    clock = runtime.clock
    final_after = timedelta(seconds=runtime.settings.keeper.unknown_order_final_s)
    while not stopping.is_set():
        now_ms = server.state.now_ms
        sending = ticks.sample(now_ms)
        settling.sample(now_ms)
        watch.ticks = ticks.total
        bare = set(unprotected(server.state))
        for market_id in [m for m in bare_since if m not in bare]:
            since = bare_since.pop(market_id)
            if not routes_down(server, KEEPER_ROUTES, since[0], now_ms):
                count_span(watch, market_id, since, now_ms, ticks.planned_ms)
        for market_id in bare:
            bare_since.setdefault(market_id, (now_ms, sending, sampled_ms))
        sampled_ms = now_ms
        await _late_orders(runtime, server, final_after, settling, late_since, watch)
        await clock.sleep_until(clock.now() + timedelta(seconds=1))
    # A span still open when the watching stops counts as far as it went: one never covered
    # again (a position opened by hand and never protected) was not counted at all.
    now_ms = server.state.now_ms
    ticks.sample(now_ms)
    for market_id, since in bare_since.items():
        if not routes_down(server, KEEPER_ROUTES, since[0], now_ms):
            count_span(watch, market_id, since, now_ms, ticks.planned_ms)
    watch.settling_ms = sorted({*watch.settling_ms, *settling.planned_ms})
    watch.sending_ms = sorted({*watch.sending_ms, *ticks.planned_ms})


def count_span(
    watch: Watch,
    market_id: str,
    since: tuple[int, int, int],
    end_ms: int,
    planned_ms: list[int],
) -> None:
    """Count a span without our stop on `market_id`, seen bare since `since` (`watcher`'s
    `bare_since`: first seen bare, the sending ticks counted then, the sample before's ms)
    until `end_ms`, in the ticks of `planned_ms` (every sending tick counted, in order)
    planned after the sample before it."""
    start_ms, start_tick, covered_ms = since
    planned = [t for t in planned_ms[start_tick:] if t > covered_ms]
    if len(planned) > 1:
        watch.bare_spans.append((market_id, start_ms, end_ms, planned))
    best = watch.unprotected_ticks.get(market_id, 0)
    watch.unprotected_ticks[market_id] = max(best, len(planned))


async def _late_orders(
    runtime: Runtime,
    server: LoopbackBinance,
    final_after: timedelta,
    settling: CountedTicks,
    late_since: dict[str, int],
    watch: Watch,
) -> None:
    """Orders still unsettled after a completed tick that could settle them, one planned at
    least `final_after` after they were sent (its time is `reconciled_at`): how many ticks they
    stay so. A tick planned earlier cannot settle an unknown order however late it completes
    (seen: a tick stalled 60 simulated seconds on a lost answer's timeout on a busy machine,
    then counted as if it had looked the order up late)."""
    count, ticked = settling.count, settling.last  # as sampled, before the read below
    if ticked is None:
        return
    unsettled = {
        o.client_order_id
        for o in await runtime.repository.open_orders()
        if is_ours(o.client_order_id)
        and o.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN)
        and o.created_at + final_after <= ticked
    }
    now_ms = server.state.now_ms
    if routes_down(server, ORDER_ROUTES, now_ms - 10_000, now_ms):
        late_since.clear()  # the lookups cannot succeed: start counting once they can
        return
    for client_order_id in unsettled:
        late_since.setdefault(client_order_id, count)
        spanned = count - late_since[client_order_id]
        if spanned > watch.late_settling_ticks:
            watch.late_settling_ticks, watch.late_order = spanned, client_order_id
    for client_order_id in set(late_since) - unsettled:
        del late_since[client_order_id]


def routes_down(
    server: LoopbackBinance, routes: tuple[str, ...], start_ms: int, end_ms: int
) -> bool:
    return any(
        o.start_ms < end_ms and start_ms < o.end_ms and any(r in o.path for r in routes)
        for o in server.outages
    )
