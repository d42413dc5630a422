"""Before an entry is sent: does the exchange already hold its symbol, though the books do not?

The keeper refuses an entry on a symbol its books hold; the books are what its last tick read.
A person may open a position on the symbol after that read, and our entry then meets it:
Binance nets the two (one-way mode), so the person's position is traded against and ours never
exists (booked right since the hand-trading campaign's seed 32035, but still sent). That read
can be old: a tick stalled on a lost answer holds the keeper's lock for up to the request
timeout, a minute in that seed, while the cycle's entry waits for it.

So the position is looked at again, as freshly as it can be had cheaply, and never at the price
of an entry's weight where nothing suggests a change:
- the streams' mirror, when usable, is current: a position it shows on the symbol is confirmed
  over REST (a mirror may lag behind a close) before the entry is refused;
- without it, the positions are read over REST only when the last read is older than two ticks
  by the clock (`stale_after`): a tick that stalled, or ticks that failed to read.
The race itself cannot be closed: a person's order may land between this look and our entry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from quantum_trader.domain import ExchangePosition
from quantum_trader.ports import Exchange, ExchangeStreams

Now = Callable[[], datetime]  # the time now, read when it is needed


async def held_outside_books(
    symbol: str,
    exchange: Exchange,
    streams: ExchangeStreams | None,
    clock: Now | None,
    last_read_at: datetime | None,
    stale_after: timedelta,
) -> ExchangePosition | None:
    """The position the exchange holds on `symbol` (which the books hold none on), if one is
    seen; None when none is, or when nothing suggests looking. Without a clock nothing is
    looked at (a backtest: it has no person)."""
    if clock is None:
        return None
    now = clock()
    mirrored = streams.snapshot(now) if streams is not None else None
    if mirrored is not None:
        shown = mirrored.positions.get(symbol)
        if shown is None or shown.quantity <= 0:
            return None
    elif last_read_at is not None and now - last_read_at <= stale_after:
        return None
    positions = await exchange.fetch_positions()
    return next((p for p in positions if p.symbol == symbol and p.quantity > 0), None)
