"""The 2025-10-10 cascade scenario, played once per test module.

The real core steps bar by bar from 18:00 UTC. At 20:30, before the cascade, a long is opened
in each of the eight symbols through the real trader (entry, protective stop 30 % away,
take-profit), 1,200 USDT notional each (0.96x equity gross): a book the drop hurts. At 23:30 an
entry is tried straight through the trader, past every gate. At 06:00 the next morning an
operator resets the halt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from scenario_core import Step, SteppedCore

from quantum_trader.config import Settings
from quantum_trader.domain import Side
from quantum_trader.errors import OrderRejected
from quantum_trader.gates.governor import Breaker, TradingState, Trip

START = datetime(2025, 10, 10, 18, tzinfo=UTC)
SEED_AT = datetime(2025, 10, 10, 20, 30, tzinfo=UTC)
PROBE_AT = datetime(2025, 10, 10, 23, 30, tzinfo=UTC)
RESET_AT = datetime(2025, 10, 11, 6, tzinfo=UTC)
END = datetime(2025, 10, 11, 14, tzinfo=UTC)
NOTIONAL_USDT = Decimal(1200)
STOP_FRACTION = Decimal("0.30")


class Scenario:
    def __init__(
        self, run: SteppedCore, steps: list[Step], seeded: int, probe: OrderRejected | None
    ) -> None:
        self.run = run
        self.steps = steps
        self.seeded = seeded
        self.probe = probe
        self.settings = run.settings.governor

    def trips_at(self, breaker: Breaker) -> list[tuple[Step, Trip]]:
        """Every step after the seeding at which `breaker` newly tripped, with its trip."""
        found = []
        for step in self.steps:
            if step.now <= SEED_AT:
                continue
            for trip in new_trips(step):
                if trip.breaker is breaker:
                    found.append((step, trip))
        return found


def new_trips(step: Step) -> list[Trip]:
    return [t for t in step.after.trips if t not in step.before.trips]


async def play() -> Scenario:
    run = await SteppedCore.open(Settings(), START)
    steps, seeded, probe, now = [], 0, None, START
    while now < END:
        if now == RESET_AT:
            await run.core.governor.reset(now, "scenario-operator")
        step = await run.step(now)
        steps.append(step)
        if now == SEED_AT:
            assert step.after.trading_state is TradingState.ACTIVE
            for symbol in run.settings.market.symbols:
                await run.seed_position(symbol, Side.LONG, NOTIONAL_USDT, STOP_FRACTION)
                seeded += 1
        if now == PROBE_AT:
            probe = await probe_entry(run)
        now += run.step_size
    return Scenario(run, steps, seeded, probe)


async def probe_entry(run: SteppedCore) -> OrderRejected | None:
    """Try an entry straight through the trader, past every gate: the halt must refuse it."""
    try:
        await run.seed_position("BTC/USDT:USDT", Side.LONG, NOTIONAL_USDT, STOP_FRACTION)
    except OrderRejected as refused:
        return refused
    return None
