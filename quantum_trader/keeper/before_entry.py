"""The read of a person's round trips made on a symbol before an entry of ours there: the
account's trades from a look that read the symbol flat to our entry's first fill.

A look reads the trades of a symbol it read flat before where the user-data stream reported
a change there since (keeper/flat_reads.py). Once an entry of ours is booked on the symbol
it is no longer flat, and that read was dropped: where it was still to come — refused the
look before (a 503), skipped while our entry was in flight (its trades cannot be told
apart), or the round trip and our entry both between two looks — the round trip was never
booked (the restart campaign with round trips, seeds 40288 and 40289), and its trades lay
in our position's window for a later replay to take (seed 40223's family). The read is now
kept across the entry (`FlatReads.before_entry`) and made once our entry's first fill is
recorded, its time in the exchange's clock bounding it, at a tick that finds our position
held as booked (`settles_now`: not read before); the round trips it shows are booked
by the planner (keeper/from_flat_settle.py `settle_before_entry`), their trades left out of
the position's reads after. Cost: one GET /fapi/v1/userTrades (weight 5) per entry of ours
where an event came since the symbol's flat read (our entry's own fill is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from quantum_trader.domain import ExchangeSnapshot, MarketRules
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.booking import holds_same
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.external import own_trades, trades_window_since
from quantum_trader.keeper.plan import BeforeEntry, FlatRead, Observation
from quantum_trader.keeper.round_trip import entry_moved
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange, Repository
from quantum_trader.record import replace

log = get_logger("keeper")


async def read_before_entries(
    exchange: Exchange,
    repository: Repository,
    seen: Observation,
    flat: Mapping[str, FlatRead],
    book: Book,
    rules: Mapping[str, MarketRules],
    booked: Mapping[str, frozenset[str]],
    now: datetime,
) -> Observation:
    """`seen` with, by symbol of `flat` (where it was read flat before the entry of our
    position in `book`) that this tick would book (`settles_now`), the account's trades
    from there to the entry's first fill, those `booked` (by symbol: taken for a booking)
    and ours left out. A symbol whose entry's fills are not recorded yet, or whose trades
    could not be read, is left for a later tick."""
    flat = {s: read for s, read in flat.items() if settles_now(book, seen.snapshot, rules, s)}
    if not flat:
        return seen
    ours = await own_trades(repository, book.positions, flat, {})  # recorded ones only
    read: dict[str, BeforeEntry] = {}
    for symbol, at in sorted(flat.items()):
        entered = ours.entered.get(symbol)
        if entered is None:
            continue
        start, end = trades_window_since(at.at, now)
        try:
            fills = await exchange.fetch_account_fills(symbol, start, end)
        except (RetryLater, MarketDataError) as error:
            log.warning("account_trades_unread", symbol=symbol, error=str(error))
            continue
        left_out = booked.get(symbol, frozenset()) | ours.trade_ids.get(symbol, frozenset())
        trades = [f for f in fills if f.trade_id not in left_out and at.at <= f.time < entered]
        read[symbol] = BeforeEntry(at, tuple(trades))
    return replace(seen, before_entry=read) if read else seen


def settles_now(
    book: Book | Draft,
    snapshot: ExchangeSnapshot,
    rules: Mapping[str, MarketRules],
    symbol: str,
) -> bool:
    """Whether a tick reading `snapshot` books the round trips read before our entry on
    `symbol` now: our position held as booked, at its entry, no order of ours in flight
    there — else the position's own trades are read this tick, in a window that may hold
    the round trip's, and the read waits for a tick that leaves them apart."""
    position, held = book.positions.get(symbol), snapshot.positions.get(symbol)
    if position is None or held is None or book.intents_for(symbol):
        return False
    return holds_same(position, held) and not entry_moved(position, held, rules.get(symbol))
