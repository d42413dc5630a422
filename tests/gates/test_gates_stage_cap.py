"""Lifecycle per-stage caps (SPEC §5.4): a stage's positions share one margin budget."""

from __future__ import annotations

import random

import gate_builders as b

from quantum_trader.domain import ReasonCode
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.desk import SizingDesk
from quantum_trader.sizing.lifecycle import LifecycleBook, Stage
from quantum_trader.sizing.paper_book import PaperBook
from quantum_trader.sizing.settings import CostSettings, SizingSettings
from quantum_trader.storage.memory import InMemoryRepository


def test_a_stage_cannot_use_more_margin_than_its_cap() -> None:
    settings = SizingSettings(lifecycle={"enabled": True})  # DISCOVERY cap: 5 % of equity
    symbol, held = "ETH/USDT:USDT", "SOL/USDT:USDT"
    desk = SizingDesk(
        settings,
        CostModel(CostSettings()),
        InMemoryRepository(),
        LifecycleBook({symbol: Stage.DISCOVERY, held: Stage.DISCOVERY}),
        None,
        random.Random(0),
        MonitorSettings(),
        PaperBook(),
    )
    within = b.sized_order(symbol=symbol, quantity="10")  # margin 1000 / 3 = 333
    over = b.sized_order(symbol=symbol, quantity="20")  # margin 667 > 500
    empty = b.portfolio(equity="10000")
    assert desk._stage_cap(within, empty) is None
    denied = desk._stage_cap(over, empty)
    assert denied is not None
    assert denied.reason is ReasonCode.STAGE_CAP_REACHED
    holding = b.portfolio(equity="10000", positions=[b.position(held, quantity="6")])
    assert desk._stage_cap(within, holding) is not None  # 200 held + 333 > 500 in DISCOVERY
    desk.lifecycle = LifecycleBook({symbol: Stage.DISCOVERY, held: Stage.MATURE})
    assert desk._stage_cap(within, holding) is None  # another stage's margin does not count
