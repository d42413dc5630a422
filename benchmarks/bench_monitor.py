"""One monitor tick's compute over 200 open positions: stop maths plus protection planning.

SPEC §11 target: ≤ 5 ms per tick, excluding the price request. Run:
    .venv/bin/python benchmarks/bench_monitor.py [--positions 200] [--ticks 300]
Prices random-walk (±0.5 % per tick, seeded) so stops trail, partials trigger and stops get
replaced; a position that exits is reopened so the book stays at its size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ExitMode,
    Order,
    OrderStatus,
    Position,
    Side,
)
from quantum_trader.monitor.protection import (
    PlaceStop,
    ProtectionAction,
    on_stop_placed,
    plan_protection,
)
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.monitor.stops import (
    PartialClose,
    PositionDecision,
    base_trail_mode,
    manage_position,
)

START = datetime(2025, 9, 1, tzinfo=UTC)
SETTINGS = MonitorSettings()
CENT = Decimal("0.01")


def open_position(index: int, price: Decimal, now: datetime) -> Position:
    side = Side.LONG if index % 2 == 0 else Side.SHORT
    stop = (price * (1 - Decimal("0.03") * side.sign)).quantize(CENT)
    return Position(
        symbol=f"S{index}/USDT:USDT",
        side=side,
        quantity=Decimal("1.000"),
        entry_price=price,
        leverage=3,
        stop_price=stop,
        take_profit_price=(price * (1 + Decimal("0.06") * side.sign)).quantize(CENT),
        opened_at=now,
        entry_order_id=f"qt-e-S{index}-1",
        initial_stop_price=stop,
        initial_quantity=Decimal("1.000"),
        atr_pct=0.02,
        exit_mode=ExitMode.TREND_FOLLOW if index % 3 == 0 else ExitMode.DEFENSIVE_TRAIL,
    )


def stop_order(action: PlaceStop, now: datetime) -> Order:
    return replace(Order.pending(action.request(), now), status=OrderStatus.OPEN)


def one_tick(
    positions: list[Position], prices: list[Decimal], books: list[list[Order]], now: datetime
) -> list[tuple[PositionDecision, list[ProtectionAction]]]:
    """The compute the loop does per tick: stop maths, then protection for the survivors."""
    out: list[tuple[PositionDecision, list[ProtectionAction]]] = []
    for held, price, book in zip(positions, prices, books, strict=True):
        decision = manage_position(
            held,
            price,
            now,
            atr_pct=0.02,
            trail_mode=base_trail_mode(held.exit_mode, SETTINGS),
            regime_turned_choppy=False,
            settings=SETTINGS,
        )
        actions: list[ProtectionAction] = []
        if decision.exit is None:
            actions = plan_protection(decision.position, book, now, SETTINGS)
        out.append((decision, actions))
    return out


def execute(
    index: int,
    decision: PositionDecision,
    actions: list[ProtectionAction],
    books: list[list[Order]],
    now: datetime,
) -> Position:
    """Carry a tick's result out on the in-memory book (outside the timed section)."""
    if decision.exit is not None:
        books[index] = []
        return open_position(index, decision.exit.price, now)
    held = decision.position
    for intent in decision.intents:
        if isinstance(intent, PartialClose):
            held = replace(held, quantity=held.quantity - intent.quantity)
    for action in actions:
        if isinstance(action, PlaceStop):
            books[index] = [stop_order(action, now)]
            held = on_stop_placed(held, action, now)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    now = START
    prices = [Decimal(rng.randint(1, 90_000)) for _ in range(args.positions)]
    positions = [open_position(i, p, now) for i, p in enumerate(prices)]
    books: list[list[Order]] = [[] for _ in positions]
    timings_ms: list[float] = []
    actions_seen = 0
    for _ in range(args.ticks):
        now += timedelta(seconds=SETTINGS.interval_s)
        prices = [
            max(CENT, (p * Decimal(repr(1 + rng.uniform(-0.005, 0.0055)))).quantize(CENT))
            for p in prices
        ]
        began = time.perf_counter()
        results = one_tick(positions, prices, books, now)
        timings_ms.append((time.perf_counter() - began) * 1000)
        actions_seen += sum(len(actions) for _, actions in results)
        positions = [execute(i, *result, books, now) for i, result in enumerate(results)]
    timings_ms.sort()
    print(
        f"monitor tick, {args.positions} positions, {args.ticks} ticks: "
        f"median {statistics.median(timings_ms):.2f} ms, "
        f"p95 {timings_ms[int(len(timings_ms) * 0.95) - 1]:.2f} ms, "
        f"max {timings_ms[-1]:.2f} ms (target ≤ 5 ms); protection actions {actions_seen}"
    )


if __name__ == "__main__":
    main()
