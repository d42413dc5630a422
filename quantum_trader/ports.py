"""Ports: the interfaces the core depends on. `app.py` is the only place that picks the
implementations (paper or ccxt exchange, live/simulated/manual clock, SQLite or in-memory
repository, replay or exchange feed, rule agent or ensemble)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from quantum_trader.domain import (
    Balance,
    Bars,
    ClosedTrade,
    Decision,
    EquitySnapshot,
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    Fill,
    MarketRules,
    MarketSnapshot,
    Order,
    OrderRequest,
    Position,
    PositionEvent,
    SignalSeries,
    StreamHealth,
    StreamMoves,
)
from quantum_trader.record import record


class Clock(Protocol):
    def now(self) -> datetime:
        """Current UTC time (tz-aware)."""
        ...

    async def sleep_until(self, deadline: datetime) -> None:
        """Return once `now()` has reached `deadline`."""
        ...


class Exchange(Protocol):
    """A USD-M futures account in one-way position mode.

    Conditional orders (STOP_MARKET / TAKE_PROFIT_MARKET) are listed and cancelled separately
    from plain orders, as on Binance's Algo Order API. Every order carries our client order id.
    """

    async def load_markets(self) -> Mapping[str, MarketRules]: ...

    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The requested mark prices, in one request. A symbol the exchange does not list
        (or lists unreadably) is left out; MarketDataError when none could be read."""
        ...

    async def fetch_balance(self) -> Balance: ...

    async def fetch_positions(self) -> list[ExchangePosition]: ...

    async def set_leverage(self, symbol: str, leverage: int) -> None: ...

    async def place_order(self, request: OrderRequest) -> Order:
        """Send a market or conditional order. Raises OrderRejected (refused),
        OrderStateUnknown (the answer was lost, or the client id exists already: look it up)
        or RetryLater (refused before execution, e.g. RateLimited: resend the same request
        later). The answer may report a partial execution (`filled_quantity`)."""
        ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        """Look an order (plain or conditional) up by our client order id; None if unknown.
        Raises RetryLater (not read) or MarketDataError (an answer that cannot be read): the
        order's state is not known."""
        ...

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        """Return once the order is cancelled. Raises OrderRejected when it was no longer open
        (already final — filled, perhaps, just before — or unknown): not cancelled, it ended
        otherwise and a lookup says how; OrderStateUnknown when the exchange did not confirm
        the cancel; RetryLater or MarketDataError when the order could not be read after
        Binance said it is not open (the cancel may be tried again)."""
        ...

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]: ...

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        """Every execution on `symbol` from `start` to `end` (at most 7 days apart), whoever
        sent its order, oldest first; `client_order_id` is the order's id as the exchange
        lists it (Binance's userTrades carry its order id, not the client's). Raises
        RetryLater or MarketDataError when they cannot all be read."""
        ...

    async def fetch_force_orders(
        self, symbol: str, start: datetime, end: datetime
    ) -> dict[str, ExitReason]:
        """The orders the exchange itself sent on `symbol` from `start` to `end` (at most 7
        days back) to close the account's position: each order's id, as `fetch_account_fills`
        lists it, to LIQUIDATION or ADL. Raises RetryLater or MarketDataError when they cannot
        all be read."""
        ...

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        """Funding paid on `symbol` since `since` (positive = paid, negative = received)."""
        ...

    async def close(self) -> None: ...


class EntryMarks(Protocol):
    """The price an entry is sized at in testnet/live, where the market view's price (the
    last closed bar's close) may be minutes old, an hour on 1 h bars (market/live_marks.py).
    None when it cannot be read: the bar's close is used, as in paper mode and backtests."""

    async def mark(self, symbol: str, now: datetime) -> Decimal | None: ...


class ExchangeStreams(Protocol):
    """The exchange's pushed state (Binance USD-M websocket streams), mirrored in memory.

    `run` keeps the mark-price stream and the user-data stream (order, conditional-order,
    account and position updates) connected until `stopping` is set: it keeps the listen key
    alive, reconnects with backoff, and after every (re)connect seeds the mirror from a REST
    snapshot before calling itself usable again, so no event is lost in a gap. Events are
    applied idempotently (a duplicate or an older update never overwrites a newer one).
    Readers get None whenever the mirror cannot be trusted, and then read REST.
    """

    async def run(self, stopping: asyncio.Event) -> None: ...

    @property
    def updated(self) -> asyncio.Event:
        """Set when a user-data event changed the mirror; the keeper clears it and wakes."""
        ...

    def health(self) -> StreamHealth: ...

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        """The mirrored account, or None while the user-data stream is not usable."""
        ...

    def mark_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal] | None:
        """The fresh streamed marks of `symbols`: one left out is missing or stale (read it
        over REST); None when none of them is fresh."""
        ...

    def now(self) -> datetime:
        """The time on the clock that stamps the receipt of every user-data event. A REST read
        that may reseed the mirror is stamped with it just before it is sent."""
        ...

    def moved(self) -> StreamMoves:
        """By symbol, when the latest user-data event about its position or a fill on it was
        received (on `now()`'s clock), whether the mirror was usable or not, and when the
        read of its last seed was sent (events before it may have been lost): where the
        keeper read a symbol flat at a look and again at the next, a person may have opened
        and closed a position between (keeper/flat_reads.py)."""
        ...

    def reseed(self, snapshot: ExchangeSnapshot) -> None:
        """Replace the mirror with a REST snapshot that disagreed with it (a missed event).
        The events received since each of its reads was sent (`snapshot.taken_at`, the
        positions'; `conditional_orders_taken_at`) are applied again on top of it, not those
        received before: the reads show them (execution/account_mirror.py). A conditional
        order of ours the mirror holds firing that the snapshot leaves out stays listed."""
        ...

    def apply_lookups(self, found: Mapping[str, Order | None]) -> None:
        """Our orders as the keeper's lookups by client order id `found` them (None: the
        exchange no longer knows it): one that ended ends the mirror's, whose end event may
        have been lost; the lookup's other states change nothing."""
        ...


