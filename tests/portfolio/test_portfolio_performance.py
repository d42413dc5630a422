"""Symbol performance (SPEC §7, §5.2): stats, disable at 10 losses, blacklist at 20, multiplier."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import ClosedTrade, ExitReason, ReasonCode, Side, SymbolStats
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.portfolio.account import AccountTracker
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.portfolio.performance import (
    amend_trade,
    block_reason,
    lift_blacklist,
    record_trade,
    rolling_win_rate,
    stats_from_dict,
    stats_to_dict,
    streak_of,
)
from quantum_trader.storage.memory import InMemoryRepository

NOW = datetime(2025, 10, 1, tzinfo=UTC)
SYMBOL = "ETH/USDT:USDT"
PERFORMANCE = PerformanceSettings()


def trade(pnl: float, r: float | None = None) -> ClosedTrade:
    return ClosedTrade(
        symbol=SYMBOL,
        side=Side.LONG,
        quantity=Decimal(1),
        entry_price=Decimal(100),
        exit_price=Decimal(100) + Decimal(str(pnl)),
        opened_at=NOW - timedelta(hours=1),
        closed_at=NOW,
        exit_reason=ExitReason.TP_HIT if pnl > 0 else ExitReason.SL_HIT,
        pnl_usdt=Decimal(str(pnl)),
        fees_usdt=Decimal(0),
        funding_usdt=Decimal(0),
        r_multiple=r if r is not None else (2.0 if pnl > 0 else -1.0),
        entry_order_id="e",
    )


def replay(pnls: list[float], now: datetime = NOW) -> SymbolStats:
    stats = SymbolStats(SYMBOL)
    for pnl in pnls:
        stats = record_trade(stats, trade(pnl), now, PERFORMANCE)
    return stats


def test_counts_pnl_r_and_streak() -> None:
    stats = replay([10, -5, -5, 20])
    assert (stats.trades, stats.wins, stats.losses) == (4, 2, 2)
    assert stats.pnl_usdt == 20
    assert stats.win_rate == 0.5
    assert stats.average_r == 0.5
    assert stats.streak == 1
    assert replay([10, -5, -5]).streak == -2


def test_a_trade_of_unknown_r_counts_in_every_figure_but_the_r_ones() -> None:
    """Its initial risk was unknown (was: R 0.0, a break-even trade in the average R)."""
    unknown = dataclasses.replace(trade(30), r_multiple=None)
    stats = record_trade(replay([10, -5]), unknown, NOW, PERFORMANCE)
    assert (stats.trades, stats.wins, stats.pnl_usdt, stats.streak) == (3, 2, 35, 1)
    assert (stats.total_r, stats.r_trades, stats.last_20_r) == (1.0, 2, (2.0, -1.0))
    assert stats.average_r == 0.5  # over the two of known R (was 1/3)
    assert stats_from_dict(json.loads(json.dumps(stats_to_dict(stats)))) == stats
    saved_before = {k: v for k, v in stats_to_dict(replay([10, -5])).items() if k != "r_trades"}
    assert stats_from_dict(saved_before).r_trades == 2  # every trade had an R then


def test_rolling_window_keeps_the_last_20() -> None:
    stats = replay([1.0] * 5 + [-1.0] * 20)
    assert len(stats.last_20_r) == 20
    assert rolling_win_rate(stats) == 0.0
    assert rolling_win_rate(replay([1.0, -1.0])) == 0.5


def test_nine_losses_in_a_row_do_not_disable() -> None:
    stats = replay([-1.0] * 9)
    assert stats.disabled_until is None
    assert block_reason(stats, NOW) is None


def test_ten_losses_in_a_row_disable_for_48_hours() -> None:
    stats = replay([-1.0] * 10)
    assert stats.disabled_until == NOW + timedelta(hours=48)
    assert block_reason(stats, NOW + timedelta(hours=47, minutes=59)) is ReasonCode.SYMBOL_DISABLED
    assert block_reason(stats, NOW + timedelta(hours=48)) is None


def test_a_win_breaks_the_losing_streak() -> None:
    stats = replay([-1.0] * 9 + [1.0] + [-1.0] * 9)
    assert stats.disabled_until is None


def test_nineteen_losses_disable_but_twenty_blacklist() -> None:
    assert not replay([-1.0] * 19).blacklisted
    stats = replay([-1.0] * 20)
    assert stats.blacklisted
    assert block_reason(stats, NOW + timedelta(days=30)) is ReasonCode.SYMBOL_BLACKLISTED


def test_only_an_operator_lifts_a_blacklist() -> None:
    lifted = lift_blacklist(replay([-1.0] * 20))
    assert not lifted.blacklisted
    assert block_reason(lifted, NOW) is None
    assert not record_trade(lifted, trade(-1.0), NOW, PERFORMANCE).blacklisted


def test_round_trip_through_json() -> None:
    stats = replay([-1.0] * 10)
    restored = stats_from_dict(json.loads(json.dumps(stats_to_dict(stats))))
    assert restored == stats


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False).filter(lambda x: x != 0), max_size=60))
def test_stats_stay_consistent(pnls: list[float]) -> None:
    stats = replay(pnls)
    assert stats.wins + stats.losses == stats.trades == len(pnls)
    assert len(stats.last_20_r) == min(20, len(pnls))
    run = 0
    for pnl in reversed(pnls):
        if pnl > 0:
            break
        run += 1
    assert stats.losing_streak == run
    assert stats.blacklisted == any(
        all(p <= 0 for p in pnls[i : i + 20]) and len(pnls[i : i + 20]) == 20
        for i in range(len(pnls))
    )


def test_an_amended_trade_counts_as_if_it_had_been_booked_so() -> None:
    """A win whose fees read later make it a loss: PnL, R, the window, the counts and the
    streak as a replay with the amended trade gives."""
    booked, amended = trade(3, r=0.3), trade(-1, r=-0.1)
    pnls = [-5.0, -5.0, 4.0]
    stats = record_trade(replay(pnls), booked, NOW, PERFORMANCE)
    after = amend_trade(
        stats, booked, amended, streak_of([*map(trade, pnls), amended]), NOW, PERFORMANCE
    )
    expected = record_trade(replay(pnls), amended, NOW, PERFORMANCE)
    assert after == expected
    assert (after.wins, after.losses, after.streak, after.last_20_r[-1]) == (1, 3, -1, -0.1)


def test_an_amendment_that_leaves_a_win_a_win_moves_only_pnl_and_r() -> None:
    booked, amended = trade(3, r=0.3), trade(2, r=0.2)
    stats = record_trade(replay([-5, 7]), booked, NOW, PERFORMANCE)
    after = amend_trade(stats, booked, amended, 99, NOW, PERFORMANCE)  # the streak is not read
    assert after == record_trade(replay([-5, 7]), amended, NOW, PERFORMANCE)


def test_an_amendment_that_makes_the_tenth_loss_in_a_row_disables_the_symbol() -> None:
    booked, amended = trade(0.5, r=0.05), trade(-0.5, r=-0.05)
    stats = record_trade(replay([-1.0] * 9), booked, NOW, PERFORMANCE)
    assert stats.disabled_until is None
    later = NOW + timedelta(hours=1)
    streak = streak_of([trade(-1.0)] * 9 + [amended])
    after = amend_trade(stats, booked, amended, streak, later, PERFORMANCE)
    assert after.losing_streak == 10
    assert after.disabled_until == later + timedelta(hours=PERFORMANCE.disable_hours)


def test_an_amended_trade_whose_r_a_later_trade_shares_moves_its_own_place_in_the_window() -> None:
    """A trade amended after another of the symbol closed with the same R (the amendment
    comes up to `keeper.fees_unread_give_up_s` after the close): its own place changes, so the
    window rolls on as a replay's (was: the later trade's place, the order then wrong)."""
    booked, amended, win = trade(0.3, r=0.03), trade(-0.1, r=-0.01), trade(2.0, r=0.5)
    stats = replay([])
    for one in (booked, win, booked):
        stats = record_trade(stats, one, NOW, PERFORMANCE)
    streak = streak_of([amended, win, booked])
    after = amend_trade(stats, booked, amended, streak, NOW, PERFORMANCE, later=2)
    assert after.last_20_r == (-0.01, 0.5, 0.03)


def test_an_amended_trade_already_out_of_the_window_changes_no_place_in_it() -> None:
    rolling = PERFORMANCE.rolling_trades
    booked, amended = trade(0.3, r=0.03), trade(-0.1, r=-0.01)
    stats = record_trade(replay([]), booked, NOW, PERFORMANCE)
    for _ in range(rolling):
        stats = record_trade(stats, booked, NOW, PERFORMANCE)  # the same R, later trades
    streak = streak_of([amended, *[booked] * rolling])
    after = amend_trade(stats, booked, amended, streak, NOW, PERFORMANCE, later=rolling)
    assert after.last_20_r == (0.03,) * rolling
    assert after.total_r == pytest.approx(stats.total_r - 0.04)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False).filter(lambda x: x != 0), min_size=1, max_size=40),
    st.floats(0, 60, allow_nan=False),
)
def test_amending_the_last_trade_equals_booking_it_amended(pnls: list[float], fee: float) -> None:
    """The usual amendment: the symbol's latest trade, a fee read a tick after its close."""
    last = pnls[-1]
    booked, amended = trade(last, r=last / 10), trade(last - fee, r=(last - fee) / 10)
    stats = record_trade(replay(pnls[:-1]), booked, NOW, PERFORMANCE)
    trades = [*map(trade, pnls[:-1]), amended]
    after = amend_trade(stats, booked, amended, streak_of(trades), NOW, PERFORMANCE)
    expected = record_trade(replay(pnls[:-1]), amended, NOW, PERFORMANCE)
    assert dataclasses.replace(after, pnl_usdt=0.0, total_r=0.0) == dataclasses.replace(
        expected, pnl_usdt=0.0, total_r=0.0
    )
    assert after.pnl_usdt == pytest.approx(expected.pnl_usdt)
    assert after.total_r == pytest.approx(expected.total_r)


