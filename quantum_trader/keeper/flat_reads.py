"""Where the keeper last read each symbol flat with nothing booked (`FlatRead`): what
happened there since is replayed from flat with the account's trades
(keeper/from_flat_settle.py).

The daemon's keeper also saves, by symbol, when such a run of flat reads began (the
repository's state, namespace `FLAT_READS`), and deletes it when the run ends (the books
hold something there, or the symbol left the universe): so the first look after a restart
replays from there what a person did while the daemon was stopped — an open and a flip, say
— instead of adopting what is held with nothing before it booked. Any time within the run
bounds the trades as well as its last: the symbol was flat then and nothing was booked
there since. Written only when a run begins or ends, not every tick, and once more after a
start where what happened while stopped was read; a backtest saves nothing (no person
trades beside it).

The second whole tick after a start also books the round trips a person made while the
daemon was stopped on a symbol the last run read flat and both ticks read flat again (an
open and a close: nothing held to adopt, so nothing else would read its trades): one read
of the account's trades on each such symbol, once per start — a read that failed is tried
on the next tick until it reads (`Observation.flat_again`,
keeper/from_flat_settle.py) — the second, so the first protects what it finds without
waiting for those reads. A saved read that cannot be read back is said once
and dropped (the keeper starts all the same, as it did before: nothing replayed there).

Within a run, a round trip between two looks on a symbol read flat at both is booked the
same way where the user-data stream reported a change of position or a fill there since
the first look, or was reseeded since (events lost: `ExchangeStreams.moved`): one read of
the trades per such symbol and event, kept where it failed or the plan left the round trip
for later (`Plan.flat_kept`: an order of ours in doubt there, or a trade not listed yet) —
the earlier flat read stays, so the next look reads again — and kept while the stream is
unusable; after a gap, from where the gap began (`reach`). A symbol whose position a tick
booked closed is flat from the instant after the close's last trade, not from the tick
(`closes_at`). A read still to come when an entry of ours is booked on the symbol is kept
for the trades before that entry (`before_entry`, keeper/before_entry.py)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from quantum_trader.domain import ExchangePosition, Position, StreamMoves
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.plan import FlatRead, Observation, Plan
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository
from quantum_trader.record import replace

log = get_logger("keeper")
FLAT_READS = "flat_reads"
AFTER_A_TRADE = timedelta(milliseconds=1)  # Binance stamps trades to the millisecond


class FlatReads:
    def __init__(
        self,
        repository: Repository | None = None,
        restored: Mapping[str, FlatRead] | None = None,
        before_entry: Mapping[str, FlatRead] | None = None,
    ) -> None:
        self._repository = repository  # None: nothing saved (a backtest)
        self._at: dict[str, FlatRead] = dict(restored or {})
        # By symbol, where its run of flat reads began: flat then, and nothing booked since
        # but round trips at their trades (whose ids stay left out).
        self._runs: dict[str, datetime] = {s: read.at for s, read in self._at.items()}
        # The symbols whose run is saved; a run our entry ended stays saved until the trades
        # before the entry are read (`before_entry`): a restart reads them then.
        self._saved: set[str] = set(self._at) | set(before_entry or {})
        self._leverage: dict[str, int] = {}  # by symbol, of the last position read there
        # The restored reads, until the second whole tick after the start: what a person did
        # on a symbol while the daemon was stopped and that is flat again (round trips) is
        # booked then — not on the first, which protects what it finds first.
        self._stopped: dict[str, FlatRead] = dict(self._at)
        self._whole_ticks = 0
        # By symbol an entry of ours was booked on while its read was to come: read up to
        # the entry's first fill (keeper/before_entry.py).
        self._before_entry: dict[str, FlatRead] = dict(before_entry or {})

    @classmethod
    async def restored(
        cls,
        repository: Repository,
        universe: Collection[str],
        booked: Collection[str],
        ours: Collection[str] = (),
    ) -> FlatReads:
        """As the last run saved them, for the symbols of `universe` the books hold nothing
        on (`booked`: a run the last one ended with a booking, stopped before it deleted its
        entry — such an entry would bound a later run of flat reads too early, before the
        trades of a position since, which a restart no longer leaves out); and, for the
        symbols of `ours` (booked, opened by an entry of ours), as reads before that entry
        (`before_entry`: the trades to its first fill do not reach into the position — the
        restart campaign with round trips, seed 40290: a round trip by hand, our entry 5 s
        later booked as the daemon stopped, the round trip never booked)."""
        reads: dict[str, FlatRead] = {}
        before: dict[str, FlatRead] = {}
        for symbol, saved in (await repository.load_state(FLAT_READS)).items():
            try:
                if symbol in universe and symbol not in booked:
                    reads[symbol] = _decoded(saved)
                    continue
                if symbol in universe and symbol in ours:
                    before[symbol] = _decoded(saved)
                    continue
            except (KeyError, TypeError, ValueError) as error:
                _said_unreadable(symbol, saved, repr(error))
            await repository.delete_state(FLAT_READS, symbol)
        return cls(repository, reads, before)

    def unbooked(self, booked: Mapping[str, Position], moves: StreamMoves) -> dict[str, FlatRead]:
        """The flat reads of symbols the books hold nothing on now (not where an entry of
        ours was booked since, from its answer: keeper/answer.py), each from where the
        stream's last gap began where a read since trusted it (`reach`)."""
        if moves.lost_before is None:  # never seeded: nothing to reach for
            return {s: read for s, read in self._at.items() if s not in booked}
        return {s: self.reach(s, read, moves) for s, read in self._at.items() if s not in booked}

    def again(self, booked: Mapping[str, Position], moves: StreamMoves) -> dict[str, FlatRead]:
        """The reads of the symbols the books hold nothing on where a round trip by hand may
        have been made since (`Observation.flat_again`): the last whole tick's where the
        user-data stream reported a change there since, or lost events since (`moves`,
        `reach`); from the second whole tick after a start, the restored reads of the
        symbols the first read flat too, until their trades were read (a read that failed
        is tried on the next tick) — and a restored read the looks kept while the stream
        was unusable, where the stream says it may have moved since (the restart campaign,
        seed 40345: started with the stream down, a round trip after the second look read
        nothing, never booked)."""
        started = self._whole_ticks >= 1  # before it, the first look protects what it finds
        again = {
            s: self.reach(s, read, moves)
            for s, read in self._at.items()
            if s not in booked and (started or not read.restored) and moves.since(s, read.at)
        }
        if started:
            again.update((s, read) for s, read in self._stopped.items() if s not in booked)
        return again

    def before_entry(self, booked: Mapping[str, Position]) -> dict[str, FlatRead]:
        """By symbol an entry of ours was booked on since a look read it flat, where the
        stream reported a change since that read (our entry's own fill, or a person's round
        trip before it): that read, until the trades up to the entry's first fill are read
        (keeper/before_entry.py); a restored one (the last run's, saved) from the second
        whole tick after the start, as the round trips made while stopped."""
        return {
            s: read
            for s, read in self._before_entry.items()
            if s in booked and (self._whole_ticks >= 1 or not read.restored)
        }

    def before_close(
        self,
        since: Mapping[str, datetime],
        booked: Mapping[str, Position],
        moves: StreamMoves,
    ) -> dict[str, datetime]:
        """`since` (by symbol, where a closed or reduced position's trades are read from),
        moved back to where a read of the trades before our entry there is still to come:
        kept (`before_entry`), or the symbol's flat read an entry of ours was booked on
        since, where the stream says it may have moved since (`after_tick` keeps it at the
        tick's end). A position closed before that read made it drop it, and a round trip by
        hand before our entry was never booked (the restart campaign, seed 41829); from
        there the close's read tells such round trips apart (keeper/external.py)."""
        moved_back = dict(since)
        for symbol, at in since.items():
            read, flat = self._before_entry.get(symbol), self._at.get(symbol)
            if read is None and flat is not None and self._entered_since(symbol, booked, moves):
                read = self.reach(symbol, flat, moves)
            if read is not None and not read.restored and read.at < at:
                moved_back[symbol] = read.at
        return moved_back

    def _entered_since(
        self, symbol: str, booked: Mapping[str, Position], moves: StreamMoves
    ) -> bool:
        """An entry of ours was booked on `symbol` since its flat read, and the stream says it
        may have moved since that read."""
        position, flat = booked.get(symbol), self._at[symbol]
        return (
            position is not None
            and is_ours(position.entry_order_id)
            and moves.since(symbol, flat.at)
        )

    def reach(self, symbol: str, read: FlatRead, moves: StreamMoves) -> FlatRead:
        """`read`, or from earlier where the stream's last gap began before it
        (`StreamMoves.unseen_from`) — a look between a dead connection's last event and
        its discovery trusted the stream and read the symbol flat, its round trip lost
        (the hand-trading campaign, seed 32930) — but not before the symbol's run of flat
        reads began (before it, trades of a position booked, some at the mark, unnamed)."""
        if read.restored:
            return read
        start = max(moves.unseen_from(read.at), self._runs.get(symbol, read.at))
        return read if start == read.at else replace(read, at=start)

    def after_tick(
        self,
        universe: Iterable[str],
        held: Mapping[str, ExchangePosition],
        booked: Mapping[str, Position],
        now: datetime,
        unread: Collection[str] = (),
        closed: Mapping[str, datetime] | None = None,
        restored: Collection[str] = (),
        watched: bool = True,
        moves: StreamMoves | None = None,
        before_read: Collection[str] = (),
    ) -> None:
        """A whole tick at `now` read `held` and left `booked`: the symbols of `universe`
        flat with nothing booked read flat now; those read flat before and held since that
        the books hold nothing on yet keep their read (a tick that could not read the
        symbol's orders plans nothing there: hand-trading seed 30002 lost its read so).
        `unread`: the symbols whose account trades it could not read. `closed`: by symbol,
        where the tick booked a position closed, the instant after its last trade
        (`closes_at`): flat since then, not only since `now` — a round trip by hand after the
        close and before this tick is read for at the next look where the stream reported
        one; where the position was booked by an earlier run (`restored`: not seen held
        since the start), at the next whole tick whatever the stream (made while stopped:
        the restart campaign, seed 40185, our stop filled and two round trips after it).
        `watched`: whether the user-data stream was usable (or there is none); while it is
        not, the flat reads stand, so that the look after its seed reads the trades made
        during the outage (the restart campaign, seed 40200: a round trip by hand while the
        stream reconnected, never booked). `moves`: what the stream said moved, read at the
        tick's start — a symbol read flat at the last tick and booked since by an entry of
        ours, where a change came since that read, keeps the read for `before_entry` until
        its trades are read (`before_read`)."""
        closed = closed or {}
        ended = self._keep_before_entry(booked, moves or StreamMoves(), before_read)
        self._leverage.update((s, p.leverage) for s, p in held.items())
        flat = {s: r for s, r in self._at.items() if s in held and s not in booked}
        for symbol in universe:
            if symbol in held or symbol in booked:
                continue
            if symbol in self._at and (symbol in unread or not watched):  # read from there
                flat[symbol] = self._at[symbol]
            else:
                flat[symbol] = FlatRead(closed.get(symbol, now), self._leverage.get(symbol, 1))
        if flat.keys() != self._at.keys():  # a run began or ended (most ticks: none)
            runs, at = self._runs, self._at
            self._runs = {s: runs.get(s, r.at) if s in at else r.at for s, r in flat.items()}
        self._at = flat
        self._whole_ticks += 1
        # Kept where the first read them flat with nothing booked, until their trades were
        # read (the second tick on: booked then).
        pending = unread if self._whole_ticks > 1 else self._stopped.keys()
        done = self._stopped.keys() - set(pending)
        self._stopped = {
            s: read
            for s, read in self._stopped.items()
            if s in pending and s not in held and s not in booked
        }
        self._saved -= done & self._at.keys()  # saved again: a later start reads from now
        self._saved -= ended & self._at.keys()  # a run after a read before an entry: anew
        for symbol in set(restored) & closed.keys() & flat.keys():
            self._stopped[symbol] = FlatRead(closed[symbol], flat[symbol].leverage, restored=True)

    def _keep_before_entry(
        self, booked: Mapping[str, Position], moves: StreamMoves, read: Collection[str]
    ) -> set[str]:
        """`after_tick`'s part about reads before an entry of ours: a symbol of the last
        tick's flat reads that an entry of ours was booked on since, where a change came
        since its read, kept (`before_entry`); those `read` this tick, or whose position is
        gone, dropped. Returns the symbols dropped."""
        before = self._before_entry
        if moves.by_symbol or moves.lost_before is not None or self._stopped:
            for symbol, flat in self._at.items():
                position = booked.get(symbol)
                if position is None or not is_ours(position.entry_order_id):
                    continue  # not booked, or adopted: its replay from flat books round trips
                if moves.since(symbol, flat.at) or symbol in self._stopped:
                    before.setdefault(symbol, self.reach(symbol, flat, moves))
        if not before:
            return set()
        self._before_entry = {s: r for s, r in before.items() if s in booked and s not in read}
        return before.keys() - self._before_entry.keys()

    async def save(self) -> None:
        """The runs begun and ended since the last save, written (the daemon's keeper)."""
        if self._repository is None:
            return
        for symbol in sorted(self._at.keys() - self._saved):
            read = self._at[symbol]
            payload = {"at": read.at.isoformat(), "leverage": read.leverage}
            await self._repository.save_state(FLAT_READS, symbol, payload)
            self._saved.add(symbol)
        for symbol in sorted(self._saved - self._at.keys() - self._before_entry.keys()):
            await self._repository.delete_state(FLAT_READS, symbol)
            self._saved.discard(symbol)


