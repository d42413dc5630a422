"""One monitor tick's compute over 200 open positions: the keeper's whole plan.

That is reconciliation against the exchange's picture, the stop maths and protection planning
(keeper/plan.py), everything the 5 s tick does between its reads and its orders.
SPEC §11 target: ≤ 5 ms per tick, excluding the requests. Run:
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
    ExchangePosition,
    ExchangeSnapshot,
    ExitMode,
    MarketRules,
    Order,
    OrderKind,
    OrderStatus,
    Position,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.plan import Context, Observation, Plan, plan
from quantum_trader.keeper.protect import PlaceStop, SendExit
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings

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
        entry_order_id=f"qt-e-S{index}-{now.timestamp():.0f}",
        initial_stop_price=stop,
        initial_quantity=Decimal("1.000"),
        atr_pct=0.02,
        exit_mode=ExitMode.TREND_FOLLOW if index % 3 == 0 else ExitMode.DEFENSIVE_TRAIL,
    )


def held(position: Position) -> ExchangePosition:
    return ExchangePosition(
        position.symbol, position.side, position.quantity, position.entry_price, 3
    )


def stop_order(action: PlaceStop, client_order_id: str, now: datetime) -> Order:
    return Order(
        client_order_id,
        action.symbol,
        action.side,
        OrderKind.STOP_MARKET,
        action.quantity,
        OrderStatus.OPEN,
        now,
        trigger_price=action.trigger,
        reduce_only=True,
    )


class Exchange:
    """What the tick would have found: the positions held and our stops, kept in step."""

    def __init__(self, positions: dict[str, Position]) -> None:
        self.positions = positions
        self.stops: dict[str, Order] = {}
        self.sequence = 0

    def snapshot(self, now: datetime) -> ExchangeSnapshot:
        return ExchangeSnapshot(
            now,
            SnapshotSource.REST,
            {s: held(p) for s, p in self.positions.items()},
            tuple(self.stops.values()),
        )

    def carry_out(self, result: Plan, marks: dict[str, Decimal], now: datetime) -> Book:
        """Apply a tick's result (outside the timed section)."""
        book = result.book
        for action in result.actions:
            if isinstance(action, PlaceStop):
                self.sequence += 1
                order_id = f"qt-s-{self.sequence}"
                self.stops[action.symbol] = stop_order(action, order_id, now)
                position = replace(
                    book.positions[action.symbol], stop_order_id=order_id, stop_replaced_at=now
                )
                book = book.with_position(position)
            elif isinstance(action, SendExit):
                position = book.positions[action.symbol]
                if action.quantity >= position.quantity:
                    index = int(action.symbol[1:].split("/")[0])
                    position = open_position(index, marks[action.symbol], now)
                else:
                    position = replace(position, quantity=position.quantity - action.quantity)
                book = book.with_position(position)
        self.positions = dict(book.positions)
        return book


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    now = START
    prices = [Decimal(rng.randint(1, 90_000)) for _ in range(args.positions)]
    positions = {p.symbol: p for p in (open_position(i, x, now) for i, x in enumerate(prices))}
    rules = {
        s: MarketRules(s, CENT, Decimal("0.001"), Decimal("0.001"), Decimal(5)) for s in positions
    }
    context = Context(rules, KeeperSettings(), SETTINGS)
    exchange = Exchange(positions)
    book = Book(positions)
    timings_ms: list[float] = []
    actions_seen = 0
    for _ in range(args.ticks):
        now += timedelta(seconds=SETTINGS.interval_s)
        prices = [
            max(CENT, (p * Decimal(repr(1 + rng.uniform(-0.005, 0.0055)))).quantize(CENT))
            for p in prices
        ]
        marks = {f"S{i}/USDT:USDT": price for i, price in enumerate(prices)}
        observation = Observation(exchange.snapshot(now), marks=marks)
        began = time.perf_counter()
        result = plan(book, observation, now, context)
        timings_ms.append((time.perf_counter() - began) * 1000)
        actions_seen += len(result.actions)
        book = exchange.carry_out(result, marks, now)
    timings_ms.sort()
    print(
        f"keeper plan (monitor tick), {args.positions} positions, {args.ticks} ticks: "
        f"median {statistics.median(timings_ms):.2f} ms, "
        f"p95 {timings_ms[int(len(timings_ms) * 0.95) - 1]:.2f} ms, "
        f"max {timings_ms[-1]:.2f} ms (target ≤ 5 ms); order actions {actions_seen}"
    )


if __name__ == "__main__":
    main()
