"""The ExchangeStreams port on Binance USD-M: mark prices and the user-data stream through
ccxt.pro's websocket client, mirrored in memory (`AccountMirror`).

Two connections, each in its own loop until `stopping` is set:
- market: `!markPrice@arr@1s` on Binance's /market route. Mark prices arrive every second, so
  a stream with no message for `exchange.stream_silence_s` is silent: it is dropped and
  reconnected; `mark_prices` gives the marks no older than that, and leaves out the others
  (stale: their readers read them over REST).
- user data: a listen key (POST /fapi/v1/listenKey), kept alive every
  `exchange.listen_key_keepalive_s` (PUT; Binance expires it after 60 minutes without), and
  the /private route filtered to the events we mirror. After every (re)connect the mirror is
  seeded from a REST snapshot taken after the connection opened (events received since each
  of its reads was sent are re-applied on top), and only then is the stream usable.
  listenKeyExpired, a keep-alive that finds the key gone, or an unanswered ping (ccxt's
  keep-alive) ends the connection; a malformed event, or a position on a symbol whose
  leverage is unknown, triggers a reseed.
Reconnects back off exponentially (1 s doubling up to `exchange.stream_backoff_max_s`).
Binance ends every connection at its 24 hour mark: a close by the server then is an info line
(`exchange_stream_renewed`), any other end a warning (`exchange_stream_down`). Every time
comes from the clock passed in, so tests run it in accelerated time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    Order,
    SnapshotSource,
    StreamHealth,
    StreamMoves,
)
from quantum_trader.errors import (
    MarketDataError,
    OperatorActionRequired,
    QuantumTraderError,
    RetryLater,
)
from quantum_trader.execution.account_mirror import AccountMirror
from quantum_trader.execution.binance_events import (
    MARK_PRICE_STREAM,
    USER_EVENTS,
    ListenKeyExpired,
    parse_mark_prices,
    parse_user_event,
)
from quantum_trader.execution.binance_sockets import BinanceSockets, StreamClosed
from quantum_trader.log import get_logger
from quantum_trader.ports import Clock

log = get_logger("binance_streams")
REPLAY_S = 300.0  # events kept to re-apply over a REST snapshot
KEEP_FINAL_ORDERS_S = 3600.0
FIRST_BACKOFF_S = 1.0
# Binance: "a single connection is only valid for 24 hours; expect to be disconnected at the
# 24 hour mark". A server's close within this window of that mark is that one.
CONNECTION_RENEWED = (timedelta(hours=23, minutes=50), timedelta(hours=24, minutes=10))


class StreamRest(Protocol):
    """The REST calls the streams need (CcxtExchange provides them)."""

    @property
    def symbol_by_id(self) -> Mapping[str, str]: ...

    def leverage_by_symbol(self) -> dict[str, int]: ...

    async def fetch_positions(self) -> list[ExchangePosition]: ...

    async def fetch_open_conditional_orders(self) -> list[Order]: ...

    async def create_listen_key(self) -> str: ...

    async def keep_alive_listen_key(self) -> bool: ...

    async def close_listen_key(self) -> None: ...


class _Backoff:
    """Exponential delays on the streams' clock: 1 s, doubling, up to `max_s`; back to 1 s
    once a connection has stayed up for `max_s`."""

    def __init__(self, clock: Clock, max_s: float) -> None:
        self._clock = clock
        self._max_s = max_s
        self._next_s = FIRST_BACKOFF_S

    def note_up_since(self, since: datetime) -> None:
        if (self._clock.now() - since).total_seconds() >= self._max_s:
            self._next_s = FIRST_BACKOFF_S

    async def wait(self, *interrupts: asyncio.Event | asyncio.Future[Any]) -> None:
        """Sleep the next delay, or until one of `interrupts` happens."""
        delay, self._next_s = self._next_s, min(self._next_s * 2, self._max_s)
        deadline = self._clock.now() + _s(delay)
        await _until_first(*interrupts, self._clock.sleep_until(deadline))


class BinanceStreams:
    """Binance USD-M streams mirrored in memory; see the module docstring."""

    def __init__(
        self, sockets: BinanceSockets, rest: StreamRest, clock: Clock, settings: ExchangeSettings
    ) -> None:
        self._sockets = sockets
        self._rest = rest
        self._clock = clock
        self._silence = _s(settings.stream_silence_s)
        self._keepalive = _s(settings.listen_key_keepalive_s)
        self._backoff_max_s = settings.stream_backoff_max_s
        self._mirror = AccountMirror(REPLAY_S, KEEP_FINAL_ORDERS_S)
        self._marks: dict[str, tuple[Decimal, datetime]] = {}
        self._marks_unread: set[str] = set()  # our symbols whose streamed row was unreadable
        self._updated = asyncio.Event()
        self._wake = asyncio.Event()  # the user session must reseed or reconnect
        self._key_expired = False
        self._user_connected = self._market_connected = self._usable = False
        self._last_message_at: datetime | None = None
        self._last_mark_at: datetime | None = None
        self._reconnects = self._gaps = 0
        self._detail = "not started"

    @classmethod
    def create(cls, settings: ExchangeSettings, rest: StreamRest, clock: Clock) -> BinanceStreams:
        """Streams of Binance (or of `exchange.ws_url`), seeded through `rest`."""
        return cls(BinanceSockets.create(settings), rest, clock, settings)

    # -- the port ----------------------------------------------------------------------------

    @property
    def updated(self) -> asyncio.Event:
        return self._updated

    def health(self) -> StreamHealth:
        return StreamHealth(
            connected=self._user_connected and self._market_connected,
            usable=self._usable,
            last_message_at=self._last_message_at,
            reconnects=self._reconnects,
            gaps_detected=self._gaps,
            detail=self._detail,
        )

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        if not self._usable or self._mirror.needs_seed:
            return None
        return self._mirror.snapshot(now)

    def mark_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal] | None:
        fresh = {symbol: held[0] for symbol in symbols
                 if (held := self._marks.get(symbol)) is not None
                 and now - held[1] <= self._silence}  # fmt: skip
        return fresh or None

    def now(self) -> datetime:
        return self._clock.now()  # the clock `_on_user` stamps each event's receipt with

    def moved(self) -> StreamMoves:
        return self._mirror.moved

    def reseed(self, snapshot: ExchangeSnapshot) -> None:
        self._gaps += 1
        self._mirror.seed(snapshot, self._rest.leverage_by_symbol())
        log.warning("stream_mirror_reseeded", positions=len(snapshot.positions))
        self._updated.set()

    def apply_lookups(self, found: Mapping[str, Order | None]) -> None:
        self._mirror.apply_lookups(found)  # the keeper's own tick: no wake

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep both streams connected until `stopping` is set, then close them.

        Raises OperatorActionRequired (e.g. the API key refused) as itself, not grouped.
        """
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._market_loop(stopping), name="market-stream")
                group.create_task(self._user_loop(stopping), name="user-data-stream")
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finally:
            self._usable = self._user_connected = self._market_connected = False
            self._detail = "stopped"
            await self._sockets.close()
        with contextlib.suppress(QuantumTraderError):
            await self._rest.close_listen_key()  # an orderly stop: the key is not needed

    # -- market stream -----------------------------------------------------------------------

    async def _market_loop(self, stopping: asyncio.Event) -> None:
        backoff = _Backoff(self._clock, self._backoff_max_s)
        while not stopping.is_set():
            url = self._sockets.market_url()
            try:
                closed = await self._sockets.open(url, [MARK_PRICE_STREAM], self._on_market)
            except StreamClosed as error:
                self._note_down("market", str(error), stopping)
            else:
                up_since = self._last_mark_at = self._clock.now()
                self._market_connected = True
                why = await _until_first(stopping, closed, self._silent())
                self._market_connected = False
                # Said when seen: closing a dead connection may wait out its close timeout.
                self._note_down("market", why, stopping, self._closed_after(closed, up_since))
                await self._end(url, closed)
                backoff.note_up_since(up_since)
            if not stopping.is_set():
                self._reconnects += 1
                await backoff.wait(stopping)

    def _on_market(self, message: Any) -> None:
        now = self._clock.now()
        self._last_message_at = self._last_mark_at = now
        prices, unread = parse_mark_prices(message, self._rest.symbol_by_id)
        for symbol, price in prices.items():
            self._marks[symbol] = (price, now)
        if unread and set(unread) != self._marks_unread:  # its mark goes stale: REST reads it
            log.warning(
                "mark_price_unreadable",
                symbols=sorted(unread),
                error="; ".join(unread.values()),
                detail="left out of the stream's marks; the others' kept",
            )
        self._marks_unread = (self._marks_unread - set(prices)) | set(unread)

    async def _silent(self) -> str:
        """Return once the market stream has been silent for `stream_silence_s`."""
        while True:
            last = self._last_mark_at or self._clock.now()
            if self._clock.now() - last >= self._silence:
                return f"silent for {self._silence.total_seconds():g} s"
            await self._clock.sleep_until(last + self._silence)

    async def _end(self, url: str, closed: asyncio.Task[None]) -> None:
        """Close the connection to `url` and collect its task."""
        await self._sockets.drop(url)
        with contextlib.suppress(StreamClosed, asyncio.CancelledError):
            await closed

    # -- user-data stream --------------------------------------------------------------------

    async def _user_loop(self, stopping: asyncio.Event) -> None:
        backoff = _Backoff(self._clock, self._backoff_max_s)
        while not stopping.is_set():
            up_since = self._clock.now()
            lived = None
            try:
                why, lived = await self._user_session(stopping, backoff)
            except OperatorActionRequired:
                raise
            except QuantumTraderError as error:  # StreamClosed, RetryLater, MarketDataError
                why = f"{type(error).__name__}: {error}"
            self._usable = self._user_connected = False
            self._mirror.lost()
            self._note_down("user-data", why, stopping, lived)
            backoff.note_up_since(up_since)
            if not stopping.is_set():
                self._reconnects += 1
                await backoff.wait(stopping)

    async def _user_session(
        self, stopping: asyncio.Event, backoff: _Backoff
    ) -> tuple[str, timedelta | None]:
        """Why the session ended, and how long its connection lived if the server closed it."""
        listen_key = await self._rest.create_listen_key()
        url = self._sockets.user_url(listen_key, USER_EVENTS)
        self._key_expired = False
        self._mirror.needs_seed = True
        closed = await self._sockets.open(url, (), self._on_user)
        up_since = self._clock.now()
        self._user_connected = True
        keepalive = asyncio.ensure_future(self._keep_alive())
        try:
            why = await self._serve(stopping, closed, keepalive, backoff)
            return why, self._closed_after(closed, up_since)
        finally:
            self._usable = self._user_connected = False
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, QuantumTraderError):
                await keepalive
            await self._end(url, closed)

    async def _serve(
        self,
        stopping: asyncio.Event,
        closed: asyncio.Task[None],
        keepalive: asyncio.Future[str],
        backoff: _Backoff,
    ) -> str:
        """Seed, and reseed whenever the mirror asks, until the connection has to end."""
        while True:
            self._wake.clear()
            if stopping.is_set():
                return "stopping"
            if closed.done():
                return str(closed.exception()) if not closed.cancelled() else "cancelled"
            if keepalive.done():
                return keepalive.result()
            if self._key_expired:
                return "listen key expired"
            if self._mirror.needs_seed:
                try:
                    await self._seed()
                except (RetryLater, MarketDataError) as error:
                    log.warning("stream_seed_failed", error=str(error))
                    await backoff.wait(stopping, closed, keepalive)
                continue
            await _until_first(stopping, closed, keepalive, self._wake)

    async def _seed(self) -> None:
        self._usable = False
        snapshot = await self._read_snapshot()
        self._mirror.seed(snapshot, self._rest.leverage_by_symbol())
        self._usable = not self._mirror.needs_seed
        self._detail = "streaming"
        log.info("user_data_stream_seeded", positions=len(snapshot.positions),
                 open_conditional_orders=len(snapshot.open_conditional_orders))  # fmt: skip
        self._updated.set()

    async def _read_snapshot(self) -> ExchangeSnapshot:
        """Positions and the open conditional orders from REST, each read stamped when it is
        sent on the clock that stamps the events' receipt: the seed re-applies the events
        received since (account_mirror.py)."""
        positions_sent = self._clock.now()
        positions = await self._rest.fetch_positions()
        orders_sent = self._clock.now()
        return ExchangeSnapshot(
            positions_sent,
            SnapshotSource.REST,
            {p.symbol: p for p in positions},
            tuple(await self._rest.fetch_open_conditional_orders()),
            orders_taken_at=orders_sent,
        )

    async def _keep_alive(self) -> str:
        """Return once a keep-alive finds the listen key gone."""
        while True:
            await self._clock.sleep_until(self._clock.now() + self._keepalive)
            try:
                if not await self._rest.keep_alive_listen_key():
                    return "keep-alive found the listen key gone"
            except RetryLater as error:
                log.warning("listen_key_keepalive_failed", error=str(error))

    def _on_user(self, message: Any) -> None:
        now = self._clock.now()
        self._last_message_at = now
        try:
            event = parse_user_event(message, self._rest.symbol_by_id)
        except MarketDataError as error:
            log.error("user_data_event_malformed", error=str(error))
            self._gap()
            return
        if isinstance(event, ListenKeyExpired):
            self._key_expired = True
            self._usable = False
            self._wake.set()
        elif event is not None and self._mirror.apply(event, now):
            if self._mirror.needs_seed:
                self._gap()
            self._updated.set()

    def _gap(self) -> None:
        self._mirror.lost()
        self._gaps += 1
        self._usable = False
        self._mirror.needs_seed = True
        self._wake.set()

    def _closed_after(self, closed: asyncio.Task[None], up_since: datetime) -> timedelta | None:
        """How long a connection lived, if it ended by its own close (not by us)."""
        ended = closed.done() and not closed.cancelled()
        return self._clock.now() - up_since if ended else None

    def _note_down(
        self, stream: str, why: str, stopping: asyncio.Event, lived: timedelta | None = None
    ) -> None:
        if stopping.is_set():
            log.info("exchange_stream_closed", stream=stream)
            return
        self._detail = f"{stream} stream down: {why}"
        if lived is not None and CONNECTION_RENEWED[0] <= lived <= CONNECTION_RENEWED[1]:
            detail = "Binance ends every connection at 24 h; reconnecting"
            log.info("exchange_stream_renewed", stream=stream, reason=why, detail=detail)
            return
        log.warning("exchange_stream_down", stream=stream, reason=why)


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


async def _until_first(*waits: asyncio.Event | asyncio.Future[Any] | Awaitable[Any]) -> str:
    """Wait until the first of `waits` completes: an Event until set, a future or task until
    done (it is left to its owner), a coroutine until it returns (then cancelled if another
    came first). Returns the first's result if it is a string, a StreamClosed's message, or
    ""; any other exception of the first propagates."""
    started: list[asyncio.Future[Any]] = []
    futures: list[asyncio.Future[Any]] = []
    for wait in waits:
        if isinstance(wait, asyncio.Future):
            futures.append(wait)
            continue
        started.append(asyncio.ensure_future(wait.wait() if isinstance(wait, asyncio.Event)
                                             else wait))  # fmt: skip
        futures.append(started[-1])
    try:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
    first = next(f for f in futures if f in done)
    if first.cancelled():
        return "cancelled"
    try:
        result = first.result()
    except StreamClosed as error:
        return str(error)
    return result if isinstance(result, str) else ""
