"""A partial take-profit never leaves, or sends, less than the symbol's minimum quantity.

Binance refuses a reduce-only order below the minimum (LOT_SIZE's for the stop, a conditional
order; MARKET_LOT_SIZE's for a market close). An outside probe (2026-12-06; INJ with step 1
and minimum 10, `monitor.partial_tp_fraction` 0.7) held 24, took a part of 16 and left 8: the
rest's stop and its close were refused on every tick for as long as it was held (535 stops
and 880 closes refused in three weeks), its break-even never placed, and it lost at the old
stop what break-even would have saved. On the paper exchange, which refuses both as Binance
does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar, overload

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import (
    Bars,
    ExitMode,
    LotSize,
    MarketRules,
    Side,
    SizedOrder,
)
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.manage import partial_size
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings
from quantum_trader.storage.memory import InMemoryRepository

INJ = "INJ/USDT:USDT"
P = TypeVar("P", bound=PaperExchange)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
BALANCE = Decimal(100_000)
# Step 1, minimum 10 for limit and market orders alike, as the probe's rules.
RULES = MarketRules(INJ, Decimal("0.001"), Decimal(1), Decimal(10), Decimal(5))


def rising_bars(count: int = 300) -> Bars:
    """20 for the first ten minutes, then 21 (+5 %: past the partial's +4 % trigger)."""
    close = np.where(np.arange(count) < 2, 20.0, 21.0)
    return Bars(
        symbol=INJ,
        timeframe_ms=300_000,
        time_ms=ms_from_utc(T0) + 300_000 * np.arange(count, dtype=np.int64),
        open=close,
        high=close,
        low=close,
        close=close,
        volume=np.ones(count),
    )


def entry(quantity: Decimal) -> SizedOrder:
    return SizedOrder(
        symbol=INJ,
        side=Side.LONG,
        quantity=quantity,
        entry_price=Decimal(20),
        stop_price=Decimal("19.400"),
        take_profit_price=Decimal("23.000"),
        leverage=3,
        notional_usdt=quantity * 20,
        margin_usdt=quantity * 20 / 3,
        expected_loss_usdt=quantity * Decimal("0.6"),
        expected_profit_usdt=quantity * 3,
        costs_usdt=Decimal(0),
        atr_pct=0.02,
        confidence=0.8,
        exit_mode=ExitMode.DEFENSIVE_TRAIL,
    )


@overload
async def inj_keeper(
    bars: Bars, monitor: MonitorSettings
) -> tuple[PositionKeeper, PaperExchange, ManualClock, InMemoryRepository]: ...


@overload
async def inj_keeper(
    bars: Bars, monitor: MonitorSettings, exchange: type[P]
) -> tuple[PositionKeeper, P, ManualClock, InMemoryRepository]: ...


async def inj_keeper(
    bars: Bars, monitor: MonitorSettings, exchange: type[PaperExchange] = PaperExchange
) -> tuple[PositionKeeper, PaperExchange, ManualClock, InMemoryRepository]:
    """A keeper of INJ on the paper exchange at `bars` (the probe's rules), flat, ticked once
    at a minute past T0; `exchange`: a fake built on the paper exchange."""
    clock = ManualClock(T0 + timedelta(minutes=1))
    paper = exchange(
        rules={INJ: RULES},
        costs=CostModel(CostSettings()),
        clock=clock,
        initial_balance_usdt=BALANCE,
        bars={INJ: bars},
        funding={},
    )
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, BALANCE, clock.now(), PerformanceSettings())
    keeper = await PositionKeeper.load(
        paper, repository, ledger, {INJ: RULES}, KeeperSettings(), monitor
    )
    await keeper.tick(clock.now(), rest=True)
    return keeper, paper, clock, repository


@pytest.mark.parametrize(
    ("held", "parts", "left"),
    [
        (24, [14], 10),  # 0.7 × 24 = 16.8 would leave 8 (was: 16, leaving 8)
        (15, [], 15),  # 10 would leave 5, and 5 is below the minimum itself: no partial
        (40, [28], 12),  # the fraction as asked where both meet the minimum
    ],
)
async def test_a_partial_take_profit_leaves_at_least_the_minimum(
    held: int, parts: list[int], left: int
) -> None:
    keeper, paper, clock, _ = await inj_keeper(
        rising_bars(), MonitorSettings(partial_tp_fraction=0.7)
    )
    await keeper.enter(entry(Decimal(held)), clock.now())
    with capture_logs() as logs:
        for _ in range(6):  # into the +5 % bars, and a few ticks after the partial
            clock.advance(300)
            await keeper.tick(clock.now(), rest=True)

    refused = [e for e in logs if e["log_level"] == "error"]
    assert refused == []
    [position] = await paper.fetch_positions()
    assert position.quantity == keeper.positions[INJ].quantity == Decimal(left)
    fills = [
        f for f in await paper.fetch_account_fills(INJ, T0, clock.now()) if f.side.value == "SELL"
    ]
    assert [int(f.quantity) for f in fills] == parts
    stops = await paper.fetch_open_conditional_orders(INJ)
    assert sum(o.quantity for o in stops if o.kind.name == "STOP_MARKET") >= Decimal(left)


@given(
    wanted=st.decimals(0, 1000, places=3),
    held=st.integers(1, 1000),
    step=st.sampled_from([Decimal(1), Decimal(5), Decimal("0.1")]),
    minimum=st.integers(1, 50),
    market_minimum=st.integers(1, 50),
)
def test_a_part_and_its_rest_each_meet_every_minimum_or_there_is_no_part(
    wanted: Decimal, held: int, step: Decimal, minimum: int, market_minimum: int
) -> None:
    market = LotSize(Decimal(market_minimum) * step, step)
    rules = MarketRules(
        INJ, Decimal("0.01"), step, Decimal(minimum) * step, Decimal(5), market_lot=market
    )
    quantity = Decimal(held) * step
    part = partial_size(wanted * step, quantity, rules)
    if part == 0:
        return
    rest = quantity - part
    assert part <= wanted * step
    assert part % step == 0
    assert part >= max(market.min_quantity, rules.min_quantity)
    assert rest >= max(market.min_quantity, rules.min_quantity)
