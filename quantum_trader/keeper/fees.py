"""Fees of our orders booked without their fills: remembered, read again, booked once. Pure.

Binance's answer to an order, and a lookup of it, carry no commission; only the order's trades
(GET /fapi/v1/userTrades) do. An order whose fills could not be read when it was booked (a
read outage) is booked from its state — the answer (keeper/answer.py) or the lookup
(keeper/planner.py) — and remembered in `Book.fees_unread` with the fee booked then. Every
tick reads its fills once (keeper/keeper.py); once they are read, the fee still due — the
fills' fee, scaled up as `execution_of` scales it when they fall short, less the fee booked —
goes to its position's `fees_usdt` and the order is forgotten, so the fee counts once.

A position that closes first has them read once more before its trade is booked
(keeper/fee_carry.py: one read an order a trade, also where the tick's read failed a moment
before, as it is the last chance); if that fails, the trade is booked without them and says
so (`trade_fees_incomplete`), and the orders stay remembered against that closed trade
(`UnreadFees.trade`). Their reads go on each tick; once every one of them is read (or given
up), the trade is amended by the fees read (`TradeFees`, carried out by keeper/fee_carry.py:
`trade_fees_amended`). An answer listing none of its trades (Binance's userTrades not
listing them yet) is no read: the order executed, its fee is not 0. One still unread
`keeper.fees_unread_give_up_s` after it was booked is given up (`fees_unread_given_up`).
A growth by hand whose trades were unread when its position closed is remembered against the
trade as well (keeper/added_unread.py) and amends it on its own when read (`amendment`: what
is still remembered against the trade then refers to it as amended).
The books persist them (the repository's state, namespace `FEES_UNREAD`), so after a
restart the reads go on until the same bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import ZERO, ClosedTrade, Fill, Order
from quantum_trader.keeper.book import Book, TradeFees, UnreadFees
from quantum_trader.keeper.booking import execution_of, stored_sum
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.plan import Note, Observation
from quantum_trader.keeper.trade_ref import TradeRef
from quantum_trader.record import replace

FEES_UNREAD = "fees_unread"
Records = list[tuple[Order, tuple[Fill, ...]]]


def remembered(order: Order, booked_fee_usdt: Decimal, now: datetime) -> UnreadFees:
    """`order`, booked at `now` with `booked_fee_usdt` after a failed read of its fills."""
    return UnreadFees(order, now, booked_fee_usdt)


def fee_due(unread: UnreadFees, fills: Sequence[Fill]) -> Decimal:
    """The fee the order's `fills` show, less the fee booked for it (USDT)."""
    return execution_of(unread.order, fills).fee_usdt - unread.booked_fee_usdt


def fee_reads(book: Book, reading: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(symbol, client order id) of the orders whose fees are unread, less those in
    `reading` (read this tick anyway)."""
    read = {cid for _, cid in reading}
    return [
        (u.symbol, cid)
        for cid, u in book.fees_unread.items()
        if cid not in read and u.fee_read is None
    ]


def settle_fees(
    book: Draft, observation: Observation, now: datetime, give_up_after: timedelta
) -> tuple[Records, list[Note], list[TradeFees]]:
    """Book the fees of the orders whose fills this tick read, give up those unread for
    `give_up_after`; the orders with their fills to record, the notes to log, and the closed
    trades to amend (those whose orders are now all read or given up, some read)."""
    records: Records = []
    notes: list[Note] = []
    for cid, unread in list(book.fees_unread.items()):
        if unread.fee_read is not None:  # read: its trade waits for its other orders
            continue
        fills = observation.fills.get(cid)
        if fills:  # none listed for an order that executed is no read: not a fee of 0
            records.append((unread.order, tuple(fills)))
            due = fee_due(unread, fills)
            if unread.trade is not None:
                book.fees_unread[cid] = replace(unread, fee_read=due)
                continue
            del book.fees_unread[cid]
            notes.append(_booked(book, unread, due))
        elif (fills is not None or cid in observation.fills_unread) and (
            now - unread.since >= give_up_after
        ):
            del book.fees_unread[cid]
            whose = "the position's" if unread.trade is None else "its closed trade's"
            detail = (
                f"{cid}: fills unread (or none listed) since {unread.since.isoformat()}; "
                "its fee is left out "
                f"of {whose} fees (booked {unread.booked_fee_usdt} USDT)"
            )
            notes.append(Note("fees_unread_given_up", unread.symbol, detail, warning=True))
    return records, notes, amendments(book)


def amendments(book: Draft) -> list[TradeFees]:
    """The trades all of whose remembered orders are read, each order forgotten."""
    by_trade: dict[TradeRef, list[UnreadFees]] = {}
    for unread in book.fees_unread.values():
        if unread.trade is not None:
            by_trade.setdefault(unread.trade, []).append(unread)
    made = []
    for trade, orders in by_trade.items():
        read = [u.fee_read for u in orders if u.fee_read is not None]
        if len(read) < len(orders):
            continue
        for unread in orders:
            del book.fees_unread[unread.client_order_id]
        cids = tuple(sorted(u.client_order_id for u in orders))
        made.append(amendment(book, trade, sum(read, ZERO), cids))
    return made


def amendment(book: Draft, trade: TradeRef, fee: Decimal, what: tuple[str, ...]) -> TradeFees:
    """`trade` amended by `fee` (of `what`); the other fees still remembered against it — of
    orders of ours, of a growth by hand (keeper/added_unread.py), each amended on its own —
    now against the trade so amended, which their own amendment finds stored
    (keeper/fee_carry.py `amend`)."""
    now = replace(trade, fees_usdt=stored_sum(stored_sum(trade.fees_usdt) + fee))  # as `amend`
    for cid, unread in list(book.fees_unread.items()):
        if unread.trade == trade:
            book.fees_unread[cid] = replace(unread, trade=now)
    for symbol, waiting in list(book.added_unread.items()):
        if waiting.trade == trade:
            book.added_unread[symbol] = replace(waiting, trade=now)
    return TradeFees(trade, fee, what)


def amended(trade: ClosedTrade, fees: TradeFees) -> ClosedTrade:
    """`trade` with the fees read after its booking: fees up and net PnL down by them, R
    recomputed as `finish_trade` computes it (keeper/booking.py)."""
    fee, risk = fees.fee_usdt, fees.trade.risk_usdt
    pnl = trade.pnl_usdt - fee
    r_multiple = float(pnl / risk) if risk > ZERO else None
    return replace(trade, fees_usdt=trade.fees_usdt + fee, pnl_usdt=pnl, r_multiple=r_multiple)


def _booked(book: Draft, unread: UnreadFees, fee_usdt: Decimal) -> Note:
    cid = unread.client_order_id
    waiting = book.unpriced.get(unread.symbol)
    if waiting is not None and unread.since <= waiting.since:  # its position's close awaits
        closed = waiting.position  # a price (keeper/unpriced.py): its trade takes the fee
        fees = closed.fees_usdt + fee_usdt
        book.unpriced[unread.symbol] = replace(waiting, position=replace(closed, fees_usdt=fees))
        return Note("fees_read", unread.symbol, f"{cid}: {fee_usdt} USDT added to the fees")
    position = book.positions.get(unread.symbol)
    if position is None:  # closes read them first (carry.py): not expected
        return Note("fees_read", unread.symbol, f"{cid}: {fee_usdt} USDT, no position to add to")
    book.put(replace(position, fees_usdt=position.fees_usdt + fee_usdt))
    return Note("fees_read", unread.symbol, f"{cid}: {fee_usdt} USDT added to the fees")
