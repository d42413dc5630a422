"""kill -9 while orders are being placed, then a restart: the database and the exchange agree
and every position is protected within one tick of the start. Each chain kills the same daemon
(and data directory) five times in a row, each kill with its own seeded draw.

The stand-in runs in the test's own event loop, on wall time; the daemon in a subprocess
(daemon_process.py) against it, with 1 s monitor and 2 s executor intervals. A seed picks what
to kill in the middle of — an entry or a protective stop (the request reaches the stand-in,
which executes it and holds the answer back), or simply a moment of a running daemon — and
how long after, then freezes the stand-in's prices, kills the process, starts it again and
compares once it has ticked.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign import MARKET_IDS, SYMBOLS, _status, standin_state
from campaign_watch import unprotected
from child_env import child_env
from conftest import REPO
from loopback.faults import Fault
from loopback.fixtures import API_KEY, API_SECRET
from loopback.server import LoopbackBinance

from quantum_trader.clock import LiveClock
from quantum_trader.domain import OrderStatus
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of
from quantum_trader.storage.sqlite import SqliteRepository

RUNNER = Path(__file__).resolve().parent / "daemon_process.py"
TARGETS = ("entry", "stop", "any")


@dataclass
class Kill:
    seed: int
    target: str
    offset_s: float
    killed_at_arrival: bool = False
    exit_code: int | None = None
    problems: list[str] = field(default_factory=list)


def daemon_env(data_dir: Path, server: LoopbackBinance) -> dict[str, str]:
    clean = child_env()
    return {
        **clean,
        "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{REPO / 'tests' / 'campaign'}",
        "QT_DATA_DIR": str(data_dir),
        "QT_LOG__FORMAT": "json",
        "QT_EXCHANGE__MODE": "testnet",
        "QT_EXCHANGE__API_KEY": API_KEY,
        "QT_EXCHANGE__API_SECRET": API_SECRET,
        "QT_EXCHANGE__REST_URL": server.base_url,
        "QT_EXCHANGE__WS_URL": server.ws_url,
        "QT_EXCHANGE__REQUEST_TIMEOUT_S": "3",
        "QT_SERVER__ENABLED": "false",
        "QT_MARKET__SYMBOLS": ",".join(SYMBOLS),
        "QT_MARKET__HISTORY_BARS": "300",
        "QT_EXECUTOR__INTERVAL_S": "2",
        "QT_MONITOR__INTERVAL_S": "1",
        "QT_GOVERNOR__CORRELATION_SPIKE": "1.0",
        "QT_GOVERNOR__MAX_HOURLY_LOSS": "1.0",
        "QT_GOVERNOR__MAX_DAILY_DRAWDOWN": "1.0",
        "QT_GOVERNOR__MAX_DECLINE_FROM_START": "1.0",
        "QT_GOVERNOR__VOLATILITY_SPIKE_SIGMA": "1000",
        # Stops that move (break-even, trailing) and are replaced often: orders to kill into.
        "QT_MONITOR__STOP_REPLACE_MIN_INTERVAL_S": "2",
        "QT_MONITOR__BREAK_EVEN_TRIGGER": "0.002",
        "QT_MONITOR__TRAILING_TRIGGER": "0.003",
        "QT_MONITOR__MAX_HOLD_H": "0.01",  # 36 s: time exits, then entries again
        # Four daemons start at once on a busy machine: slow answers are not what is tested.
        "QT_HEALTH__LATENCY_GOOD_MS": "20000",
        "QT_HEALTH__LATENCY_ACCEPTABLE_MS": "30000",
        "QT_HEALTH__MAX_CPU_PCT": "100",
    }


class DaemonProcess:
    def __init__(self, seed: int, data_dir: Path, env: dict[str, str], run: int) -> None:
        self.log = data_dir / f"run-{run}.jsonl"
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out, self.log.with_suffix(".err").open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(RUNNER), str(seed)],
                env=env,
                cwd=data_dir,
                stdout=out,
                stderr=err,
            )

    async def wait_for(self, name: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        marker = f'"event": "{name}"'
        while marker not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None:
                err = self.log.with_suffix(".err").read_text(errors="replace")[-1500:]
                raise AssertionError(f"the daemon exited {self.process.returncode}: {err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name} within {timeout_s} s")
            await asyncio.sleep(0.2)

    async def kill(self) -> None:
        self.process.kill()
        await self._exited(10)

    async def stop(self) -> int:
        """SIGTERM, then wait without blocking the loop: the stand-in must keep answering
        while the daemon shuts down."""
        self.process.send_signal(signal.SIGTERM)
        return await self._exited(30)

    async def _exited(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"the daemon did not exit within {timeout_s} s")
            await asyncio.sleep(0.1)
        return self.process.returncode


class Trap:
    """Holds back the answer to the next order of the armed kind and says when it arrives
    (the stand-in executes it: a daemon killed then never heard the answer)."""

    def __init__(self, server: LoopbackBinance) -> None:
        self._server = server
        self.target: str | None = None
        self.arrived = asyncio.Event()
        engine = server.engine
        for method, purpose, key, path in (
            ("place_order", Purpose.ENTRY, "newClientOrderId", "/fapi/v1/order"),
            ("place_algo_order", Purpose.STOP, "clientAlgoId", "/fapi/v1/algoOrder"),
        ):
            setattr(engine, method, self._watching(getattr(engine, method), purpose, key, path))

    def arm(self, target: str) -> None:
        self.target = target if target != "any" else None
        self.arrived = asyncio.Event()

    def _watching(self, original: Any, purpose: Purpose, key: str, path: str) -> Any:
        def watching(params: dict[str, str], *rest: Any) -> Any:
            wanted = {"entry": Purpose.ENTRY, "stop": Purpose.STOP}.get(self.target or "")
            if wanted is purpose and purpose_of(params.get(key, "")) is purpose:
                self._server.inject(Fault(path, method="POST", delay_s=5.0))  # this answer
                self.target = None
                self.arrived.set()
            return original(params, *rest)

        return watching


async def kill_chain(seed: int, base: Path, kills: int) -> list[Kill]:
    """One stand-in and one data directory; `kills` times: kill -9 the daemon as the seeded
    order arrives (or at a moment), restart it, compare once it has ticked, let prices move.

    The first kill's trap is set before the daemon starts (its first cycle enters); later ones
    once the restarted daemon has been compared, so the comparison never races an order."""
    rng = random.Random(seed)
    data_dir = base / "data"
    results = []
    async with LoopbackBinance(standin_state(seed), clock=LiveClock()) as server:
        env = daemon_env(data_dir, server)
        trap = Trap(server)
        kill = Kill(seed * 100, rng.choice(TARGETS), rng.uniform(0.0, 1.5))
        trap.arm(kill.target)
        daemon = DaemonProcess(seed, data_dir, env, 1)
        try:
            await daemon.wait_for("runtime_ready", 90)
            for number in range(kills):
                if kill.target != "any":
                    try:
                        await asyncio.wait_for(trap.arrived.wait(), 15)
                        kill.killed_at_arrival = True
                    except TimeoutError:
                        pass  # nothing of that kind was placed: kill at a moment instead
                await asyncio.sleep(kill.offset_s)
                freeze(server)
                await daemon.kill()
                daemon = DaemonProcess(seed, data_dir, env, number + 2)
                await daemon.wait_for("runtime_ready", 90)
                await asyncio.sleep(1.5)  # one monitor tick
                kill.problems = await compare_live(data_dir, server)
                results.append(kill)
                server.state.marks.clear()  # prices move again: trading goes on
                kill = Kill(seed * 100 + number + 1, rng.choice(TARGETS), rng.uniform(0, 1.5))
                trap.arm(kill.target)
        finally:
            code = await daemon.stop()
    for done in results:
        done.exit_code = code
    return results


def freeze(server: LoopbackBinance) -> None:
    state = server.state
    state.marks.update({m: state.mark(m) for m in state.markets})


async def compare_live(data_dir: Path, server: LoopbackBinance) -> list[str]:
    """The running daemon's database against the stand-in: positions, protection, orders."""
    problems = []
    bare = unprotected(server.state)
    if bare:
        problems.append(f"unprotected on the exchange: {bare}")
    database = await SqliteRepository.open(data_dir / "quantum_trader.db", read_only=True)
    try:
        ledger = {p.symbol: (p.side.value, p.quantity) for p in await database.open_positions()}
        orders = {o.client_order_id: o for o in await database.orders()}
    finally:
        await database.close()
    by_id = {v: k for k, v in MARKET_IDS.items()}
    held = {
        by_id[m]: ("LONG" if h.amount > 0 else "SHORT", abs(h.amount))
        for m, h in server.state.holdings.items()
        if h.amount != 0
    }
    if ledger != held:
        problems.append(f"positions: database {ledger} exchange {held}")
    for client_id, raw in [*server.state.orders.items(), *server.state.algo_orders.items()]:
        if not is_ours(client_id):
            continue
        recorded = orders.get(client_id)
        if recorded is None:
            problems.append(f"{client_id} on the exchange, not in the database")
        elif (status := _status(raw, server.state.orders)) is not recorded.status and (
            recorded.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN)
        ):
            problems.append(f"{client_id}: database {recorded.status}, exchange {status}")
    return problems
