"""The daemon in testnet mode against the Binance stand-in, in accelerated time, with faults.

`run_campaign(seed, ...)` opens the real exchange runtime (ccxt REST and ccxt.pro streams over
real sockets to the stand-in), runs the daemon's own loops (executor, monitor, streams) on a
simulated clock, injects faults drawn from `seed` on every REST route and on the streams, and
watches the stand-in's own books the whole time:

- every entry the stand-in receives arrives while it holds nothing on that symbol (one
  decision, one entry: a lost answer is never answered by entering again);
- how long any position it holds goes without a reduce-only stop of ours covering it,
  excluding time when the reads and the order route the keeper needs are down, and counting
  only keeper ticks that could send: not those overlapping a Retry-After the stand-in
  answered (after a 429 the daemon sends nothing until it has passed, as Binance requires);
- how long any order of ours stays unsettled in the daemon's database once it could have been
  settled, counting only keeper ticks that could look it up: not those whose lookup a fault
  answered, nor those overlapping a Retry-After.

At the end the faults stop, the daemon runs on until it has settled, stops, and the database
is compared with the stand-in: positions, and every order of ours with its state.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from loopback.faults import Fault, Outage, RandomFaults, RandomStreamFaults, random_outages
from loopback.fixtures import loopback_settings
from loopback.markets import DEFAULT_MARKETS, MarkPath
from loopback.server import LoopbackBinance
from loopback.sources import AlwaysBuy
from loopback.state import START_MS, LoopbackState

from quantum_trader.app import Runtime
from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.app_ops import open_operations
from quantum_trader.clock import SimulatedClock, ms_from_utc, utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.daemon import run_loops
from quantum_trader.domain import Bars, OrderStatus, SignalSeries
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of
from quantum_trader.ops.metrics import Metrics
from quantum_trader.storage.sqlite import SqliteRepository

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT")
MARKET_IDS = {s: s.split("/")[0] + "USDT" for s in SYMBOLS}
# What the keeper needs to see and protect: a span during which one of these is down does not
# count against "protected within one tick while the stand-in is reachable".
KEEPER_ROUTES = ("/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders", "/fapi/v1/algoOrder")
READ_ROUTES = ("/fapi/v1/order", "/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders")
# What settling an unknown order needs: its lookup by client id.
ORDER_ROUTES = ("/fapi/v1/order", "/fapi/v1/algoOrder")
MONITOR_S = 5.0
SPEED = 30.0  # simulated seconds per real second
# The heartbeat (balance read, health) keeps real time: at its 60 s a faulted balance read at
# the start held health CRITICAL, entries off, for most of a run (seed 30028). Once a simulated
# minute, as live.
HEARTBEAT_S = 60.0 / SPEED
# A position without a covering stop of ours is protected again by the next tick that may
# send; counted from the last sample that saw it covered, that tick is at most the second.
STOP_WITHIN_TICKS = 2
RETRY_DELAYS_S = (0.02, 0.05)  # the daemon's client here: a read is tried three times
READ_ATTEMPTS = len(RETRY_DELAYS_S) + 1
RELAXED_HEALTH = {
    "latency_good_ms": 60_000.0,
    "latency_acceptable_ms": 60_000.0,
    "max_cpu_pct": 100.0,
    "max_error_rate": 1.0,
}


class SeededSignals:
    """BUY, SELL or HOLD per (seed, symbol, bar), confident: many entries and exits.

    A bar's draw is keyed on its open time, not its place in the window: the daemon's window
    slides at a fixed length, so a draw by place gave a symbol the same action on every bar of
    a run and every symbol HOLD in 0.4⁴ ≈ 2.6 % of seeds (no entry). On each bar one symbol,
    drawn, buys or sells: every cycle has a candidate."""

    warmup_hours = 1

    def __init__(self, seed: int) -> None:
        self._seed = seed

    @property
    def name(self) -> str:
        return f"seeded-{self._seed}"

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        symbols = sorted(bars)
        series = {}
        for symbol, b in bars.items():
            bar = b.time_ms // b.timeframe_ms
            draws = _draws(self._seed, symbol, bar) % 10
            leads = _draws(self._seed, "", bar) % len(symbols) == symbols.index(symbol)
            buy = np.where(leads, draws < 5, draws < 3)
            sell = ~buy & np.where(leads, True, draws < 6)
            action = np.where(buy, 1, np.where(sell, -1, 0)).astype(np.int8)
            confidence = np.full(len(b), 0.9)
            series[symbol] = SignalSeries(action, confidence, {self.name: (action, confidence)})
        return series


def _draws(seed: int, stream: str, bar: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """A 64-bit draw per bar number, from (seed, stream): splitmix64's finaliser."""
    key = np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1, np.uint64)
    x = bar.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key[0]
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return mixed


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
    ticks: int = 0
    trades: int = 0


