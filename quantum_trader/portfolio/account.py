"""Account bookkeeping the gates depend on: starting balance, the UTC day's opening equity, peak
equity, the last hour's realized PnL and the losing streak. Pure; persisted as a dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from quantum_trader.domain import (
    ZERO,
    Balance,
    ClosedTrade,
    PortfolioView,
    Position,
    SymbolStats,
)
from quantum_trader.record import record, replace

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MIDNIGHT = time()


@record
class AccountTracker:
    starting_balance_usdt: Decimal
    # A date, saved as its ISO text: compared at every observation, where making the text
    # took ≈ 5,600 instructions against ≈ 1,200 for `now.date()` alone.
    day: date
    day_start_equity_usdt: Decimal
    peak_equity_usdt: Decimal
    losing_streak: int = 0
    recent_pnl: tuple[tuple[datetime, Decimal], ...] = field(default_factory=tuple)
    last_loss_at: datetime | None = None

    @classmethod
    def start(cls, equity: Decimal, now: datetime) -> AccountTracker:
        return cls(equity, now.date(), equity, equity)

    def observe_equity(self, equity: Decimal, now: datetime) -> AccountTracker:
        """Roll the UTC day and the peak forward."""
        today = now.date()
        # `_expired` asked only of a history (mostly empty: the call costs more than the loop).
        expired = self.recent_pnl and self._expired(now)
        if today == self.day and equity <= self.peak_equity_usdt and not expired:
            return self  # nothing moves: the common case, every step of a backtest
        day_start = equity if today != self.day else self.day_start_equity_usdt
        return replace(
            self,
            day=today,
            day_start_equity_usdt=day_start,
            peak_equity_usdt=max(self.peak_equity_usdt, equity),
            recent_pnl=tuple(p for p in self.recent_pnl if now - p[0] < HOUR),
        )

    def _expired(self, now: datetime) -> bool:
        """Whether a PnL has left the last hour. A loop, not any() over a generator: asked
        at every observation, mostly of an empty history (≈ 3,200 instructions so)."""
        for moment, _ in self.recent_pnl:  # noqa: SIM110 - see above
            if now - moment >= HOUR:
                return True
        return False

    def quiet_until(self, now: datetime, streak_expiry: timedelta) -> datetime:
        """The first instant after `now` at which time alone changes `observe_equity` or `view`
        at an unchanged equity: the next UTC midnight, a PnL leaving the last hour, the losing
        streak expiring."""
        # The earliest by comparisons, not min() of a generator over a list: asked at every
        # quiet stretch of a backtest (≈ 23,000 instructions a call so).
        end = datetime.combine(now.date() + DAY, MIDNIGHT, now.tzinfo)  # always after `now`
        for moment, _ in self.recent_pnl:
            leaves = moment + HOUR
            if now < leaves < end:
                end = leaves
        if self.losing_streak and self.last_loss_at is not None:
            expires = self.last_loss_at + streak_expiry
            if now < expires < end:
                end = expires
        return end

    def on_trade_closed(self, trade: ClosedTrade) -> AccountTracker:
        lost = trade.pnl_usdt < 0
        recent = (*self.recent_pnl, (trade.closed_at, trade.pnl_usdt))
        return replace(
            self,
            losing_streak=self.losing_streak + 1 if lost else 0,
            recent_pnl=recent,
            last_loss_at=trade.closed_at if lost else self.last_loss_at,
        )

    def on_trade_amended(
        self, before: ClosedTrade, after: ClosedTrade, losing_streak: int
    ) -> AccountTracker:
        """`before`, a trade already counted, counted as `after` (the same trade amended): its
        PnL in the last hour's, and, when the amendment makes it a loss or no longer one, the
        losing streak `losing_streak` (recomputed by the caller from the trades)."""
        recent, swapped = [], False
        for moment, pnl in self.recent_pnl:
            if not swapped and moment == before.closed_at and pnl == before.pnl_usdt:
                pnl, swapped = after.pnl_usdt, True
            recent.append((moment, pnl))
        tracker = replace(self, recent_pnl=tuple(recent))
        lost = after.pnl_usdt < 0
        if lost is (before.pnl_usdt < 0):
            return tracker
        last_loss = self.last_loss_at
        if lost and (last_loss is None or after.closed_at > last_loss):
            last_loss = after.closed_at
        return replace(tracker, losing_streak=losing_streak, last_loss_at=last_loss)

    def streak_at(self, now: datetime, expiry: timedelta) -> int:
        """The losing streak as it counts now: nothing once `expiry` has passed since its last
        loss, so a streak can pause trading but never end it."""
        if self.last_loss_at is None or now - self.last_loss_at >= expiry:
            return 0
        return self.losing_streak

    def pnl_last_hour(self, now: datetime) -> Decimal:
        # A loop, not sum() over a generator: asked for every portfolio view, mostly of an
        # empty history, for which the generator and sum() took ≈ 4,700 instructions.
        total = ZERO
        for moment, pnl in self.recent_pnl:
            if now - moment < HOUR:
                total += pnl
        return total

    def view(
        self,
        balance: Balance,
        positions: Mapping[str, Position],
        stats: Mapping[str, SymbolStats],
        now: datetime,
        streak_expiry: timedelta = timedelta(hours=24),
    ) -> PortfolioView:
        # By position, in the fields' order: by keyword, the call builds a dict of eleven
        # (asked for every portfolio view).
        return PortfolioView(
            balance.equity_usdt,
            balance.wallet_usdt,
            balance.free_usdt,
            balance.used_margin_usdt,
            positions,
            self.starting_balance_usdt,
            self.day_start_equity_usdt,
            self.peak_equity_usdt,
            self.streak_at(now, streak_expiry) if self.losing_streak else 0,
            self.pnl_last_hour(now) if self.recent_pnl else ZERO,  # each as its call gives
            stats,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "starting_balance_usdt": str(self.starting_balance_usdt),
            "day": self.day.isoformat(),
            "day_start_equity_usdt": str(self.day_start_equity_usdt),
            "peak_equity_usdt": str(self.peak_equity_usdt),
            "losing_streak": self.losing_streak,
            "recent_pnl": [[t.isoformat(), str(p)] for t, p in self.recent_pnl],
            "last_loss_at": self.last_loss_at.isoformat() if self.last_loss_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountTracker:
        return cls(
            starting_balance_usdt=Decimal(data["starting_balance_usdt"]),
            day=date.fromisoformat(str(data["day"])),
            day_start_equity_usdt=Decimal(data["day_start_equity_usdt"]),
            peak_equity_usdt=Decimal(data["peak_equity_usdt"]),
            losing_streak=int(data["losing_streak"]),
            recent_pnl=tuple(
                (datetime.fromisoformat(t), Decimal(p)) for t, p in data.get("recent_pnl", [])
            ),
            last_loss_at=_moment(data.get("last_loss_at")),
        )


def _moment(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None
