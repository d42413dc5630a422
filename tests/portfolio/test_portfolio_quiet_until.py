"""The account's timers (a backtest repeats steps up to them, replay_quiet.py): before the
instant `quiet_until` names, time alone changes nothing the ledger does or shows at an
unchanged balance; at it, something may."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
        NOW.date(),
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


async def test_the_ledger_adds_a_symbol_disabled_until_but_not_its_periodic_save() -> None:
    ledger = await Ledger.load(InMemoryRepository(), Decimal(10_000), NOW, PerformanceSettings())
    # The save (due NOW + TRACKER_SAVE_INTERVAL) writes the tracker as it is: not a timer.
    assert ledger.quiet_until(NOW) == datetime(2025, 10, 2, tzinfo=UTC)
    ends = NOW + timedelta(minutes=20)
    ledger.stats["BTC/USDT:USDT"] = SymbolStats("BTC/USDT:USDT", disabled_until=ends)
    ledger.stats["ETH/USDT:USDT"] = SymbolStats("ETH/USDT:USDT", disabled_until=NOW)  # ended
    assert ledger.quiet_until(NOW) == ends
    held = NOW + timedelta(minutes=10)  # after a FILL_OFF_PLAN close: a block's end too
    ledger.stats["SOL/USDT:USDT"] = SymbolStats("SOL/USDT:USDT", held_until=held)
    assert ledger.quiet_until(NOW) == held


class _Writes(InMemoryRepository):
    """The in-memory repository, noting each state write with the instant it was made at."""

    def __init__(self) -> None:
        super().__init__()
        self.at: datetime | None = None
        self.writes: list[tuple[datetime | None, str, str, dict[str, object]]] = []

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        self.writes.append((self.at, namespace, key, dict(payload)))
        await super().save_state(namespace, key, payload)


async def test_unchanged_view_and_save_if_due_stand_in_for_observe_at_an_unchanged_account() -> (
    None
):
    """A backtest's repeated step calls these instead of `observe`: at every 5-minute step of
    four hours with the balance unchanged, the same view and the same writes at the same steps
    (the periodic save falls due off the hour: the ledger was loaded at 02:17)."""
    observed, standing_in = _Writes(), _Writes()
    settings = PerformanceSettings()
    observer = await Ledger.load(observed, Decimal(10_000), NOW, settings)
    stand_in = await Ledger.load(standing_in, Decimal(10_000), NOW, settings)
    balance = Balance(
        wallet_usdt=Decimal(10_000), free_usdt=Decimal(10_000), used_margin_usdt=Decimal(0)
    )
    for step in range(1, 4 * 12 + 1):
        now = NOW + timedelta(minutes=5 * step)
        observed.at = standing_in.at = now
        view = await observer.observe(balance, {}, now)
        assert stand_in.unchanged_view(balance, {}, now) == view
        await stand_in.save_if_due(now)
    assert [at for at, *_ in observed.writes] == [
        None,  # on load
        NOW + TRACKER_SAVE_INTERVAL,
        NOW + 2 * TRACKER_SAVE_INTERVAL,
        NOW + 3 * TRACKER_SAVE_INTERVAL,
        NOW + 4 * TRACKER_SAVE_INTERVAL,
    ]
    assert standing_in.writes == observed.writes


@given(
    peak=st.integers(min_value=9_000, max_value=11_000),
    pnl_ages=st.lists(minutes, max_size=2),
    later=st.integers(min_value=0, max_value=30 * 60),
    equities=st.lists(
        st.integers(min_value=8_000, max_value=12_000), min_size=3, max_size=3, unique=True
    ),
)
def test_the_equities_at_which_the_tracker_stays_as_it_is_form_an_interval(
    peak: int, pnl_ages: list[int], later: int, equities: list[int]
) -> None:
    """Groundwork for checking a backtest's quiet stretch once (the band design,
    docs/BENCHMARKS.md): at a fixed time, the equities that leave the tracker as it is (its
    day, peak and hour; `AccountTracker.observe_equity`, which `Ledger.unchanged_view` asks)
    are those up to its peak, or none."""
    tracker = AccountTracker(
        Decimal(10_000),
        NOW.date(),
        Decimal(9_500),
        Decimal(peak),
        recent_pnl=tuple((NOW - timedelta(minutes=a), Decimal(-5)) for a in pnl_ages),
    )
    then = NOW + timedelta(minutes=later)
    low, middle, high = (Decimal(e) for e in sorted(equities))

    def kept_at(equity: Decimal) -> bool:
        return tracker.observe_equity(equity, then) is tracker

    if kept_at(low) and kept_at(high):
        assert kept_at(middle)
    if kept_at(high):
        assert high <= peak
