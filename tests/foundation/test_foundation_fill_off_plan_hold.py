"""A symbol held off new entries after a trade of it closed FILL_OFF_PLAN, through the real
chain (the daemon's core on the bundled sample, the paper exchange, a manual clock).

An outside probe (2026-12-06, its own Binance stand-in): an entry filled past its own stop or
target is exited at once, reduce-only (keeper/fill_check.py), and nothing held the symbol
off, so the next cycle could send the same entry and be exited again, paying fees each time.
Here the marks the entries are sized at lie 5 % above the paper exchange's price, so every
long is planned above where it fills: past its own stop.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from foundation_builders import build_rig
from structlog.testing import capture_logs

from quantum_trader.domain import ClosedTrade, ExitReason, ReasonCode
from quantum_trader.execution.paper import PaperExchange

STEP = timedelta(minutes=5)
HOLD = timedelta(hours=1)  # performance.fill_off_plan_hold_s, its default


class MarksAbove:
    """Marks 5 % above the paper exchange's price: a market that moved since the bar."""

    def __init__(self) -> None:
        self.exchange: PaperExchange | None = None

    async def mark(self, symbol: str, now: datetime) -> Decimal | None:
        assert self.exchange is not None
        return (await self.exchange.fetch_mark_prices([symbol]))[symbol] * Decimal("1.05")


async def test_a_symbol_is_held_off_new_entries_for_an_hour_after_a_fill_off_plan_exit(
    tmp_path: Path,
) -> None:
    marks = MarksAbove()
    rig = await build_rig(tmp_path, entry_marks=marks)
    marks.exchange = rig.exchange.inner
    first: ClosedTrade | None = None
    with capture_logs() as logs:
        for _ in range(3 * 12):  # three hours of 5 min cycles
            rig.clock.advance(STEP.total_seconds())
            await rig.core.keeper.tick(rig.clock.now())
            await rig.core.executor.run_cycle(rig.clock.now())
            trades = await rig.repository.closed_trades()
            first = first or next(iter(trades), None)
            if first is not None and rig.clock.now() >= first.closed_at + HOLD + STEP:
                break

    assert first is not None
    assert first.exit_reason is ExitReason.FILL_OFF_PLAN
    symbol, held_until = first.symbol, first.closed_at + HOLD
    again = [t for t in trades if t.symbol == symbol and t != first]
    assert all(t.opened_at >= held_until for t in again), again  # was: 5 min later, and on
    held = [
        e
        for e in logs
        if e["event"] == "decision"
        and e["symbol"] == symbol
        and e["reason"] is ReasonCode.SYMBOL_HELD_AFTER_FILL_OFF_PLAN
    ]
    assert held, "no decision line names the hold"
    assert "FILL_OFF_PLAN" in held[0]["detail"]
    assert held_until.isoformat() in held[0]["detail"]
    [line] = [e for e in logs if e["event"] == "symbol_held" and e["symbol"] == symbol]
    assert line["until"] == held_until.isoformat()