@dataclass
class Outcome:
    watch: Watch
    database_positions: dict[str, tuple[str, Decimal]]
    exchange_positions: dict[str, tuple[str, Decimal]]
    mismatched_orders: list[str]
    missing_orders: list[str]
    unsettled_at_end: list[str]
    closed_trades: int


def campaign_settings(data_dir: Path, server: LoopbackBinance) -> Settings:
    """The campaign trades on coin flips, with accelerated time on a possibly busy machine:
    the governor's breakers and the health thresholds are opened wide, they are not under
    test (a slow answer would read as exchange latency and halt entries)."""
    return Settings(
        data_dir=data_dir,
        exchange=loopback_settings(2.0, server, stream_silence_s=10.0),
        market=MarketSettings(symbols=SYMBOLS, history_bars=300),
        server={"enabled": False},
        executor={"heartbeat_interval_s": HEARTBEAT_S},
        health=RELAXED_HEALTH,
        governor={
            "correlation_spike": 1.0,
            "max_hourly_loss": 1.0,
            "max_daily_drawdown": 1.0,
            "max_decline_from_start": 1.0,
            "volatility_spike_sigma": 1000.0,
        },
    )


def standin_state(seed: int) -> LoopbackState:
    markets = {m.market_id: m for m in DEFAULT_MARKETS if m.market_id in MARKET_IDS.values()}
    state = LoopbackState(markets=markets)
    # Swings of ±1.5 % over 5 min: stops, targets and trailing are hit within minutes,
    # entries follow, and every order path is exercised.
    state.mark_path = MarkPath(seed, swing=0.015, period_s=300.0, noise=0.0003)
    return state


def arm_faults(server: LoopbackBinance, seed: int, start_ms: int, minutes: float) -> None:
    """Faults on every REST route and on the streams, drawn from `seed`."""
    server.random_faults = RandomFaults(
        seed,
        lost_answer=0.03,
        unavailable=0.03,
        rate_limited=0.01,
        partial_fill=0.15,
        lost_answer_delay_s=3.0,
        retry_after_s=1.0,
    )
    server.streams.random = RandomStreamFaults(
        seed,
        disconnect_per_s=0.004,
        silence_per_s=0.002,
        silence_s=15.0,
        duplicate=0.05,
        reorder=0.05,
        drop=0.02,
    )
    end_ms = start_ms + round(minutes * 60_000)
    for outage in random_outages(seed, READ_ROUTES, start_ms, end_ms, 3, (10.0, 25.0)):
        server.outage(outage)


def disarm_faults(server: LoopbackBinance) -> None:
    """No more faults, and prices stand still: what the books must agree on stops moving."""
    server.random_faults = None
    server.streams.random = None
    server.outages.clear()
    state = server.state
    state.marks.update({m: state.mark(m) for m in state.markets})


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
    """Market ids the stand-in holds with no reduce-only stop of ours covering all of it."""
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
            and Decimal(o["quantity"]) >= abs(holding.amount)
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

    def planned_after(self, first: int, after_ms: int) -> int:
        """How many of the ticks counted from the `first`-th on were planned after `after_ms`."""
        return sum(1 for planned in self.planned_ms[first:] if planned > after_ms)


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
            start_ms, start_tick, covered_ms = bare_since.pop(market_id)
            if not routes_down(server, KEEPER_ROUTES, start_ms, now_ms):
                spanned = ticks.planned_after(start_tick, covered_ms)
                if spanned > 1:
                    planned = [t for t in ticks.planned_ms[start_tick:] if t > covered_ms]
                    watch.bare_spans.append((market_id, start_ms, now_ms, planned))
                best = watch.unprotected_ticks.get(market_id, 0)
                watch.unprotected_ticks[market_id] = max(best, spanned)
        for market_id in bare:
            bare_since.setdefault(market_id, (now_ms, sending, sampled_ms))
        sampled_ms = now_ms
        await _late_orders(runtime, server, final_after, settling, late_since, watch)
        await clock.sleep_until(clock.now() + timedelta(seconds=1))


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