def test_the_tracker_counts_an_amended_trade_in_the_hour_and_the_losing_streak() -> None:
    booked, amended = trade(3), trade(-1)
    tracker = AccountTracker.start(Decimal(1000), NOW).on_trade_closed(trade(-2))
    tracker = tracker.on_trade_closed(booked)
    assert tracker.losing_streak == 0

    after = tracker.on_trade_amended(booked, amended, 2)

    assert after.recent_pnl == ((NOW, Decimal(-2)), (NOW, Decimal(-1)))
    assert (after.losing_streak, after.last_loss_at) == (2, NOW)
    unchanged = tracker.on_trade_amended(booked, trade(2), 7)  # still a win: no streak change
    assert unchanged.losing_streak == 0
    assert unchanged.recent_pnl == ((NOW, Decimal(-2)), (NOW, Decimal(2)))


async def test_the_ledger_amends_a_trade_at_its_own_place_in_the_window() -> None:
    """Through the ledger and a repository: the trade's place is found among the symbol's
    stored trades, so a later trade with the same R keeps its own."""
    ledger = Ledger(InMemoryRepository(), AccountTracker.start(Decimal(1000), NOW), {}, PERFORMANCE)
    shapes = [("a", 0.3, 0.03), ("w", 2.0, 0.5), ("b", 0.3, 0.03)]
    booked = [
        dataclasses.replace(trade(pnl, r=r), entry_order_id=e, closed_at=NOW + timedelta(hours=i))
        for i, (e, pnl, r) in enumerate(shapes)
    ]
    for one in booked:
        await ledger.record_trade(one, one.closed_at)
    amended = dataclasses.replace(booked[0], pnl_usdt=Decimal("-0.1"), r_multiple=-0.01)
    assert await ledger.amend_trade(amended, NOW + timedelta(hours=3)) == booked[0]
    assert ledger.stats[SYMBOL].last_20_r == (-0.01, 0.5, 0.03)
    assert (ledger.stats[SYMBOL].wins, ledger.stats[SYMBOL].streak) == (2, 2)


