"""Which symbols a look reads the trades of for round trips by hand (`FlatReads.again`,
keeper/flat_reads.py): within a run, those read flat at the last look where the user-data
stream reported a change since; after a start, the last run's reads at the second look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from position_builders import position

from quantum_trader.domain import StreamMoves
from quantum_trader.keeper.flat_reads import FlatReads
from quantum_trader.keeper.plan import FlatRead
from quantum_trader.record import replace

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
UNIVERSE = (BTC, ETH, SOL)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_symbol_moved_since_the_last_flat_read_is_read_again() -> None:
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    moved = StreamMoves({BTC: at(7), ETH: at(4.9)})  # ETH's came before the look read it flat

    assert reads.again({}, moved) == {BTC: FlatRead(at(5))}
    assert reads.again({}, StreamMoves()) == {}


def test_a_symbol_whose_trades_could_not_be_read_keeps_its_earlier_read() -> None:
    """So the next look reads them again, from where it was read flat before."""
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    reads.after_tick(UNIVERSE, {}, {}, at(10), unread={BTC})
    moved = StreamMoves({BTC: at(7), ETH: at(7)})

    assert reads.again({}, moved) == {BTC: FlatRead(at(5))}
    reads.after_tick(UNIVERSE, {}, {}, at(15))
    assert reads.again({}, moved) == {}


def test_the_last_runs_reads_wait_for_the_second_look_after_a_start() -> None:
    """The first look protects what it finds; the second reads what was done while the
    daemon was stopped, events since the start or not."""
    restored = {BTC: FlatRead(at(-600), 3, restored=True)}
    reads = FlatReads(None, restored)
    moved = StreamMoves({BTC: at(1), ETH: at(1)})
    assert reads.again({}, moved) == {}

    reads.after_tick(UNIVERSE, {}, {}, at(5))
    assert reads.again({}, moved) == {BTC: restored[BTC]}  # ETH's event came before the look


def test_every_flat_symbol_is_read_again_after_events_may_have_been_lost() -> None:
    """The stream reseeded (a reconnect, a gap): an event before its read may never have
    come, so every symbol read flat before it is read; while the stream is down the reads
    stand, so the look after the seed reads from before the outage."""
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    reads.after_tick(UNIVERSE, {}, {}, at(10), watched=False)  # the stream down
    assert reads.again({}, StreamMoves(lost_before=at(4))) == {}
    reseeded = StreamMoves(lost_before=at(12))

    assert reads.again({}, reseeded) == {s: FlatRead(at(5)) for s in UNIVERSE}
    reads.after_tick(UNIVERSE, {}, {}, at(15))
    assert reads.again({}, reseeded) == {}


def test_a_symbol_closed_this_tick_is_flat_from_its_close() -> None:
    """From the instant after the close's last trade, not the look's time: a round trip by
    hand between the two is read for; a position an earlier run booked (`restored`) is
    read at the next whole tick, events or not (made while the daemon was stopped)."""
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(10), closed={BTC: at(3), ETH: at(4)}, restored={ETH})

    assert reads.again({}, StreamMoves({BTC: at(6)})) == {
        BTC: FlatRead(at(3)),
        ETH: FlatRead(at(4), restored=True),
    }


def test_after_a_gap_a_read_reaches_back_to_where_the_gap_began() -> None:
    """A look at 10 trusted the stream, which had been dead since its last event at 7 (the
    client noticed at 11, reseeded at 12): the symbols are read from 7, what a look at 10
    could not see — but not before each symbol's run of flat reads began (ETH's at its
    close at 8: trades before it were a position's, booked)."""
    reads = FlatReads()
    reads.after_tick((BTC, SOL), {}, {}, at(5))  # ETH booked then
    reads.after_tick(UNIVERSE, {}, {}, at(10), closed={ETH: at(8)})
    gap = StreamMoves(lost_before=at(12), lost_since=at(7))

    assert reads.again({}, gap) == {
        BTC: FlatRead(at(7)),
        ETH: FlatRead(at(8)),
        SOL: FlatRead(at(7)),
    }
    assert reads.unbooked({}, gap)[BTC] == FlatRead(at(7))  # an adoption replays from there too
    assert reads.again({}, StreamMoves({BTC: at(11)}, at(4), at(3))) == {BTC: FlatRead(at(10))}
    reads.after_tick(UNIVERSE, {}, {}, at(15))
    assert reads.again({}, gap) == {}


def test_an_entry_of_ours_booked_after_a_change_keeps_the_read_until_it_is_read() -> None:
    """BTC read flat at 5, a change reported at 6, our entry booked at 7: the read is kept
    for the trades up to our entry's first fill (keeper/before_entry.py) until a tick read
    them; ETH, adopted, replays its own round trips from flat (not kept)."""
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    ours = position(symbol=BTC)
    adopted = replace(position(symbol=ETH), entry_order_id="adopted-ETH-1")
    booked = {BTC: ours, ETH: adopted}
    moved = StreamMoves({BTC: at(6), ETH: at(6)})
    assert reads.before_entry(booked) == {}

    reads.after_tick(UNIVERSE, {}, booked, at(10), moves=moved)
    assert reads.before_entry(booked) == {BTC: FlatRead(at(5))}
    reads.after_tick(UNIVERSE, {}, booked, at(15), moves=moved)  # not read yet: kept
    assert reads.before_entry(booked) == {BTC: FlatRead(at(5))}
    reads.after_tick(UNIVERSE, {}, booked, at(20), moves=moved, before_read={BTC})
    assert reads.before_entry(booked) == {}


def test_a_read_before_our_entry_is_dropped_with_the_position() -> None:
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    booked = {BTC: position(symbol=BTC)}
    reads.after_tick(UNIVERSE, {}, booked, at(10), moves=StreamMoves({BTC: at(6)}))
    reads.after_tick(UNIVERSE, {}, {}, at(15))

    assert reads.before_entry(booked) == {}


def test_a_restored_read_kept_while_the_stream_was_down_is_read_where_it_moved() -> None:
    """After a start with the stream unusable the looks keep the last run's reads; once the
    second look has read what was done while stopped, such a read is read again where the
    stream says the symbol moved since (seed 40345: a round trip after the second look,
    never booked)."""
    restored = {BTC: FlatRead(at(-600), 3, restored=True)}
    reads = FlatReads(None, restored)
    reads.after_tick(UNIVERSE, {}, {}, at(5), watched=False)
    reads.after_tick(UNIVERSE, {}, {}, at(10), watched=False)  # the second look: read
    moved = StreamMoves({BTC: at(12)}, lost_before=at(14), lost_since=at(11))

    assert reads.again({}, moved) == {
        BTC: restored[BTC],  # was left out: restored, and no longer the second look's
        ETH: FlatRead(at(5)),
        SOL: FlatRead(at(5)),
    }