async def run_for(
    runtime: Runtime, simulated_s: float, tasks: list[Any], *, ticks: int = 0, min_ticks: int = 0
) -> None:
    """The daemon's loops (and the watchers) for `simulated_s`, then on for `ticks` more
    completed keeper ticks and until at least `min_ticks` completed in all; then a graceful
    stop. On a busy machine simulated time runs ahead of the loops: counting ticks gives the
    daemon the same work whatever the load."""
    stopping = asyncio.Event()
    clock = runtime.clock
    counter = TickCounter(runtime)

    async def stop_later() -> None:
        first = counter.sample()
        await clock.sleep_until(clock.now() + timedelta(seconds=simulated_s))
        after = counter.sample()
        while counter.sample() - after < ticks or counter.count - first < min_ticks:
            await clock.sleep_until(clock.now() + timedelta(seconds=1))
        stopping.set()

    async with AsyncExitStack() as stack:
        ops = await open_operations(runtime, Metrics(), stack)
        await asyncio.gather(
            run_loops(runtime, ops, stopping), stop_later(), *(t(stopping) for t in tasks)
        )


# Another client of the account, running beside the daemon while the faults are armed (a
# person trading by hand: by_hand.py): given the stand-in and the daemon's runtime, what to
# run until the event it is given is set.
Beside = Callable[[LoopbackBinance, Runtime], Callable[[asyncio.Event], Awaitable[None]]]


async def run_campaign(
    seed: int,
    data_dir: Path,
    *,
    minutes: float = 4.0,
    speed: float = SPEED,
    beside: Beside | None = None,
) -> Outcome:
    clock = SimulatedClock(utc_from_ms(START_MS + 3_600_000), speed)
    watch = Watch()
    async with LoopbackBinance(standin_state(seed), clock=clock) as server:
        watch_entries(server, watch)
        settings = campaign_settings(data_dir, server)
        async with AsyncExitStack() as stack:
            stopping = asyncio.Event()
            runtime = await open_exchange_runtime(
                settings, stack, stopping, clock=clock, source=SeededSignals(seed),
                rate_limit=False, retry_delays_s=RETRY_DELAYS_S,
            )  # fmt: skip
            arm_faults(server, seed, ms_from_utc(clock.now()), minutes)
            others = [beside(server, runtime)] if beside is not None else []
            await run_for(
                runtime,
                minutes * 60,
                [lambda stop: watcher(server, runtime, watch, stop), *others],
                min_ticks=round(minutes * 60 / MONITOR_S),
            )
            disarm_faults(server)
            # Settle: past the REST check interval, and three ticks whatever the machine's load.
            tail_s = runtime.settings.keeper.rest_check_interval_s + MONITOR_S
            watching = [lambda stop: watcher(server, runtime, watch, stop)]
            await run_for(runtime, tail_s, watching, ticks=3)
        return await compare(settings, server, watch)


async def compare(settings: Settings, server: LoopbackBinance, watch: Watch) -> Outcome:
    """The database against the stand-in's books, read after the daemon stopped."""
    database = await SqliteRepository.open(settings.data_dir / "quantum_trader.db", read_only=True)
    try:
        positions = await database.open_positions()
        orders = {o.client_order_id: o for o in await database.orders()}
        open_orders = await database.open_orders()
        trades = await database.closed_trades()
    finally:
        await database.close()
    by_id = {v: k for k, v in MARKET_IDS.items()}
    exchange = {
        by_id[m]: ("LONG" if h.amount > 0 else "SHORT", abs(h.amount))
        for m, h in server.state.holdings.items()
        if h.amount != 0
    }
    ledger = {p.symbol: (p.side.value, p.quantity) for p in positions}
    mismatched, missing = [], []
    for client_id, raw in [*server.state.orders.items(), *server.state.algo_orders.items()]:
        if not is_ours(client_id):
            continue
        recorded = orders.get(client_id)
        if recorded is None:
            missing.append(client_id)
        elif (status := _status(raw, server.state.orders)) is not recorded.status:
            mismatched.append(f"{client_id}: db {recorded.status} exchange {status}")
    unsettled = [
        o.client_order_id
        for o in open_orders
        if o.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN)
    ]
    watch.trades = len(trades)
    return Outcome(watch, ledger, exchange, mismatched, missing, unsettled, len(trades))


def campaign_problems(
    seed: int, outcome: Outcome, *, stop_within_ticks: int = STOP_WITHIN_TICKS
) -> list[str]:
    """What this seed's run broke, one line each (empty: nothing)."""
    watch = outcome.watch
    found = []
    if watch.entries == 0:
        found.append("no entry: the campaign must trade to prove anything")
    if watch.entries_while_holding:
        found.append(f"entries while the exchange held the symbol: {watch.entries_while_holding}")
    if any(ticks > stop_within_ticks for ticks in watch.unprotected_ticks.values()):
        found.append(
            f"positions without a stop for more than {stop_within_ticks} ticks: "
            f"{watch.unprotected_ticks}"
        )
    if watch.late_settling_ticks > 1:
        found.append(f"{watch.late_order} settled {watch.late_settling_ticks} ticks late")
    if outcome.unsettled_at_end:
        found.append(f"unsettled at the end: {outcome.unsettled_at_end}")
    if outcome.database_positions != outcome.exchange_positions:
        found.append(
            f"positions: database {outcome.database_positions} "
            f"exchange {outcome.exchange_positions}"
        )
    if outcome.missing_orders or outcome.mismatched_orders:
        found.append(f"orders: missing {outcome.missing_orders} {outcome.mismatched_orders}")
    return [f"seed {seed}: {line}" for line in found]


