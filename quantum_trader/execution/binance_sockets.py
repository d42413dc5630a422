"""ccxt.pro's websocket client for Binance USD-M, reduced to what the streams need
(`BinanceSockets`): open one stream at Binance's address (demo trading in testnet mode) or at
`exchange.ws_url`, and hand each decoded message to a callback, in arrival order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import ccxt.pro as ccxt_pro

from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import ExchangeMode
from quantum_trader.errors import RetryLater
from quantum_trader.log import get_logger

log = get_logger("binance_client")


class StreamClosed(RetryLater):
    """A websocket stream ended (closed by the server, broken, refused or dropped by us)."""


MessageSink = Callable[[Any], None]


class BinanceSockets:
    """ccxt.pro's binanceusdm websocket client, reduced to what the streams need: open one
    stream and hand each decoded message to a callback, in arrival order."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ids = itertools.count(1)

    @classmethod
    def create(cls, settings: ExchangeSettings) -> BinanceSockets:
        """Websocket addresses of Binance (demo in testnet mode), or of `exchange.ws_url`.

        A connection is also declared dead when the server answers no ping for twice
        `exchange.stream_silence_s` (ccxt's keep-alive, in real time).
        """
        client = _socket_class()({"options": {"ws": {"cost": 0}}, "enableRateLimit": False})
        client.streaming["keepAlive"] = round(settings.stream_silence_s * 1000)
        if settings.mode is ExchangeMode.TESTNET:
            client.enable_demo_trading(True)
        if settings.ws_url:
            client.urls["api"]["ws"]["linear"] = f"{settings.ws_url}/ws"
        return cls(client)

    def market_url(self) -> str:
        """The market-data stream address (Binance's /market route), as ccxt builds it."""
        base = self._client.get_ws_url("linear", "market")
        return f"{base}/{self._client.stream('linear', 'quantum-trader-market')}"

    def user_url(self, listen_key: str, events: Sequence[str]) -> str:
        """The user-data stream of `listen_key` (/private route), filtered to `events`."""
        return f"{self._client.get_private_ws_url('linear', listen_key)}&events={'/'.join(events)}"

    async def open(
        self, url: str, subscribe: Sequence[str], sink: MessageSink
    ) -> asyncio.Task[None]:
        """Connect to `url`, sending SUBSCRIBE for `subscribe`; return once connected.

        Every message then goes to `sink`; the returned task ends with StreamClosed when the
        stream does. Raises StreamClosed when the connection cannot be made.
        """
        self._client.ws_dial_backoff = {}  # the caller backs off, on its own clock
        self._client.sinks[url] = sink
        request = None
        if subscribe:
            request = {"method": "SUBSCRIBE", "params": list(subscribe), "id": next(self._ids)}
        held = self._client.watch(url, _HOLD, request, _HOLD)
        connected = self._client.client(url).connected
        closed = asyncio.ensure_future(self._hold(url, held))
        try:
            await asyncio.wait({connected, closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            closed.cancel()
            raise
        if closed.done():
            await closed
        return closed

    async def _hold(self, url: str, held: Any) -> None:
        try:
            await held
        except (ccxt.BaseError, aiohttp.ClientError, OSError) as error:
            # ccxt wraps most failures in its own errors, but not a write to a connection
            # that is closing (aiohttp's ClientConnectionResetError, from SUBSCRIBE sent as
            # the server hangs up): the stream is closed all the same, and is reconnected.
            await self.drop(url)
            raise StreamClosed(f"stream closed: {type(error).__name__}") from None
        raise StreamClosed("stream closed")

    async def drop(self, url: str) -> None:
        """Close the connection to `url` now (a silent or untrusted stream)."""
        self._client.sinks.pop(url, None)
        client = self._client.clients.pop(url, None)
        if client is not None:
            client.reject(ccxt.NetworkError("dropped by quantum trader"))
            await client.close()

    async def close(self) -> None:
        await self._client.close()


_HOLD = "quantum-trader-hold"


def _socket_class() -> type[Any]:
    class _Sockets(ccxt_pro.binanceusdm):  # type: ignore[misc]
        """Every message goes to the sink of its connection; ccxt's own parsing is unused."""

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            self.sinks: dict[str, MessageSink] = {}

        def handle_message(self, client: Any, message: Any) -> None:
            if isinstance(message, dict) and "error" in message:
                client.reset(ccxt.NetworkError(f"stream error answer: {message['error']}"))
                return
            if isinstance(message, dict) and "result" in message and "id" in message:
                return  # the answer to our SUBSCRIBE
            sink = self.sinks.get(client.url)
            if sink is None:
                return
            try:
                sink(message)
            except Exception as error:  # the receive loop must not die
                log.error("stream_message_failed", error=str(error))
                client.reset(ccxt.NetworkError(f"message handler failed: {error}"))

    return _Sockets