def test_a_trade_closed_fill_off_plan_holds_its_symbol_from_its_close() -> None:
    """Its entry filled at or past its own stop or target and was exited at once: the same
    signal would plan the same entry next cycle (an outside probe, 2026-12-06)."""
    off_plan = dataclasses.replace(trade(-2), exit_reason=ExitReason.FILL_OFF_PLAN)
    later = NOW + timedelta(minutes=3)  # booked after its close
    stats = record_trade(replay([10]), off_plan, later, PERFORMANCE)
    hold = timedelta(seconds=PERFORMANCE.fill_off_plan_hold_s)
    assert stats.held_until == NOW + hold
    assert block_reason(stats, NOW + hold / 2) is ReasonCode.SYMBOL_HELD_AFTER_FILL_OFF_PLAN
    assert block_reason(stats, NOW + hold) is None
    assert stats_from_dict(json.loads(json.dumps(stats_to_dict(stats)))) == stats
    assert record_trade(stats, trade(5), later, PERFORMANCE).held_until == NOW + hold  # kept
    assert replay([10, -5]).held_until is None
    assert "held_until" not in stats_to_dict(replay([10, -5]))  # saved as before the hold
    never = PerformanceSettings(fill_off_plan_hold_s=0)
    assert record_trade(SymbolStats(SYMBOL), off_plan, NOW, never).held_until is None
