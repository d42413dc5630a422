"""Lifecycle PAPER (SPEC §5.4): a symbol trades only in the paper book until it earns DISCOVERY."""

from __future__ import annotations

from pathlib import Path

from foundation_builders import build_rig
from test_foundation_trading import step

from quantum_trader.domain import ReasonCode
from quantum_trader.sizing.lifecycle import Stage

QUICK_PROMOTION = {
    "lifecycle": {
        "enabled": True,
        "paper_trades_to_discovery": 2,
        "promote_min_sharpe": -100.0,
        "promote_min_win_rate": 0.0,
    }
}


async def test_a_paper_symbol_sends_nothing_real_until_its_record_promotes_it(
    tmp_path: Path,
) -> None:
    rig = await build_rig(tmp_path, sizing=QUICK_PROMOTION)
    desk = rig.core.sizing
    promoted_at: dict[str, int] = {}
    for index in range(2500):
        await step(rig)
        for symbol in rig.settings.market.symbols:
            if symbol not in promoted_at and desk.lifecycle.stage(symbol) is Stage.DISCOVERY:
                promoted_at[symbol] = index
        if promoted_at and rig.core.keeper.positions:
            break
    assert promoted_at, "no symbol earned DISCOVERY from its paper record"
    symbol = next(iter(promoted_at))
    assert desk.paper.record(symbol).trades >= 2
    counts = await rig.repository.decision_counts()
    assert counts[("execution", ReasonCode.LIFECYCLE_PAPER.value)] >= 2
    real_entries = [o for o in await rig.repository.orders() if "-e-" in o.client_order_id]
    assert {o.symbol for o in real_entries} <= set(promoted_at)


async def test_with_lifecycle_off_nothing_goes_to_the_paper_book(tmp_path: Path) -> None:
    rig = await build_rig(tmp_path)
    for _ in range(300):
        await step(rig)
    assert rig.core.sizing.paper.positions == {}
    assert rig.core.sizing.paper.results == {}