def _decoded(saved: Any) -> FlatRead:
    at = datetime.fromisoformat(saved["at"])
    leverage = saved["leverage"]
    if at.tzinfo is None or type(leverage) is not int or leverage < 1:
        raise ValueError(f"at {saved['at']!r}, leverage {leverage!r}")
    return FlatRead(at, leverage, restored=True)


def _said_unreadable(symbol: str, saved: Any, why: str) -> None:
    log.warning(
        "flat_read_unreadable",
        symbol=symbol,
        saved=saved,
        detail=(
            f"where the last run read the symbol flat cannot be read again ({why}): a "
            "position a person opened there while the daemon was stopped is adopted with "
            "nothing before it booked; the entry is dropped"
        ),
    )


def closes_at(booked: Collection[str], plan: Plan, seen: Observation) -> dict[str, datetime]:
    """By symbol the books held at a tick's start (`booked`) and `plan` books closed with
    nothing held now: the instant after the last trade that closed it (the fills of our
    exit, or the account's trades it took), where known — Binance's time, 1 ms on, so that
    no trade of the close itself is taken for a later one's (its ids are forgotten by a
    restart)."""
    times = {}
    for draft in plan.trades:
        symbol = draft.position.symbol
        if symbol not in booked or symbol in seen.snapshot.positions:
            continue
        taken = plan.reducing_trades.get(symbol, frozenset())
        fills = [f for read in seen.fills.values() for f in read if f.symbol == symbol]
        fills += seen.account_fills.get(symbol, ())
        last = max((f.time for f in fills if f.trade_id in taken), default=None)
        if last is not None:
            times[symbol] = last + AFTER_A_TRADE
    return times
