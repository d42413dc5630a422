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

The watching is campaign_watch.py's, the signals seeded_signals.py's; issue 10's lost entry
end to end is lost_entry.py.

The suite runs 20 seeds (test_fault_campaign.py). More from the command line, one process a
seed (its daemon's log in LOGS/SEED.log, the result and problems printed), or one seed with
its log on stdout:

    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/campaign.py \
        campaign FIRST COUNT [--at-once 2] [--minutes 4] [--logs LOGS]
    PYTHONPATH=tests:tests/campaign .venv/bin/python tests/campaign/campaign.py run SEED
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import uvloop
from campaign_watch import RETRY_DELAYS_S, TickCounter, Watch, watch_entries, watcher
from loopback.faults import RandomFaults, RandomStreamFaults, random_outages
from loopback.fixtures import loopback_settings
from loopback.markets import DEFAULT_MARKETS, MarkPath
from loopback.server import LoopbackBinance
from loopback.state import START_MS, LoopbackState
from seeded_signals import SeededSignals
from seeds_cli import run_seeds, seed_commands

from quantum_trader.app import Runtime
from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.app_ops import open_operations
from quantum_trader.clock import SimulatedClock, ms_from_utc, utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.daemon import run_loops
from quantum_trader.domain import OrderStatus
from quantum_trader.keeper.ids import is_ours
from quantum_trader.ops.metrics import Metrics
from quantum_trader.storage.sqlite import SqliteRepository

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT")
MARKET_IDS = {s: s.split("/")[0] + "USDT" for s in SYMBOLS}
READ_ROUTES = ("/fapi/v1/order", "/fapi/v3/positionRisk", "/fapi/v1/openAlgoOrders")
MONITOR_S = 5.0
SPEED = 30.0  # simulated seconds per real second
# The heartbeat (balance read, health) keeps real time: at its 60 s a faulted balance read at
# the start held health CRITICAL, entries off, for most of a run (seed 30028). Once a simulated
# minute, as live.
HEARTBEAT_S = 60.0 / SPEED
# A position without a covering stop of ours is protected again by the next tick that may
# send; counted from the last sample that saw it covered, that tick is at most the second.
STOP_WITHIN_TICKS = 2
RELAXED_HEALTH = {
    "latency_good_ms": 60_000.0,
    "latency_acceptable_ms": 60_000.0,
    "max_cpu_pct": 100.0,
    "max_error_rate": 1.0,
}


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


def arm_faults(
    server: LoopbackBinance,
    seed: int,
    start_ms: int,
    minutes: float,
    *,
    drop_new_stops: float = 0.0,
) -> None:
    """Faults on every REST route and on the streams, drawn from `seed`; `drop_new_stops`:
    the chance that the stream drops the event of a stop of ours accepted (NEW), beside the
    other events' `drop` (off in the suite's seeds; the campaigns' `--drop-new-stops`)."""
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
        drop_new_stops=drop_new_stops,
        new_stops_of=is_ours,
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
# What goes on while the daemon is stopped (`Restart`): given the stand-in and the clock,
# for the simulated seconds given.
WhileDown = Callable[[LoopbackBinance, SimulatedClock, float], Awaitable[None]]


@dataclass(frozen=True)
class Restart:
    """The daemon stopped gracefully `after_s` simulated seconds into the faulted run, down
    for `down_s` (`while_down` run meanwhile: a person trading on the account), then
    started again on the same data directory for the rest of the run."""

    after_s: float
    down_s: float
    while_down: WhileDown | None = None


async def run_campaign(
    seed: int,
    data_dir: Path,
    *,
    minutes: float = 4.0,
    speed: float = SPEED,
    beside: Beside | None = None,
    restart: Restart | None = None,
    drop_new_stops: float = 0.0,
) -> Outcome:
    clock = SimulatedClock(utc_from_ms(START_MS + 3_600_000), speed)
    watch = Watch()
    total_s = minutes * 60
    phases = [total_s] if restart is None else [restart.after_s, total_s - restart.after_s]
    async with LoopbackBinance(standin_state(seed), clock=clock) as server:
        watch_entries(server, watch)
        settings = campaign_settings(data_dir, server)
        for phase, phase_s in enumerate(phases):
            if phase > 0 and restart is not None:  # the daemon stopped: down for a while
                await _down(server, clock, restart)
            async with AsyncExitStack() as stack:
                stopping = asyncio.Event()
                with _faults_held(server):  # the start is not under test
                    runtime = await open_exchange_runtime(
                        settings, stack, stopping, clock=clock, source=SeededSignals(seed),
                        rate_limit=False, retry_delays_s=RETRY_DELAYS_S,
                    )  # fmt: skip
                if phase == 0:
                    start_ms = ms_from_utc(clock.now())
                    arm_faults(server, seed, start_ms, minutes, drop_new_stops=drop_new_stops)
                others = [beside(server, runtime)] if beside is not None else []
                await run_for(
                    runtime,
                    phase_s,
                    [partial(watcher, server, runtime, watch), *others],
                    min_ticks=round(phase_s / MONITOR_S),
                )
                if phase < len(phases) - 1:
                    continue
                disarm_faults(server)
                # Settle: past the REST check interval, and three ticks whatever the load.
                tail_s = runtime.settings.keeper.rest_check_interval_s + MONITOR_S
                watching = [partial(watcher, server, runtime, watch)]
                await run_for(runtime, tail_s, watching, ticks=3)
        return await compare(settings, server, watch)


@contextmanager
def _faults_held(server: LoopbackBinance) -> Iterator[None]:
    """No fault while the daemon starts (the first start: none armed yet), as before."""
    held = server.random_faults, server.streams.random, list(server.outages)
    server.random_faults, server.streams.random = None, None
    server.outages.clear()
    try:
        yield
    finally:
        server.random_faults, server.streams.random = held[0], held[1]
        server.outages.extend(held[2])


async def _down(server: LoopbackBinance, clock: SimulatedClock, restart: Restart) -> None:
    if restart.while_down is not None:
        await restart.while_down(server, clock, restart.down_s)
    else:
        await clock.sleep_until(clock.now() + timedelta(seconds=restart.down_s))


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
    seed: int,
    outcome: Outcome,
    *,
    stop_within_ticks: int = STOP_WITHIN_TICKS,
    excused_entries: Collection[str] = (),
) -> list[str]:
    """What this seed's run broke, one line each (empty: nothing). `excused_entries`: entries
    of ours that may arrive while the stand-in holds the symbol (a position another client of
    the account opened that the keeper could not have seen yet: by_hand_check.py)."""
    watch = outcome.watch
    found = []
    if watch.entries == 0:
        found.append("no entry: the campaign must trade to prove anything")
    holding = [c for c in watch.entries_while_holding if c not in excused_entries]
    if holding:
        found.append(f"entries while the exchange held the symbol: {holding}")
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


async def _one(seed: int, minutes: float) -> int:
    with tempfile.TemporaryDirectory(prefix=f"faults-{seed}-") as data_dir:
        outcome = await run_campaign(seed, Path(data_dir), minutes=minutes)
    found = campaign_problems(seed, outcome)
    watch = outcome.watch
    print(
        f"RESULT seed {seed}: entries {watch.entries}, closed trades {outcome.closed_trades}, "
        f"most ticks bare {max(watch.unprotected_ticks.values(), default=0)}",
        flush=True,
    )
    for line in found:
        print(f"PROBLEM {line}", flush=True)
    return 1 if found else 0


def main() -> int:
    parser, _, _ = seed_commands(__doc__.split("\n\n")[0], 2, "fault-logs")
    args = parser.parse_args()
    if args.command == "run":
        return uvloop.run(_one(args.seed, args.minutes))
    options = ["--minutes", str(args.minutes)]
    shown = ("RESULT", "PROBLEM")
    return run_seeds(__file__, args.first, args.count, args.at_once, args.logs, options, shown)


if __name__ == "__main__":
    sys.exit(main())
