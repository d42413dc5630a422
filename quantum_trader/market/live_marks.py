"""The mark an entry is sized at in testnet/live (ports.EntryMarks).

The market view prices each symbol at its last closed bar's close: on 5 m bars up to five
minutes old when a cycle runs, on 1 h bars up to an hour. An entry sized there was planned
around a price the market had left: an outside probe (2026-12-06) saw entries on 1 h bars
filled past their own target or stop and exited at once (FILL_OFF_PLAN), again every cycle,
and others risking 1.7–2.9 times the approved amount. Sized at the mark instead, the plan's
stop and target are where the fill will be measured from. The mark is what Binance triggers
our stops on (`workingType=MARK_PRICE`) and what the keeper reasons in.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange, ExchangeStreams

log = get_logger("market")


class LiveMarks:
    """The streamed mark when it is fresh, else one read over REST (premiumIndex of the
    symbol, weight 1); None when neither can be had (said, `entry_mark_unavailable`)."""

    def __init__(self, exchange: Exchange, streams: ExchangeStreams | None) -> None:
        self._exchange = exchange
        self._streams = streams

    async def mark(self, symbol: str, now: datetime) -> Decimal | None:
        streamed = self._streams.mark_prices([symbol], now) if self._streams is not None else None
        if streamed and symbol in streamed:
            return streamed[symbol]
        try:
            read = await self._exchange.fetch_mark_prices([symbol])
        except (MarketDataError, RetryLater) as error:
            log.warning("entry_mark_unavailable", symbol=symbol, error=str(error))
            return None
        return read.get(symbol)
