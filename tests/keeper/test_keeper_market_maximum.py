"""Closing a position larger than the market-order maximum (Binance's MARKET_LOT_SIZE maxQty).

Binance refuses any market order above it, reduce-only closes included (-4005 "Quantity greater
than max quantity."); its answer is to close in slices. Our entries never exceed it (the sizer
caps them), but a position can: grown by hand, or the maximum lowered after the entry. The
keeper closes such a position in slices of at most the maximum. On the paper exchange, which
refuses -4005 as Binance does, with the rules of a recorded exchangeInfo answer (AVAXUSDT:
MARKET_LOT_SIZE maxQty 100000) saved into a temporary directory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from structlog.testing import capture_logs

from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.domain import (
    Bars,
    ExitMode,
    ExitReason,
    MarketRules,
    OrderKind,
    OrderRequest,
    OrderSide,
    Side,
    SizedOrder,
)
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.market.rules import read_rules, write_rules
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings
from quantum_trader.storage.memory import InMemoryRepository

AVAX = "AVAX/USDT:USDT"
RECORDED = Path(__file__).parents[1] / "market" / "data" / "binance_exchange_info_avax_link.json"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
BALANCE = Decimal(10_000_000)


def flat_bars(price: float, count: int = 300) -> Bars:
    return Bars(
        symbol=AVAX,
        timeframe_ms=300_000,
        time_ms=ms_from_utc(T0) + 300_000 * np.arange(count, dtype=np.int64),
        open=np.full(count, price),
        high=np.full(count, price),
        low=np.full(count, price),
        close=np.full(count, price),
        volume=np.ones(count),
    )


def recorded_rules(directory: Path) -> MarketRules:
    answer = json.loads(RECORDED.read_text())
    path = write_rules(directory, answer, datetime(2026, 2, 19, tzinfo=UTC))
    return read_rules(path).listings[AVAX].rules


def entry(quantity: Decimal, price: Decimal = Decimal(20)) -> SizedOrder:
    return SizedOrder(
        symbol=AVAX,
        side=Side.LONG,
        quantity=quantity,
        entry_price=price,
        stop_price=Decimal("19.400"),
        take_profit_price=Decimal("21.200"),
        leverage=3,
        notional_usdt=quantity * price,
        margin_usdt=quantity * price / 3,
        expected_loss_usdt=quantity * Decimal("0.6"),
        expected_profit_usdt=quantity * Decimal("1.2"),
        costs_usdt=Decimal(0),
        atr_pct=0.02,
        confidence=0.8,
        exit_mode=ExitMode.DEFENSIVE_TRAIL,
    )


async def test_a_position_above_the_market_maximum_is_closed_in_slices(tmp_path: Path) -> None:
    rules = recorded_rules(tmp_path)
    assert rules.market_lot_size.max_quantity == Decimal(100000)
    clock = ManualClock(T0 + timedelta(minutes=1))
    paper = PaperExchange(
        rules={AVAX: rules},
        costs=CostModel(CostSettings()),
        clock=clock,
        initial_balance_usdt=BALANCE,
        bars={AVAX: flat_bars(20.0)},
        funding={},
    )
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, BALANCE, clock.now(), PerformanceSettings())
    keeper = await PositionKeeper.load(
        paper, repository, ledger, {AVAX: rules}, KeeperSettings(), MonitorSettings()
    )
    await keeper.tick(clock.now(), rest=True)
    await keeper.enter(entry(Decimal(100000)), clock.now())  # at the maximum: accepted
    # A person adds 30000 by hand: 130000 held, above what one market order may close.
    hand = OrderRequest("hand-1", AVAX, OrderSide.BUY, OrderKind.MARKET, Decimal(30000))
    await paper.place_order(hand)
    clock.advance(5)
    await keeper.tick(clock.now(), rest=True)
    assert keeper.positions[AVAX].quantity == Decimal(130000)

    clock.advance(5)
    with capture_logs() as logs:
        await keeper.close_all(ExitReason.MANUAL, clock.now())

    assert await paper.fetch_positions() == []
    assert AVAX not in keeper.positions
    assert [e for e in logs if e["event"] == "close_failed"] == []
    [sliced] = [e for e in logs if e["event"] == "exit_sliced"]
    assert (sliced["sent"], sliced["left"]) == ("100000", "30000")
    [trade] = await repository.closed_trades()
    assert trade.exit_reason is ExitReason.MANUAL
