"""The mirror's open conditional orders checked against REST with its positions, while few
symbols are held (keeper/reads.py calls it at the check of positions alone); and the read of
a few symbols' open conditional orders, one request each, that it and a REST-only tick make
(`read_orders_of`).

A stop of ours cancelled outside the program whose user-data event was lost leaves the
positions as they were: the check of positions cannot see it, only a read of the open orders.
Binance charges GET /fapi/v1/openAlgoOrders 1 with `symbol` and 40 without ("Current All Algo
Open Orders", USD-M futures REST API). Up to STOPS_READ_PER_SYMBOL_AT_MOST held symbols are
read one request each at the check (twice a minute, the full check's read aside): 2k a
minute, 8 at 4, the daemon's worst minute 5.1 % of Binance's 2,400 (4.8 % before; the 5 %
target would hold up to 2); 20 held would add 40, 6.5 % (docs/BENCHMARKS.md). The marks'
threshold (execution/binance_marks.py), for the same time: ccxt's throttle charges the read
1 with a symbol and spaces the k requests 50 ms apart, ≈ (k − 1) × 50 ms more on the tick.
Above it the full check alone, every `keeper.rest_check_interval_s`, finds such a stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from quantum_trader.domain import ExchangeSnapshot, Order, SnapshotSource
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.keeper.recheck import mirror_difference
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange

log = get_logger("keeper")
STOPS_READ_PER_SYMBOL_AT_MOST = 4
Answer = list[Order] | MarketDataError | RetryLater  # one symbol's read


async def stops_difference(exchange: Exchange, mirrored: ExchangeSnapshot) -> str:
    """What the mirror got wrong in the open conditional orders of the symbols it holds, as
    the full check would say it (`mirror_difference`), each symbol read alone; "" when they
    agree, nothing or more than STOPS_READ_PER_SYMBOL_AT_MOST is held, or nothing was read.
    A symbol whose read fails is left out, its mirror standing until the next check, said in
    one line for the check (`stop_check_failed`)."""
    symbols = sorted(mirrored.positions)
    if not symbols or len(symbols) > STOPS_READ_PER_SYMBOL_AT_MOST:
        return ""
    read, failed = await read_orders_of(exchange, symbols)
    if failed:
        log.warning(
            "stop_check_failed",
            symbols=sorted(failed),
            error="; ".join(failed.values()),
            detail="the mirror's orders stand for them; the full check reads them again",
        )
    if not read:
        return ""
    return mirror_difference(_of(mirrored, read), _of(mirrored, read, rest=True))


async def read_orders_of(
    exchange: Exchange, symbols: Sequence[str]
) -> tuple[dict[str, list[Order]], dict[str, str]]:
    """The open conditional orders of each of `symbols`, one request each (weight 1), sent
    together; and, by symbol, why each read that failed (unreachable, refused, an answer the
    adapter cannot read) did. Anything else raised is raised."""
    if len(symbols) == 1:  # no task to make: ≈ 50 µs of each keeper tick in a backtest
        answers: Sequence[Answer | BaseException] = [await _read(exchange, symbols[0])]
    else:
        answers = await asyncio.gather(
            *(_read(exchange, symbol) for symbol in symbols), return_exceptions=True
        )
    read: dict[str, list[Order]] = {}
    failed: dict[str, str] = {}
    for symbol, answer in zip(symbols, answers, strict=True):
        if isinstance(answer, MarketDataError | RetryLater):
            failed[symbol] = f"openAlgoOrders {symbol}: {answer}"
        elif isinstance(answer, BaseException):
            raise answer
        else:
            read[symbol] = answer
    return read, failed


async def _read(exchange: Exchange, symbol: str) -> Answer:
    try:
        return await exchange.fetch_open_conditional_orders(symbol)
    except (MarketDataError, RetryLater) as error:
        return error


def _of(
    mirrored: ExchangeSnapshot, read: dict[str, list[Order]], *, rest: bool = False
) -> ExchangeSnapshot:
    """The mirror narrowed to the symbols `read`, or (`rest`) with their orders as read: the
    positions are the mirror's in both, already found to agree with REST's."""
    orders = (
        tuple(o for orders in read.values() for o in orders if o.symbol in read)
        if rest
        else tuple(o for o in mirrored.open_conditional_orders if o.symbol in read)
    )
    positions = {symbol: mirrored.positions[symbol] for symbol in read}
    source = SnapshotSource.REST if rest else mirrored.source
    return ExchangeSnapshot(mirrored.taken_at, source, positions, orders)