class MarketFeed(Protocol):
    """Closed candles for the universe, refreshed incrementally."""

    @property
    def symbols(self) -> Sequence[str]: ...

    async def snapshot(self, now: datetime) -> MarketSnapshot:
        """Closed bars up to `now` (never a bar still forming) and the current funding rates."""
        ...


class SignalSource(Protocol):
    """Signals for every bar of every symbol, computed vectorized and without look-ahead.

    Pure and synchronous; heavy implementations are called from a worker thread.
    """

    @property
    def name(self) -> str: ...

    @property
    def warmup_hours(self) -> int:
        """Hours of closed history needed before the first meaningful signal."""
        ...

    @property
    def history_hours(self) -> int:
        """Hours of closed bars a signal reads back by position: after a gap in a symbol's
        candles its signal is not used until that many have closed (market/gaps.py)."""
        ...

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        """Series aligned with each symbol's bars. With `tail`, only the last `tail` rows must
        be computed (the live cycle asks for 1); earlier rows may be HOLD with confidence 0."""
        ...


StateWrite = tuple[str, str, Mapping[str, Any]]
"""A state entry to insert or replace, written with a trade: (namespace, key, JSON payload)."""


@record
class Writes:
    """Writes that go together (`Repository.write`): one transaction, so a stop (kill -9, a
    write refused) leaves all of them or none. Applied in this order: orders saved (as
    `save_order`), fills recorded, positions deleted, positions saved, state entries deleted,
    state entries saved."""

    orders: Sequence[Order] = ()
    fills: Sequence[Fill] = ()
    positions_deleted: Sequence[str] = ()  # by symbol
    positions: Sequence[Position] = ()
    state_deleted: Sequence[tuple[str, str]] = ()  # (namespace, key)
    state: Sequence[StateWrite] = ()

    def __bool__(self) -> bool:
        return bool(
            self.orders
            or self.fills
            or self.positions_deleted
            or self.positions
            or self.state_deleted
            or self.state
        )


class Repository(Protocol):
    """Persistence. Orders, fills, positions and trades are durable when the call returns;
    decisions, position events and equity snapshots may be buffered until `flush()`."""

    async def save_order(self, order: Order) -> None: ...

    async def get_order(self, client_order_id: str) -> Order | None: ...

    async def orders(self, symbol: str | None = None) -> list[Order]: ...

    async def open_orders(self) -> list[Order]:
        """Orders still PENDING, OPEN or UNKNOWN."""
        ...

    async def record_fills(self, fills: Sequence[Fill]) -> None: ...

    async def fills(self, symbol: str | None = None) -> list[Fill]: ...

    async def fill_count(self) -> int:
        """How many fills `fills()` holds, without reading them."""
        ...

    async def save_position(self, position: Position) -> None: ...

    async def delete_position(self, symbol: str) -> None: ...

    async def open_positions(self) -> list[Position]: ...

    async def record_closed_trade(
        self,
        trade: ClosedTrade,
        *,
        closes_position: bool = False,
        state: Sequence[StateWrite] = (),
        writes: Writes | None = None,
    ) -> ClosedTrade | None:
        """Store a round trip and the `state` entries it changes (as `save_state` would) in one
        transaction: a crash leaves all or none. With `closes_position`, the symbol's open
        position is deleted in it too, never gone without its trade; `writes` are written in
        it after that deletion (as `write` would: a flip's new side, the orders that closed
        the position). Return None when stored; where a trade of the same symbol, entry order
        id and close time is stored already, return that one and write neither `trade` nor
        `state` (the position is still deleted, and `writes` written)."""
        ...

    async def closed_trades(self) -> list[ClosedTrade]:
        """Every stored trade, by closing time, then arrival."""
        ...

    async def latest_closed_trades(self, count: int) -> list[ClosedTrade]:
        """The last `count` of `closed_trades()`, in the same order, without reading the rest."""
        ...

    async def closed_trade_count(self) -> int:
        """How many trades `closed_trades()` holds, without reading them."""
        ...

    async def write(self, writes: Writes) -> None:
        """Write `writes` in one transaction (a crash leaves all or none)."""
        ...

    async def amend_closed_trade(
        self, trade: ClosedTrade, *, state: Sequence[StateWrite] = ()
    ) -> ClosedTrade | None:
        """Replace the stored trade with `trade`'s (symbol, entry order id, close time) by
        `trade` (a correction, e.g. fees read after it was booked: keeper/fees.py), and write
        `state` in the same transaction; return the trade as it was stored. Nothing is written
        (`state` neither) when there is no such trade (None) or it equals `trade`."""
        ...

    async def record_decisions(self, decisions: Sequence[Decision]) -> None: ...

    async def decision_counts(self) -> dict[tuple[str, str], int]:
        """How many decisions each (gate, reason code) pair has had."""
        ...

    async def record_position_events(self, events: Sequence[PositionEvent]) -> None: ...

    async def position_events(self) -> list[PositionEvent]: ...

    async def record_equity(self, snapshot: EquitySnapshot) -> None: ...

    async def equity_history(self) -> list[EquitySnapshot]: ...

    async def latest_equity(self, count: int) -> list[EquitySnapshot]:
        """The last `count` of `equity_history()`, in the same order, without reading the rest."""
        ...

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        """Durable JSON state (governor, symbol stats, lifecycle stages, Q-table)."""
        ...

    async def load_state(self, namespace: str) -> dict[str, dict[str, Any]]: ...

    async def delete_state(self, namespace: str, key: str) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...
