"""The fees read later, as the carrier books them (keeper/fees.py says what is read when).

`read_fills` is the one read of an executed order's fills, whoever asks (an answer, a tick,
a close). `FeeCarrier` keeps the remembered orders in the repository's state (`FEES_UNREAD`),
reads the fees of a closed position's orders once more before its trade is booked, and amends
a closed trade booked without some once they are read: through the ledger (the trade row, the
account's and the symbol's statistics), once only, also across a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import ZERO, Fill, Position
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.keeper.added_unread import UnreadAddition, closed_with
from quantum_trader.keeper.book import Book, TradeFees, UnreadFees
from quantum_trader.keeper.booking import TradeDraft, as_stored, stored_sum, trade_risk
from quantum_trader.keeper.fees import FEES_UNREAD, amended, fee_due
from quantum_trader.keeper.trade_ref import TradeRef
from quantum_trader.log import get_logger
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import Exchange, Repository, StateWrite
from quantum_trader.record import replace

log = get_logger("keeper")


NOT_LISTED_YET = "no trades listed yet for what it executed"


async def read_fills(
    exchange: Exchange, symbol: str, client_order_id: str
) -> tuple[list[Fill] | None, str]:
    """The fills of an order of ours that executed, or None and why there are none to book:
    the exchange unreachable, an answer the adapter cannot read, or none listed yet (Binance's
    userTrades may lag a fill, and an executed order's fee is not 0). Its fee is then read
    later (keeper/fees.py)."""
    try:
        fills = await exchange.fetch_fills(symbol, client_order_id)
    except (MarketDataError, RetryLater) as error:
        return None, str(error)
    return (fills, "") if fills else (None, NOT_LISTED_YET)


def say_fills_unread(client_order_id: str, why: str, *, again: bool = False) -> None:
    """The line for fills `read_fills` could not read: a warning, but an info line where
    none is listed yet (Binance lists a trade a while after it: on a lagging exchange that
    was a warning after every fill, an outside probe, 2026-12-06; the fee's later lines say
    how it ends), and a debug line for a fee read `again` (said when it was booked)."""
    say = log.debug if again else log.info if why == NOT_LISTED_YET else log.warning
    say("fills_read_failed", client_order_id=client_order_id, error=why)


def fee_writes(
    before: Mapping[str, UnreadFees],
    after: Mapping[str, UnreadFees],
    symbols: Callable[[str], bool],
) -> tuple[list[StateWrite], list[tuple[str, str]]]:
    """The state entries to save and to delete (`FEES_UNREAD`) that take the remembered
    orders of the `symbols` accepted from `before` to `after`: written with the bookings
    that added or settled them (keeper/carry.py)."""
    if before is after or not (before or after):  # most ticks
        return [], []
    saved: list[StateWrite] = [
        (FEES_UNREAD, cid, after[cid].to_dict())
        for cid in sorted(after)
        if before.get(cid) != after[cid] and symbols(after[cid].symbol)  # new, bound, or read
    ]
    deleted = [
        (FEES_UNREAD, cid)
        for cid in sorted(before.keys() - after.keys())
        if symbols(before[cid].symbol)
    ]
    return saved, deleted


class FeeCarrier:
    def __init__(self, exchange: Exchange, repository: Repository, ledger: Ledger) -> None:
        self._exchange = exchange
        self._repository = repository
        self._ledger = ledger

    async def settle_close(self, book: Book, draft: TradeDraft) -> tuple[Book, TradeDraft]:
        """`book` (the very book when nothing changes) with the orders still unread, and the
        closed position with the fees of its orders booked without their fills, read now
        (keeper/fees.py); the orders still unread stay remembered against the trade, which
        is amended once they are read (`amend`), and the trade says so once. So does a
        growth by hand of the position whose trades are unread (keeper/added_unread.py)."""
        position = draft.position
        unread = [
            u for u in book.fees_unread.values() if u.symbol == position.symbol and u.trade is None
        ]
        missing: list[UnreadFees] = []
        if unread:
            fee, missing = await self._read_at_close(unread)
            position = replace(position, fees_usdt=position.fees_usdt + fee)
            draft = replace(draft, position=position)
        trade = TradeRef(
            position.symbol,
            position.entry_order_id,
            draft.closed_at,
            position.fees_usdt,
            trade_risk(draft),
        )
        if unread:
            settled = {u.client_order_id for u in unread}
            left = {c: u for c, u in book.fees_unread.items() if c not in settled}
            left.update((u.client_order_id, replace(u, trade=trade)) for u in missing)
            book = replace(book, fees_unread=left)
        added = closed_with(trade, position, book.added_unread)
        if added is not None:
            book = replace(book, added_unread={**book.added_unread, position.symbol: added})
        if missing or added is not None:
            _incomplete(position, [u.client_order_id for u in missing], added)
        return book, draft

    async def _read_at_close(self, unread: list[UnreadFees]) -> tuple[Decimal, list[UnreadFees]]:
        """The fee due of the `unread` orders whose fills read now, and those still unread."""
        fee, missing = ZERO, []
        for one in unread:  # a failure is said once for the trade (`_incomplete`)
            fills, _ = await read_fills(self._exchange, one.symbol, one.client_order_id)
            if fills is None:  # read on later ticks
                missing.append(one)
                continue
            await self._repository.record_fills(fills)
            fee += fee_due(one, fills)
        return fee, missing

    async def amend(self, fees: TradeFees, now: datetime) -> None:
        """Amend a closed trade by the fees read after its booking, through the ledger (trade
        row, account and symbol statistics). Once only: the trade's stored fees are compared
        with those it was booked with, so an amendment written before a restart (its orders
        not yet forgotten) is not made again."""
        ref = fees.trade
        key = (ref.symbol, ref.entry_order_id, ref.closed_at)
        stored = next(
            (
                t
                for t in await self._repository.closed_trades()
                if (t.symbol, t.entry_order_id, t.closed_at) == key
            ),
            None,
        )
        booked = stored_sum(ref.fees_usdt)  # as the trade's row stores them (booking.py)
        after = stored_sum(booked + fees.fee_usdt)  # as `amended` leaves them
        if stored is not None and stored.fees_usdt == after != booked:
            log.info("trade_fees_amended_already", symbol=ref.symbol, orders=list(fees.orders))
            return
        if stored is None or stored.fees_usdt != booked:
            why = "not found" if stored is None else f"its fees are {stored.fees_usdt}"
            log.warning(
                "trade_fees_not_amended",
                symbol=ref.symbol,
                entry_order_id=ref.entry_order_id,
                orders=list(fees.orders),
                fee_usdt=str(fees.fee_usdt),
                detail=f"trade closed at {ref.closed_at.isoformat()} {why}",
            )
            return
        trade = as_stored(amended(stored, fees))
        if trade != stored:
            await self._ledger.amend_trade(trade, now)
        log.info(
            "trade_fees_amended",
            symbol=ref.symbol,
            entry_order_id=ref.entry_order_id,
            closed_at=ref.closed_at.isoformat(),
            orders=list(fees.orders),
            fee_usdt=str(fees.fee_usdt),
            fees_usdt=str(trade.fees_usdt),
            pnl_usdt=str(trade.pnl_usdt),
            r_multiple=None if trade.r_multiple is None else round(trade.r_multiple, 3),
        )


def _incomplete(position: Position, orders: list[str], added: UnreadAddition | None) -> None:
    """The one line of a trade booked without some fees: of the `orders` of ours whose fills
    were unread, and of a growth by hand whose trades were (`added`)."""
    without = ["these orders' fees: their fills were unread"] if orders else []
    if added is not None:
        without.append(f"the fee of {added.quantity} added by hand: its trades were unread")
    log.warning(
        "trade_fees_incomplete",
        symbol=position.symbol,
        entry_order_id=position.entry_order_id,
        orders=orders,
        detail=(
            f"the trade is booked without {'; and '.join(without)}; they are read each tick "
            "and the trade amended once they are"
        ),
    )
