"""Which symbols a look reads the trades of for round trips by hand (`FlatReads.again`,
keeper/flat_reads.py): within a run, those read flat at the last look where the user-data
stream reported a change since; after a start, the last run's reads at the second look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quantum_trader.keeper.flat_reads import FlatReads
from quantum_trader.keeper.plan import FlatRead

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
UNIVERSE = (BTC, ETH, SOL)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_symbol_moved_since_the_last_flat_read_is_read_again() -> None:
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    moved = {BTC: at(7), ETH: at(4.9)}  # ETH's event came before the look that read it flat

    assert reads.again({}, moved) == {BTC: FlatRead(at(5))}
    assert reads.again({}, {}) == {}


def test_a_symbol_whose_trades_could_not_be_read_keeps_its_earlier_read() -> None:
    """So the next look reads them again, from where it was read flat before."""
    reads = FlatReads()
    reads.after_tick(UNIVERSE, {}, {}, at(5))
    reads.after_tick(UNIVERSE, {}, {}, at(10), unread={BTC})
    moved = {BTC: at(7), ETH: at(7)}

    assert reads.again({}, moved) == {BTC: FlatRead(at(5))}
    reads.after_tick(UNIVERSE, {}, {}, at(15))
    assert reads.again({}, moved) == {}


def test_the_last_runs_reads_wait_for_the_second_look_after_a_start() -> None:
    """The first look protects what it finds; the second reads what was done while the
    daemon was stopped, events since the start or not."""
    restored = {BTC: FlatRead(at(-600), 3, restored=True)}
    reads = FlatReads(None, restored)
    moved = {BTC: at(1), ETH: at(1)}
    assert reads.again({}, moved) == {}

    reads.after_tick(UNIVERSE, {}, {}, at(5))
    assert reads.again({}, moved) == {BTC: restored[BTC]}  # ETH's event came before the look
