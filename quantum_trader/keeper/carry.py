"""Carrying a plan out: persist its bookings, then send its orders, each answer booked at once.

The `Carrier` holds the keeper's books between ticks; only the keeper calls it, under the
keeper's lock. An order's answer is booked as soon as it arrives (keeper/answer.py), so an
entry is protected within the same call, and a lost answer leaves an intent that blocks the
symbol and wakes the keeper for an early tick. The plan's order actions, and what follows when
the exchange refuses one, are keeper/carry_actions.py's (`ActionCarrying`, which the `Carrier`
inherits). The fees read later (keeper/fees.py) are carried out by keeper/fee_carry.py: read
before a closed position's trade is booked, or amending the trade once they are. Each symbol's
bookings of a plan are one write (keeper/bookings.py), so a stop between two writes restarts
into the same bookings (`carry_out`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import partial
from operator import eq

from quantum_trader.domain import (
    ZERO,
    ClosedTrade,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    ReasonCode,
)
from quantum_trader.errors import MarketDataError, OrderRejected, RetryLater
from quantum_trader.keeper.alerts import ALERTED_NOTES, AlertListener
from quantum_trader.keeper.answer import answered
from quantum_trader.keeper.book import (
    Book,
    EntryPlan,
    Intent,
    is_unsettled,
)
from quantum_trader.keeper.booking import (
    TradeDraft,
    approved,
    as_stored,
    executed_at,
    finish_trade,
)
from quantum_trader.keeper.bookings import Bookings, bookings, changed
from quantum_trader.keeper.carry_actions import ActionCarrying
from quantum_trader.keeper.external_saved import ExternalBooked
from quantum_trader.keeper.fee_carry import FeeCarrier, read_fills, say_fills_unread
from quantum_trader.keeper.flat_reads import AFTER_A_TRADE
from quantum_trader.keeper.ids import ClientOrderIds, Purpose
from quantum_trader.keeper.orders import OrderDesk
from quantum_trader.keeper.plan import Context, Plan
from quantum_trader.keeper.protect import PlaceStop, fits_quantity_stop
from quantum_trader.log import get_logger
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import Exchange, Repository, Writes
from quantum_trader.record import replace

log = get_logger("keeper")
_KINDS = {
    Purpose.ENTRY: OrderKind.MARKET,
    Purpose.EXIT: OrderKind.MARKET,
    Purpose.STOP: OrderKind.STOP_MARKET,
    Purpose.TARGET: OrderKind.TAKE_PROFIT_MARKET,
}


class Carrier(ActionCarrying):
    def __init__(
        self,
        exchange: Exchange,
        repository: Repository,
        ledger: Ledger,
        ids: ClientOrderIds,
        book: Book,
        *,
        admits: Callable[[OrderRequest], bool],
        echo: bool,
        wake: asyncio.Event,
        external: ExternalBooked | None = None,
    ) -> None:
        self._exchange = exchange
        self._repository = repository
        self._ledger = ledger
        self._ids = ids
        self._desk = OrderDesk(exchange, repository)
        self._fees = FeeCarrier(exchange, repository, ledger)
        self._admits = admits
        self._echo = echo
        self._wake = wake
        self.book = book
        self.alert_listeners: list[AlertListener] = []
        # By symbol, the account's trades the positions held were reduced by, saved with the
        # bookings that took them (keeper/external_saved.py).
        self.external = ExternalBooked() if external is None else external
        # By symbol, positions an answer of ours booked closed, and the instant after the
        # close's last fill: flat since then, taken by the next whole tick (`answered_closes`).
        self._answered_closes: dict[str, datetime] = {}
        self._cancelled_ahead: set[str] = set()  # keeper/carry_close_all.py
        self._held_off: dict[str, datetime] = {}  # keeper/carry_close_all.py
        self._closes_not_taken: dict[str, tuple[datetime, str]] = {}  # carry_actions.py

    async def carry_out(self, result: Plan, now: datetime, context: Context) -> None:
        """Persist the plan's bookings, then send its orders (each may change the books).

        The bookings are written so that a stop (kill -9, a write refused) between any two
        writes restarts into the same bookings: amendments first (each once, however often
        written: see `amend`); then the symbols no trade of the plan closes in one write
        (keeper/bookings.py: a part exit's order is never saved filled without the smaller
        position, nor a reduction's trades remembered apart from it); then each symbol a
        trade closes in its trade's write (`_book_trade`: the position deleted, a flip's new
        side saved, the orders that closed it settled), so a restart before it finds the
        order unsettled and books the close with its reason."""
        for fees in result.amendments:  # before their orders are forgotten: see `amend`
            await self._fees.amend(fees, now)
        before = self.book
        traded = {d.position.symbol for d in result.trades}
        books = bookings(before, result, result.book, self.external, lambda s: s not in traded)
        if books.writes:
            await self._repository.write(books.writes)
            self.external.keep(books.booked)
        self.book = result.book
        if result.trades:
            last = {d.position.symbol: i for i, d in enumerate(result.trades)}
            for i, draft in enumerate(result.trades):
                then = (before, result) if last[draft.position.symbol] == i else None
                await self._book_trade(approved(draft, before), now, then)
        if result.events:
            await self._repository.record_position_events(result.events)
        for event in result.events:
            log.info(
                "position_event",
                symbol=event.symbol,
                reason=event.reason,
                detail=event.detail,
                price=str(event.price),
                new_stop_price=str(event.new_stop_price),
            )
        for note in result.notes:
            emit = log.error if note.error else log.warning if note.warning else log.info
            emit(note.event, symbol=note.symbol, detail=note.detail)
            if note.event in ALERTED_NOTES:
                self._alert(now, note.symbol, note.event, note.detail)
        if result.actions:  # most ticks send nothing: no coroutine made for it
            await self.act(result.actions, now, context)

    async def keep_positions(self, positions: Mapping[str, Position]) -> None:
        """Book `positions` (the book's symbols, some with new figures) as a plan that only
        moved them would: the changed ones saved, then the book — kept as it is where they
        are its very positions (a step that recorded no new high or low: ≈ 40 % of them)."""
        before = self.book.positions
        if _the_same(before, positions):
            return
        saved = [p for s, p in positions.items() if changed(before.get(s), p)]
        if saved:
            await self._repository.write(Writes(positions=saved))
        self.book = self.book.with_positions_moved(dict(positions))

    async def _funding(self, position: Position) -> Decimal:
        try:
            return await self._exchange.fetch_funding_paid(position.symbol, position.opened_at)
        except (RetryLater, MarketDataError) as error:  # the trade is booked all the same
            log.warning("funding_unavailable", symbol=position.symbol, error=str(error))
            return Decimal(0)

    async def _book_trade(
        self,
        draft: TradeDraft,
        now: datetime,
        then: tuple[Book, Plan] | None,
    ) -> None:
        """A closed position's trade, with the fees read now of its orders booked without
        them (the orders still unread stay in the book, against the trade, as does a growth
        by hand whose trades are unread), and its funding; `then` (the books before the
        plan, and the plan) for the symbol's last trade of the plan: written with the
        position's deletion and what else the plan books for the symbol
        (keeper/bookings.py), in one write."""
        self.book, draft = await self._fees.settle_close(self.book, draft)
        funding = await self._funding(draft.position)
        books = None
        if then is not None:
            symbol = draft.position.symbol
            books = bookings(then[0], then[1], self.book, self.external, partial(eq, symbol))
        await self._record_trade(as_stored(finish_trade(draft, funding)), now, books)

    async def _record_trade(
        self, trade: ClosedTrade, now: datetime, books: Bookings | None
    ) -> None:
        writes = books.writes if books is not None else None
        # Not the row of a position the books hold on the symbol: a flip's other side, which
        # a close booked after its price was awaited (keeper/unpriced.py) leaves unchanged.
        closes = books is not None and trade.symbol not in self.book.positions
        await self._ledger.record_trade(trade, now, closes_position=closes, writes=writes)
        if books is not None:
            self.external.keep(books.booked)
        log.info(
            "position_closed",
            symbol=trade.symbol,
            side=trade.side,
            exit_reason=trade.exit_reason,
            exit_price=str(trade.exit_price),
            pnl_usdt=str(trade.pnl_usdt),
            r_multiple=None if trade.r_multiple is None else round(trade.r_multiple, 3),
        )

    async def send(
        self,
        purpose: Purpose,
        symbol: str,
        side: OrderSide,
        quantity: Decimal,
        now: datetime,
        context: Context,
        *,
        trigger: Decimal | None = None,
        reason: ExitReason | None = None,
        plan: EntryPlan | None = None,
        client_order_id: str | None = None,
        close_position: bool = False,
    ) -> Order | None:
        """Send one order of ours and book the answer; None when the outcome is unknown.
        `client_order_id`: one issued already (an entry's, told its listeners first);
        `close_position`: a close-all stop (keeper/protect.py), sent without a quantity.

        Raises OrderRejected (recorded) when the exchange refuses it, or when it would add
        exposure while the governor allows only reducing orders.
        """
        request = OrderRequest(
            client_order_id or self._ids.next(purpose, symbol, now),
            symbol,
            side,
            _KINDS[purpose],
            ZERO if close_position else quantity,
            trigger_price=trigger,
            reduce_only=purpose is not Purpose.ENTRY,
            close_position=close_position,
        )
        if not self._admits(request):
            raise OrderRejected(
                ReasonCode.REDUCING_ONLY, f"{request.client_order_id} adds exposure"
            )
        intent = Intent(Order.pending(request, now), now, plan, reason)
        self.book = self.book.with_intent(intent)
        try:
            answer = await self._desk.send(intent, now)
        except (OrderRejected, RetryLater):  # refused, or never sent (rate limited)
            self.book = self.book.without_intent(intent.client_order_id)
            raise
        if answer is None:
            unknown = replace(intent.order, status=OrderStatus.UNKNOWN, updated_at=now)
            self.book = self.book.with_intent(replace(intent, order=unknown))
            self._wake.set()
            return None
        if is_unsettled(answer):  # a market order still filling: the ticks settle it
            await self._repository.save_order(answer)
            self.book = self.book.with_intent(replace(intent, order=answer))
            self._wake.set()
            return answer
        fills = await self._answer_fills(answer)
        booked = answered(self.book, intent, answer, fills, now, context, echo=self._echo)
        for draft in booked.trades:  # a close: flat from its last fill (keeper/flat_reads.py)
            last = executed_at(answer, fills, now)
            self._answered_closes[draft.position.symbol] = last + AFTER_A_TRADE
        await self.carry_out(booked, now, context)
        return answer

    def answered_closes(self) -> dict[str, datetime]:
        """The positions our orders' answers booked closed since the last call, by symbol:
        the instant after the close's last fill (Binance's time). The tick's positions may
        still show them held, so no whole tick would read them flat from then — and a stop
        of the daemon before the next tick left no flat read saved for a restart to replay
        a round trip by hand from (the restart campaign, seed 40919)."""
        closes, self._answered_closes = self._answered_closes, {}
        return closes

    async def place_stop_unbooked(
        self, stop: PlaceStop, now: datetime, rules: MarketRules | None
    ) -> Order | None:
        """`stop` sent without its intent saved first: only when nothing can be saved (the
        daemon stops on a StorageFailed, keeper/last_stand.py); a close-all one where no stop
        of its quantity fits `rules` (keeper/protect.py). OrderStateUnknown, like any lost
        answer, is left to the next start, which reads the exchange."""
        close_all = not fits_quantity_stop(stop.quantity, rules)
        request = OrderRequest(
            self._ids.next(Purpose.STOP, stop.symbol, now), stop.symbol, stop.side,
            OrderKind.STOP_MARKET, ZERO if close_all else stop.quantity,
            trigger_price=stop.trigger, reduce_only=True, close_position=close_all,
        )  # fmt: skip
        return await self._exchange.place_order(request)

    async def _answer_fills(self, answer: Order) -> list[Fill] | None:
        """The answered order's fills; None when they could not be read, or none is listed
        yet for what it executed (it is booked from the answer, its fee read on a later tick:
        keeper/fees.py)."""
        if answer.filled_quantity <= 0:
            return []
        fills, why = await read_fills(self._exchange, answer.symbol, answer.client_order_id)
        if fills is None:
            say_fills_unread(answer.client_order_id, why)
        return fills


def _the_same(before: Mapping[str, Position], after: Mapping[str, Position]) -> bool:
    """The very position objects, by the same symbols in the same order."""
    if len(before) != len(after):
        return False
    for (symbol, position), (other, moved) in zip(before.items(), after.items(), strict=True):
        if position is not moved or symbol != other:
            return False
    return True