def _status(raw: dict[str, Any], orders: Mapping[str, dict[str, Any]]) -> OrderStatus:
    """The stand-in's state of an order in our vocabulary (as the adapter maps it). A
    conditional order that FINISHED is EXPIRED when its market order (in `orders`, the
    stand-in's by client id) ran out of what was held — a reduce-only stop larger than the
    position after a reduction by hand — as the keeper records it, else FILLED."""
    if "algoStatus" in raw:
        actual = orders.get(f"algo-{raw['algoId']}", {})
        if raw["algoStatus"] == "FINISHED" and actual.get("status") == "EXPIRED":
            return OrderStatus.EXPIRED
        return {
            "NEW": OrderStatus.OPEN,
            "CANCELED": OrderStatus.CANCELED,
            "EXPIRED": OrderStatus.EXPIRED,
            "REJECTED": OrderStatus.REJECTED,
        }.get(raw["algoStatus"], OrderStatus.FILLED)
    return {
        "FILLED": OrderStatus.FILLED,
        "EXPIRED": OrderStatus.EXPIRED,
        "CANCELED": OrderStatus.CANCELED,
        "NEW": OrderStatus.OPEN,
        "PARTIALLY_FILLED": OrderStatus.OPEN,
    }[raw["status"]]


def seeds(count: int) -> list[int]:
    return [random.Random(i).randrange(1, 10_000) for i in range(count)]


@dataclass
class LostEntry:
    entries: int
    held: Decimal
    stops: list[Decimal]
    database: dict[str, tuple[str, Decimal]]
    entry_status: OrderStatus | None


async def run_lost_entry_and_read_outage(
    data_dir: Path, *, streams: bool, down: tuple[str, ...] = ("/fapi/v1/order",)
) -> LostEntry:
    """Issue 10's case: the entry's answer is lost and the read routes `down` (by default the
    order lookup) fail for 20 s right after it. Slow enough (5×) that a 1 s request timeout is
    4 simulated seconds."""
    clock = SimulatedClock(utc_from_ms(START_MS + 3_600_000), 5.0)
    watch = Watch()
    state = LoopbackState(markets={m.market_id: m for m in DEFAULT_MARKETS[:1]})
    async with LoopbackBinance(state, clock=clock) as server:
        watch_entries(server, watch)
        settings = Settings(
            data_dir=data_dir,
            exchange=loopback_settings(1.0, server, use_streams=streams),
            market=MarketSettings(symbols=(SYMBOLS[0],), history_bars=300),
            server={"enabled": False},
            health=RELAXED_HEALTH,
            executor={"interval_s": 5.0},  # the executor tries again and again meanwhile
        )
        async with AsyncExitStack() as stack:
            stopping = asyncio.Event()
            runtime = await open_exchange_runtime(
                settings, stack, stopping, clock=clock, source=AlwaysBuy(), rate_limit=False,
                retry_delays_s=RETRY_DELAYS_S,
            )  # fmt: skip
            now_ms = ms_from_utc(clock.now())
            server.inject(Fault("/fapi/v1/order", method="POST", delay_s=3.0))  # answer lost
            for route in down:
                server.outage(Outage(route, now_ms, now_ms + 20_000, method="GET"))
            await run_for(runtime, 45, [])
        outcome = await compare(settings, server, watch)
        holding = server.state.holdings.get("BTCUSDT")
        stops = [
            Decimal(o["quantity"])
            for o in server.state.algo_orders.values()
            if o["algoStatus"] == "NEW" and o["orderType"] == "STOP_MARKET" and o["reduceOnly"]
        ]
        entry = next((c for c in server.state.orders if purpose_of(c) is Purpose.ENTRY), None)
        database = await SqliteRepository.open(data_dir / "quantum_trader.db", read_only=True)
        try:
            recorded = await database.get_order(entry) if entry else None
        finally:
            await database.close()
    return LostEntry(
        watch.entries,
        abs(holding.amount) if holding else Decimal(0),
        stops,
        outcome.database_positions,
        recorded.status if recorded else None,
    )
