"""The ledger: the account tracker and per-symbol stats, held in memory for the hot path and
written through to the repository, so a restart resumes exactly where it stopped. Open
positions belong to the position keeper (keeper/), which books closed trades here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    Balance,
    ClosedTrade,
    PortfolioView,
    Position,
    ReasonCode,
    SymbolStats,
)
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.log import get_logger
from quantum_trader.portfolio.account import AccountTracker
from quantum_trader.portfolio.performance import (
    amend_trade,
    lift_blacklist,
    record_trade,
    stats_from_dict,
    stats_to_dict,
    streak_of,
)
from quantum_trader.ports import Repository, StateWrite, Writes
from quantum_trader.record import replace
from quantum_trader.storage.saved import read_back

ACCOUNT_STATE = ("account", "tracker")
STATS_NAMESPACE = "symbol_stats"
log = get_logger("ledger")
# Day rolls and closed trades save at once; the peak in between at most this often.
TRACKER_SAVE_INTERVAL = timedelta(hours=1)


class Ledger:
    def __init__(
        self,
        repository: Repository,
        tracker: AccountTracker,
        stats: dict[str, SymbolStats],
        performance: PerformanceSettings,
    ) -> None:
        self._repository = repository
        self._performance = performance
        self._streak_expiry = timedelta(hours=performance.losing_streak_expiry_h)
        self.tracker = tracker
        self.stats = stats
        self._tracker_saved_at: datetime | None = None
        self.trade_listeners: list[Callable[[ClosedTrade], Awaitable[None]]] = []
        self.amend_listeners: list[Callable[[ClosedTrade], Awaitable[None]]] = []  # once written

    @classmethod
    async def load(
        cls,
        repository: Repository,
        equity: Decimal,
        now: datetime,
        performance: PerformanceSettings,
    ) -> Ledger:
        """Restore the ledger; a new account starts its tracker at `equity`."""
        saved = (await repository.load_state(ACCOUNT_STATE[0])).get(ACCOUNT_STATE[1])
        tracker = (
            read_back(*ACCOUNT_STATE, AccountTracker.from_dict, saved)
            if saved
            else AccountTracker.start(equity, now)
        )
        stats = {
            symbol: read_back(STATS_NAMESPACE, symbol, stats_from_dict, payload)
            for symbol, payload in (await repository.load_state(STATS_NAMESPACE)).items()
        }
        ledger = cls(repository, tracker, stats, performance)
        if not saved:
            await ledger._save_tracker(now)
        return ledger

    async def record_trade(
        self,
        trade: ClosedTrade,
        now: datetime,
        *,
        closes_position: bool = False,
        writes: Writes | None = None,
    ) -> None:
        """Book a closed round trip: trade row, streak and hourly PnL updated. The trade's row,
        the tracker and the symbol's stats it changes (and with `closes_position` the
        position's deletion, and `writes`: Repository.record_closed_trade) are one write, so a
        stop never leaves one without the others.
        A trade stored already under its key (symbol, entry order id, close time) changes
        nothing: the same trade again is a booking replayed (silent); another one under that
        key is refused with a warning, `closed_trade_key_taken`, naming both."""
        tracker = self.tracker.on_trade_closed(trade)
        before = self.stats.get(trade.symbol, SymbolStats(trade.symbol))
        after = record_trade(before, trade, now, self._performance)
        stored = await self._repository.record_closed_trade(
            trade,
            closes_position=closes_position,
            state=self._state(tracker, after),
            writes=writes,
        )
        if stored is not None:
            # Refused, not stored under another key: a position makes one trade, closed at a
            # tick's time, and only an adopted one's entry id (`adopted-…-<opened ms>`) can
            # repeat; the same entry and close time is likelier the same round trip booked
            # again with other figures (fees, funding read anew) than a second one, and
            # counting it twice would misstate the statistics the gates read.
            if stored != trade:
                log.warning(
                    "closed_trade_key_taken",
                    symbol=trade.symbol,
                    entry_order_id=trade.entry_order_id,
                    closed_at=trade.closed_at.isoformat(),
                    stored=repr(stored),
                    refused=repr(trade),
                )
            return
        self._keep(tracker, before, after, now)
        for listener in self.trade_listeners:
            await listener(trade)

    async def amend_trade(self, trade: ClosedTrade, now: datetime) -> ClosedTrade | None:
        """Book `trade` in place of the closed trade of the same symbol, entry order and close
        time (its fees read after it was booked: keeper/fees.py): the trade row, and the
        tracker and the symbol's stats as if it had been booked so, in one write. Returns the
        trade as it was (None when there is none, and nothing changes); one already so changes
        nothing, so an amendment repeated after a restart counts once.

        A win that becomes a loss (or the reverse) moves the streaks to what the trades in
        the order they closed give. The trade listeners (the sizing desk's learning) are not
        told again: they learnt from the trade once, when it closed; the amend listeners are
        (the sizing desk's recent R is read anew)."""
        # Read before the write, so it can carry the statistics: the ledger is the trades'
        # one writer, and its caller (the keeper) awaits each booking.
        trades = await self._repository.closed_trades()  # amendments are rare
        at = _index_of(trades, trade)
        if at is None or trades[at] == trade:
            return None if at is None else trades[at]
        was, trades[at] = trades[at], trade  # the trades as read after the amendment
        tracker = self.tracker.on_trade_amended(was, trade, _losses_at_end(trades))
        before = self.stats.get(trade.symbol, SymbolStats(trade.symbol))
        mine = [t for t in trades if t.symbol == trade.symbol]
        known_r = (t for t in trades[at + 1 :] if t.r_multiple is not None)
        later = sum(1 for t in known_r if t.symbol == trade.symbol)
        after = amend_trade(
            before, was, trade, streak_of(mine), now, self._performance, later=later
        )
        await self._repository.amend_closed_trade(trade, state=self._state(tracker, after))
        self._keep(tracker, before, after, now)
        for listener in self.amend_listeners:
            await listener(trade)
        return was

    @staticmethod
    def _state(tracker: AccountTracker, stats: SymbolStats) -> list[StateWrite]:
        """The state entries a trade changes, written with its row."""
        return [
            (*ACCOUNT_STATE, tracker.to_dict()),
            (STATS_NAMESPACE, stats.symbol, stats_to_dict(stats)),
        ]

    def _keep(
        self, tracker: AccountTracker, before: SymbolStats, after: SymbolStats, now: datetime
    ) -> None:
        """Hold what a trade's write saved, and say when it disabled or blacklisted a symbol."""
        self.tracker, self._tracker_saved_at = tracker, now
        symbol = after.symbol
        self.stats[symbol] = after
        if after.blacklisted and not before.blacklisted:
            log.warning("symbol_blacklisted", symbol=symbol, losing_streak=after.losing_streak)
        elif after.disabled_until != before.disabled_until and after.disabled_until is not None:
            log.warning(
                "symbol_disabled",
                symbol=symbol,
                until=after.disabled_until.isoformat(),
                losing_streak=after.losing_streak,
            )
        if after.held_until != before.held_until and after.held_until is not None:
            reason = ReasonCode.SYMBOL_HELD_AFTER_FILL_OFF_PLAN
            log.info(
                "symbol_held", symbol=symbol, until=after.held_until.isoformat(), reason=reason
            )

    async def observe(
        self, balance: Balance, positions: Mapping[str, Position], now: datetime
    ) -> PortfolioView:
        """Roll day and peak forward with the current equity and return the portfolio view."""
        before = self.tracker
        self.tracker = before.observe_equity(balance.equity_usdt, now)
        if self.tracker.day != before.day or self.save_due(now):
            await self._save_tracker(now)
        return self.tracker.view(balance, dict(positions), self.stats, now, self._streak_expiry)

    def unchanged_view(
        self, balance: Balance, positions: Mapping[str, Position], now: datetime
    ) -> PortfolioView | None:
        """The view `observe` would return at `now` when observing changes nothing but what
        `save_if_due` does (the tracker's day, peak and hour as they are); None when it would."""
        tracker = self.tracker
        if tracker.observe_equity(balance.equity_usdt, now) is not tracker:
            return None
        return tracker.view(balance, dict(positions), self.stats, now, self._streak_expiry)

    async def save_if_due(self, now: datetime) -> None:
        """What `observe` at `now` writes when it changes nothing: the tracker, once its periodic
        save is due (for a caller that stands in for `observe` where `unchanged_view` holds)."""
        if self.save_due(now):
            await self._save_tracker(now)

    def quiet_until(self, now: datetime) -> datetime:
        """The first instant after `now` at which time alone changes what `observe` returns at
        an unchanged balance and positions, or the tracker it keeps (its day, hour and streak,
        a symbol's disablement or hold ending). Its periodic save is not such a change: the
        tracker saved is the one kept (`save_if_due`)."""
        end = self.tracker.quiet_until(now, self._streak_expiry)  # always after `now`
        # The earliest by comparisons, as the tracker's (no lists, no min() of a generator).
        for stats in self.stats.values():
            disabled, held = stats.disabled_until, stats.held_until
            if disabled is not None and now < disabled < end:
                end = disabled
            if held is not None and now < held < end:
                end = held
        return end

    async def lift_blacklist(self, symbol: str) -> None:
        """An operator lets a blacklisted symbol trade again (its streak starts from zero)."""
        stats = lift_blacklist(self.stats.get(symbol, SymbolStats(symbol)))
        self.stats[symbol] = stats
        await self._repository.save_state(STATS_NAMESPACE, symbol, stats_to_dict(stats))

    async def reset_losing_streak(self, now: datetime) -> None:
        """An operator decided to trade again (`reset-halt`): the streak starts from zero."""
        self.tracker = replace(self.tracker, losing_streak=0, last_loss_at=None)
        await self._save_tracker(now)

    def save_due(self, now: datetime) -> bool:
        """Whether the tracker's periodic save is due at `now` (`save_if_due` would write)."""
        saved = self._tracker_saved_at
        return saved is None or now - saved >= TRACKER_SAVE_INTERVAL

    async def _save_tracker(self, now: datetime) -> None:
        await self._repository.save_state(*ACCOUNT_STATE, self.tracker.to_dict())
        self._tracker_saved_at = now


def _index_of(trades: list[ClosedTrade], trade: ClosedTrade) -> int | None:
    """Where the trade of `trade`'s symbol, entry order id and close time is, if anywhere."""
    key = (trade.symbol, trade.entry_order_id, trade.closed_at)
    found = (i for i, t in enumerate(trades) if (t.symbol, t.entry_order_id, t.closed_at) == key)
    return next(found, None)


def _losses_at_end(trades: list[ClosedTrade]) -> int:
    """The losses in a row that end `trades` (in the order they closed)."""
    losses = 0
    for trade in reversed(trades):
        if trade.pnl_usdt >= 0:
            break
        losses += 1
    return losses
