"""Steps a backtest repeats instead of running: those that would leave the account as it is.

A replay step (the simulated operator, the keeper's tick, the executor cycle) is a function of
the state it starts from, the bar and the time. Time is read only through timers: a governor
trip's end, the simulated operator's reset, the account tracker's UTC day, hour and streak, a
symbol's disablement ending (cycle_inputs.py lists what the cycle reads), and a position's age
in its stop maths. (The tracker's periodic save writes the tracker as it is: a repeated cycle
writes it too when due, `Ledger.save_if_due`.) The market view's slow part (signals, ATR,
regimes, z-scores, funding, the global regime, the correlations' period:
`MarketModel.quiet_key`) changes on the hour; its prices every bar.

So when a step left the state as it found it — the keeper's book (but the highest and lowest
prices recorded on its positions, which only the recording reads), the paper account's
revision, the governor's state (but `updated_at`) and the account tracker as they were, the
cycle "unchanged since" its base or become it, the paper book of the lifecycle empty — the next
step starts from that state again. Before a timer and while the quiet key stands, it ends there
too with nothing to record when nothing it reads moves with the prices:
- flat and idle (no position, no order): nothing reads a price whose result counts, the equity
  is the wallet, and the base's inputs read no price (`Executor.repeats_unpriced`);
- with positions open, checked at the step's own prices with each part's own code: no trigger
  or funding due on the paper account, the keeper's plan for the tick (its stop maths and
  protection) with nothing to do but record a new high or low on a position
  (`PositionKeeper.quiet_at`, `steady_at`), the tracker keeping its day, peak and hour, the
  governor recording nothing, and the cycle's inputs — the base's account declarations at this
  equity, with the positions as the tick leaves them — equal to the base's
  (`Executor.would_repeat`).
Such a step is *repeated*: the keeper's regime memory moved on and any new high or low
recorded (`PositionKeeper.record_steady_tick`), one more cycle "unchanged since" the base (with
the tracker's periodic save when due), exactly what running it would leave behind; nothing a
step plans from reads those two prices but their recording (monitor/stops.py `_tracking`), so
the step after it starts from a state that counts as the same. The hourly equity snapshot is
always taken by a step that runs. A step after one that changed something runs: its checks
would not see everything that step left to do (tried: the year's ledger differed).

With positions open, the steps after a repeated one up to the next timer or hour are also
checked as a stretch, once, at its extreme marks (`_stretch`): each part of the checks passes on
an interval of each mark or of the equity, so passing at the extremes covers every step between.
Where the base's inputs read prices (the balancer's priced refusals), the cycle's part is
checked over the box the stretch spans — each held symbol's view price between the lowest and
highest its steps show, the account between the two corners' — the balancer's refusals
bounded check by check (replay_quiet_checks.py `unmoved_within`; balancer_holds.py `within`);
where that does not show them, at each step's own balance and prices (`priced_prefix`), which
still spares each step the keeper's part.

A step that runs (at the hour, after a timer, when the cycle's inputs moved) may still spare
its parts: the keeper's tick where the keeper's part of the checks holds — the keeper then
books what the tick would leave, as a repeated step does (`tick_spared`) — and
the cycle where, after the tick, the checks of the tracker, the governor and the cycle's inputs
at the step's balance hold (`repeats_cycle`).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.app import Core
from quantum_trader.clock import ms_from_utc, on_whole_ms
from quantum_trader.config import BacktestSettings
from quantum_trader.cycle import CycleSummary
from quantum_trader.domain import Position
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.gates.governor_state import GovernorState
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.steady import only_extremes_moved
from quantum_trader.market.model import MarketModel
from quantum_trader.monitor.stops import with_extremes
from quantum_trader.portfolio.account import AccountTracker
from quantum_trader.record import record
from quantum_trader.replay_quiet_checks import QuietChecks


@record
class Before:
    """What a step may change, as it stood when the step began."""

    book: Book
    paper: tuple[Decimal, int, int]
    governor: GovernorState
    tracker: AccountTracker


class QuietSteps:
    """Tells the replay which steps repeat the one before, and repeats them."""

    def __init__(
        self,
        core: Core,
        model: MarketModel,
        exchange: PaperExchange,
        settings: BacktestSettings,
        step: timedelta,
        start: datetime,
    ) -> None:
        self._core = core
        self._step = step
        # A stretch's steps in ms by addition, as the replay loop counts them, where they fall
        # on whole milliseconds (`on_whole_ms`); None: each converted.
        on_grid = on_whole_ms(start) and not step % _MS
        self._step_ms = step // _MS if on_grid else None
        self._model = model
        self._exchange = exchange
        self._checks = QuietChecks(core, model, exchange)
        # Bound once: the per-step check costs the lookups it did as a method here.
        self._cycle_unmoved = self._checks.cycle_unmoved
        self._enabled = settings.skip_quiet_steps
        self._reset_after = settings.operator_reset_after
        self._key: object = None  # the quiet key of the step that left the state as it was
        self._until: datetime | None = None  # the first timer after that step
        self._found = False  # that step left the state as it found it
        # The steps ahead known to repeat, by their instant in ms (an aware datetime's hash
        # costs ≈ 3,400 instructions), with the held symbols' marks at each (`_stretch`), and
        # whether finding more failed since the last step that ran.
        self._ahead: dict[int, dict[str, Decimal]] = {}
        self._failed = False
        self.stretched = 0  # repeated steps found so, without checking each
        self.stretched_priced = 0  # of them, of a base whose inputs read prices
        self.ranged = 0  # stretches of such a base checked at once (`_unmoved_within`)
        self.repeated = 0
        self.repeated_open = 0  # of them, with a position open
        self.repeated_cycles = 0  # cycles repeated after a keeper tick that ran
        self.spared_ticks = 0  # keeper ticks booked without running (`tick_spared`)
        self.repeated_extremes = 0  # repeated steps that recorded a new high or low
        # The keeper's part of the checks at an instant, with the governor's state it read:
        # the positions its tick would leave (None: it would do more). What `repeat` and
        # `tick_spared` book.
        self._seen: tuple[datetime, GovernorState, dict[str, Position] | None] | None = None

    def before(self) -> Before | None:
        """What the step about to run may change (None: repeating is off)."""
        if not self._enabled:
            return None
        core = self._core
        return Before(core.keeper.book, self._exchange.revision, self._state(), core.ledger.tracker)

    def after(
        self, before: Before | None, summary: CycleSummary, now: datetime, now_ms: int
    ) -> None:
        """Note whether the steps after the one just run at `now` (`now_ms`) may repeat it,
        and until when; and whether it left the state as it found it."""
        self._key, self._ahead, self._failed = None, {}, False
        if before is not None and self._settled(summary):
            key = self._model.quiet_key(now_ms)
            if key is not None:
                self._key, self._until = key, self._next_timer(now)
                self._found = self._left_as_found(before)

    def repeats(self, now: datetime, now_ms: int) -> bool:
        """Whether the step at `now` (`now_ms`) would repeat the last one run, but perhaps for
        a new high or low its tick records on a position (which nothing the step does
        reads)."""
        if self._key is None or self._until is None or now >= self._until:
            return False
        if self._model.quiet_key(now_ms) != self._key:
            return False
        core = self._core
        executor = core.executor
        if (
            self._found
            and executor.repeats_unpriced
            and core.keeper.book.idle
            and self._exchange.idle
        ):
            return True  # the account, and so every input the step reads, stands still
        marks = self._ahead.pop(now_ms, None)
        if marks is not None:  # checked with the stretch it is in (`_stretch`)
            held = self._core.keeper.positions
            positions = {s: with_extremes(p, marks[s]) for s, p in held.items()}
            self._seen = now, self._state(), positions
            self.stretched += 1
            self.stretched_priced += not executor.repeats_unpriced
            return True
        still = self._keeper_still(now, now_ms)
        if still is None:
            return False
        marks, positions = still
        return self._cycle_unmoved(self._exchange.balance_at(marks), now, now_ms, positions)

    async def tick_spared(self, now: datetime, now_ms: int) -> bool:
        """Step the keeper at `now` (`now_ms` in ms) without ticking where its tick would
        change nothing but the highs and lows recorded on positions (the keeper's part of
        `repeats`, checked after the simulated operator's reset): book what it would leave.
        False: the caller ticks."""
        if not self._enabled:
            return False
        if self._seen is None or self._seen[0] != now or self._seen[1] is not self._state():
            self._keeper_still(now, now_ms)
        seen, self._seen = self._seen, None
        if seen is None or seen[2] is None:
            return False
        await self._core.keeper.record_steady_tick(now, seen[2])
        self.spared_ticks += 1
        return True

    async def repeat(self, now: datetime, now_ms: int, runs_at: datetime) -> CycleSummary:
        """What running the step at `now` (`now_ms` in ms) would leave behind (only where
        `repeats`): its tick's, with any new high or low recorded on a position (the
        positions `repeats` found the tick would leave), and its cycle's. `runs_at`: the
        first step after it that runs whatever it finds (the hourly equity snapshot's)."""
        keeper, seen, self._seen = self._core.keeper, self._seen, None
        positions = seen[2] if seen is not None and seen[0] == now else None
        if positions is None or all(positions[s] is p for s, p in keeper.positions.items()):
            keeper.repeat_quiet_tick(now)
        else:
            await keeper.record_steady_tick(now, positions)
            self.repeated_extremes += 1
        self._found = True  # a repeated step leaves the state as it found it, by its checks
        self.repeated += 1
        self.repeated_open += bool(self._core.keeper.positions)
        until = self._until
        if not self._ahead and not self._failed and until is not None:
            # A comparison, not min(): in 3.11 a two-value min() parses its keywords.
            self._stretch(now, now_ms, runs_at if runs_at < until else until)
        # `repeat_cycle`'s work, not awaited through it: a coroutine layer costs ≈ 2,000
        # instructions, and most steps repeat (nor `save_if_due` awaited but when due).
        ledger = self._core.ledger
        if ledger.save_due(now):
            await ledger.save_if_due(now)
        return self._core.executor.repeat()

    async def repeats_cycle(self, before: Before | None, now: datetime, now_ms: int) -> bool:
        """After the step at `now` (`now_ms`) ran its keeper tick: whether its cycle would
        repeat the base. The tick may have changed the keeper's books and orders (a new high
        or low recorded, a stop moved); the cycle reads them only through the positions, the
        blocks and the balance, which its checks read as they are now: at this balance the
        tracker, the governor and the cycle's inputs stay as they are. The market's hourly
        fields and every timer stand as the step before left them. Conservatively, a tick
        that recorded a trade or changed the governor's state makes the cycle run."""
        if before is None or self._key is None or self._until is None or now >= self._until:
            return False
        core = self._core
        if (
            core.ledger.tracker is not before.tracker
            or not _same_state(self._state(), before.governor)
            or core.sizing.paper.positions
            or self._model.quiet_key(now_ms) != self._key
        ):
            return False
        balance = await self._exchange.fetch_balance()
        return self._cycle_unmoved(balance, now, now_ms, core.keeper.positions)

    async def repeat_cycle(self, now: datetime) -> CycleSummary:
        """What running the cycle at `now` would leave behind (only where `repeats_cycle`):
        the cycle "unchanged since" the base, and what its observing of the account writes
        then: the tracker, when its periodic save is due."""
        self.repeated_cycles += 1
        ledger = self._core.ledger
        if ledger.save_due(now):  # as in `repeat`: most steps save nothing
            await ledger.save_if_due(now)
        return self._core.executor.repeat()

    def _stretch(self, now: datetime, now_ms: int, end: datetime) -> None:
        """Find the steps after `now` (`now_ms` in ms) and before `end` that repeat with one
        check, kept in `_ahead`: all of them, or else the first half; none when neither holds
        (`_failed`).

        After a repeated step, with positions open, what a later step of the stretch checks
        moves only with the held symbols' marks, and each part passes on an interval of
        them: the keeper's plan for each position on an interval of its mark (with its book
        and time fixed; tests/keeper/test_keeper_steady_band.py), and the tracker, the
        governor and the gates' unpriced declarations on an interval of the equity
        (test_portfolio_quiet_until.py, test_gates_governor.py, test_gates_orchestrator.py),
        which moves with each mark one way. So the checks passing with every long at the
        lowest mark any step shows it and every short at its highest (the lowest equity),
        and the other way round, pass at every step in between. Time reads are timers the
        stretch ends before (`_until`), or, in the keeper's plan, become due and stay due (a
        time exit, a stop replacement held back), so the checks are made at the last step.
        The stretch starts after a repeated step: the keeper's regime memory, the one thing
        a tick moves that its plan reads, then stands until the regimes change. A base whose
        inputs read prices has the cycle's part checked over the range of prices the steps
        show (`QuietChecks.unmoved_within`), or else at each step (`priced_prefix`)."""
        self._failed = True
        held = self._core.keeper.positions
        if not held or not self._found:
            return
        steps_ms = self._steps_after(now, now_ms, end)
        seen = self._exchange.quiet_window(steps_ms) if len(steps_ms) > 1 else None
        # Each step's marks are of the same held symbols (the account's): the first's tell.
        if seen is None or seen[0][0].keys() != held.keys():
            return
        marks, listed = seen
        priced = not self._core.executor.repeats_unpriced
        for length in (len(steps_ms), len(steps_ms) // 2):
            if length < 2:
                continue
            last = now + self._step * length  # the stretch's last step
            corners = self._checks.corners(last, marks[:length], listed)
            if corners is None:
                continue
            if not priced:
                last_ms = steps_ms[length - 1]
                balance_at = self._exchange.balance_at
                unmoved = self._cycle_unmoved
                if not all(unmoved(balance_at(c), last, last_ms, p) for c, p in corners):
                    continue
                holding = length
            elif self._checks.unmoved_within(last, steps_ms[:length], corners):
                holding = length
                self.ranged += 1
            else:
                steps = [now + self._step * n for n in range(1, length + 1)]
                holding = self._checks.priced_prefix(steps, steps_ms[:length], marks[:length])
            self._ahead = dict(zip(steps_ms[:holding], marks[:holding], strict=True))
            # Cut short at a step whose own check fails: that step runs, the next try
            # waits for a step that ran.
            self._failed = holding < length
            return

    def _steps_after(self, now: datetime, now_ms: int, end: datetime) -> list[int]:
        """The steps after `now` (`now_ms` in ms) and before `end`, each in ms: the n-th is
        `now + n × step`. Counted, not stepped to: only the stretch's checks make the
        datetimes they read (a datetime made and compared costs ≈ 2,500 instructions)."""
        # n × step < end - now, the instants in whole microseconds: n ≤ (end - now - 1 µs) // step.
        count = (end - now - _US) // self._step
        step_ms = self._step_ms
        if step_ms is None:
            return [ms_from_utc(now + self._step * n) for n in range(1, count + 1)]
        return list(range(now_ms + step_ms, now_ms + step_ms * count + 1, step_ms))

    def _keeper_still(
        self, now: datetime, now_ms: int
    ) -> tuple[dict[str, Decimal], dict[str, Position]] | None:
        """Whether the keeper's tick at `now` (`now_ms` in ms) would change nothing but the
        highs and lows recorded on positions, with the paper account answering as it would
        (no trigger or funding due): then the held symbols' marks (the balance the account
        shows is `balance_at` them, made only where read: `tick_spared` reads none) and the
        positions the tick would leave, also kept for `tick_spared`. None otherwise, or when
        the last step's findings are not known."""
        state = self._state()
        self._seen = now, state, None
        if self._key is None:
            return None
        keeper = self._core.keeper
        if self._found:  # the keeper's tick found nothing: only marks and the clock can move it
            seen = self._exchange.quiet_marks(now_ms)
            if seen is None:
                return None
            marks = seen[0]
            positions = keeper.steady_at(now, seen[1], marks)
            if positions is None:
                return None
        else:
            view = self._exchange.quiet_view(now, now_ms)
            if view is None or not keeper.quiet_at(now, view.snapshot, view.marks):
                return None
            positions, marks = dict(keeper.positions), view.marks
        self._seen = now, state, positions
        return marks, positions

    def _state(self) -> GovernorState:
        return self._core.governor.governor.state

    def _settled(self, summary: CycleSummary) -> bool:
        """The step ended with a base the next cycle may repeat, nothing else to observe."""
        core = self._core
        market = core.executor.latest_market
        state = self._state()
        # The cycle repeated its base, or became one (it ran in full and sent nothing).
        since = summary.unchanged_since or summary.cycle_id
        return (
            since == core.executor.base_id
            and not core.sizing.paper.positions
            # An emergency shutdown flattens every step while a position is open.
            and not (state.emergency_shutdown_requested and core.keeper.positions)
            # Without hourly z-scores the governor reads every bar's returns.
            and market is not None
            and bool(market.return_zscore)
        )

    def _left_as_found(self, before: Before) -> bool:
        core = self._core
        return (
            core.ledger.tracker is before.tracker
            and self._exchange.revision == before.paper
            and _same_but_extremes(core.keeper.book, before.book)
            and _same_state(self._state(), before.governor)
        )

    def _next_timer(self, now: datetime) -> datetime:
        state = self._state()
        ends = [self._core.ledger.quiet_until(now)]
        ends += [t.until for t in state.trips if t.until is not None]
        halted = state.operator_halt_since
        if halted is not None and self._reset_after is not None:
            ends.append(halted + self._reset_after)
        return min(ends)


def _same_state(a: GovernorState, b: GovernorState) -> bool:
    """Equal but for `updated_at` (which every observation moves)."""
    return a is b or a.standing == b.standing


def _same_but_extremes(a: Book, b: Book) -> bool:
    """Equal but for the highest and lowest prices recorded on the positions: a tick that
    only recorded those found nothing to settle or reconcile, and nothing a tick plans from
    reads them but the recording itself (monitor/stops.py `_tracking`)."""
    if a == b:
        return True
    if any(getattr(a, name) != getattr(b, name) for name in _BOOK_BUT_POSITIONS):
        return False
    if a.positions.keys() != b.positions.keys():
        return False
    return all(only_extremes_moved(a.positions[s], b.positions[s]) for s in a.positions)


_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)
_BOOK_BUT_POSITIONS = tuple(f.name for f in fields(Book) if f.compare and f.name != "positions")
