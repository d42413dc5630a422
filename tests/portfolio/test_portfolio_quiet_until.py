"""The account's timers (a backtest repeats steps up to them, replay_quiet.py): before the
instant `quiet_until` names, time alone changes nothing the ledger does or shows at an
unchanged balance; at it, something may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from quantum_trader.domain import Balance, SymbolStats
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.portfolio.account import AccountTracker
from quantum_trader.portfolio.ledger import TRACKER_SAVE_INTERVAL, Ledger
from quantum_trader.storage.memory import InMemoryRepository

NOW = datetime(2025, 10, 1, 2, 17, tzinfo=UTC)
EXPIRY = timedelta(hours=24)
BALANCE = Balance(wallet_usdt=Decimal(9_000), free_usdt=Decimal(9_000), used_margin_usdt=Decimal(0))
minutes = st.integers(min_value=0, max_value=36 * 60)


@given(
    pnl_ages=st.lists(minutes, max_size=3),
    loss_age=st.none() | st.integers(min_value=0, max_value=30 * 60),
    streak=st.integers(min_value=0, max_value=4),
    later=st.integers(min_value=1, max_value=48 * 60),
)
@example(pnl_ages=[], loss_age=23 * 60, streak=2, later=90)  # the streak expires first
@example(pnl_ages=[30], loss_age=None, streak=0, later=45)  # a PnL leaves the hour first
def test_before_quiet_until_time_alone_changes_nothing(
    pnl_ages: list[int], loss_age: int | None, streak: int, later: int
) -> None:
    tracker = AccountTracker(
        Decimal(10_000),
        NOW.date().isoformat(),
        Decimal(9_500),
        Decimal(10_000),
        losing_streak=streak,
        recent_pnl=tuple((NOW - timedelta(minutes=a), Decimal(-5)) for a in pnl_ages),
        last_loss_at=NOW - timedelta(minutes=loss_age) if loss_age is not None else None,
    )
    tracker = tracker.observe_equity(BALANCE.equity_usdt, NOW)  # a step just observed it
    until = tracker.quiet_until(NOW, EXPIRY)
    assert until > NOW
    then = NOW + timedelta(minutes=later)
    seen = tracker.view(BALANCE, {}, {}, NOW, EXPIRY)
    if then < until:
        assert tracker.observe_equity(BALANCE.equity_usdt, then) is tracker
        assert tracker.view(BALANCE, {}, {}, then, EXPIRY) == seen


def test_the_next_utc_midnight_bounds_a_quiet_tracker() -> None:
    tracker = AccountTracker.start(Decimal(10_000), NOW)
    assert tracker.quiet_until(NOW, EXPIRY) == datetime(2025, 10, 2, tzinfo=UTC)


async def test_the_ledger_adds_its_periodic_save_and_a_symbol_disabled_until() -> None:
    ledger = await Ledger.load(InMemoryRepository(), Decimal(10_000), NOW, PerformanceSettings())
    assert ledger.quiet_until(NOW) == NOW + TRACKER_SAVE_INTERVAL  # saved at NOW on load
    ends = NOW + timedelta(minutes=20)
    ledger.stats["BTC/USDT:USDT"] = SymbolStats("BTC/USDT:USDT", disabled_until=ends)
    ledger.stats["ETH/USDT:USDT"] = SymbolStats("ETH/USDT:USDT", disabled_until=NOW)  # ended
    assert ledger.quiet_until(NOW) == ends
