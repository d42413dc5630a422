"""Five losses in a row pause trading; they must not end it.

The balancer's SAFE mode blocks new trades while the account's losing streak is >= 5, and the
streak only resets on a winning close, which cannot happen while nothing opens. So the streak
counts only until `performance.losing_streak_expiry_h` after its last loss, and an operator's
`reset-halt` clears it. Both scenarios below showed the lock-out on real data before that.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from scenario_drop import RESET_AT, play

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.config import Settings
from quantum_trader.domain import GateName, ReasonCode
from quantum_trader.gates.governor import TradingState
from quantum_trader.storage.sqlite import SqliteRepository

STREAK_WINDOW_END = datetime(2025, 10, 10, tzinfo=UTC)


def test_trading_resumes_after_the_operator_resets_the_cascade_halt() -> None:
    scenario = asyncio.run(play())
    after = [s for s in scenario.steps if s.now >= RESET_AT]
    # ACTIVE once reset (a real +3σ XRP hour later pauses it again for an hour, as it should)
    assert after[0].after.trading_state is TradingState.ACTIVE
    blocked = sum(
        1
        for s in after
        for d in s.summary.decisions
        if d.verdict.gate is GateName.BALANCER
        and d.verdict.reason is ReasonCode.CRITICAL_VIOLATIONS
    )
    opened = sum(s.summary.opened for s in after)
    account = after[0].portfolio
    assert opened > 0, (
        f"8 h after the reset: 0 entries, {blocked} candidates blocked by balancer SAFE mode; "
        f"losing streak {account.losing_streak}, daily drawdown {account.daily_drawdown:.4f}, "
        f"open positions {len(account.positions)}"
    )


async def _trades_after_fifth_loss(out_dir: Path) -> tuple[str, int]:
    await run_backtest(Settings(), BacktestRequest(end=STREAK_WINDOW_END, out_dir=out_dir))
    database = await SqliteRepository.open(out_dir / "backtest.db")
    try:
        trades = sorted(await database.closed_trades(), key=lambda t: t.closed_at)
    finally:
        await database.close()
    streak = 0
    for index, trade in enumerate(trades):
        streak = streak + 1 if trade.pnl_usdt < 0 else 0
        if streak == 5:
            return trade.closed_at.isoformat(), len(trades) - index - 1
    raise AssertionError("the window no longer contains five losses in a row")


def test_a_default_backtest_keeps_trading_after_five_losses_in_a_row(tmp_path: Path) -> None:
    fifth_loss_at, later = asyncio.run(_trades_after_fifth_loss(tmp_path))
    assert later > 0, f"no trade at all after the fifth loss in a row at {fifth_loss_at}"
