"""BinanceSockets' reading of how a stream ends: every way ccxt.pro's client can fail a
stream — its own errors, and the transport errors it passes through unwrapped — is a closed
stream (StreamClosed, so the streams reconnect), never a crash of the daemon's loops.

The fault campaign found the unwrapped one: SUBSCRIBE sent while the stand-in hung up made
aiohttp raise ClientConnectionResetError ("Cannot write to closing transport") out of ccxt's
`watch`, and the market-stream loop, expecting ccxt's errors only, took the daemon down. The
stand-in cannot hang up at exactly that instant on demand, so this drives BinanceSockets with
the few members of ccxt.pro's client it uses, failing the way aiohttp does."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from quantum_trader.execution.binance_sockets import BinanceSockets, StreamClosed

URL = "wss://stand-in/market"


class _Connection:
    def __init__(self) -> None:
        self.connected: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.closed = False

    def reject(self, error: Exception) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


class _FailingClient:
    """ccxt.pro's client as BinanceSockets uses it; `watch` fails with `error` once the
    connection is made (or before, with `connects=False`)."""

    def __init__(self, error: BaseException, *, connects: bool) -> None:
        self.ws_dial_backoff: dict[str, Any] = {}
        self.sinks: dict[str, Any] = {}
        self.clients: dict[str, _Connection] = {}
        self._error, self._connects = error, connects

    def client(self, url: str) -> _Connection:
        return self.clients.setdefault(url, _Connection())

    def watch(self, url: str, *_: object) -> asyncio.Future[Any]:
        connection = self.client(url)
        held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def fail() -> None:
            if self._connects:
                connection.connected.set_result(True)
            held.set_exception(self._error)

        asyncio.get_running_loop().call_soon(fail)
        return held


ERRORS = [
    aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
    ConnectionResetError("reset by peer"),
    ccxt.NetworkError("closed"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("connects", [True, False], ids=["after-connecting", "while-connecting"])
async def test_any_failure_of_a_stream_is_a_closed_stream_and_the_connection_is_dropped(
    error: BaseException, connects: bool
) -> None:
    client = _FailingClient(error, connects=connects)
    sockets = BinanceSockets(client)

    async def open_and_hold() -> None:
        closed = await sockets.open(URL, ["!markPrice@arr@1s"], lambda message: None)
        await closed  # ends with StreamClosed when the stream does

    with pytest.raises(StreamClosed, match=type(error).__name__):
        await open_and_hold()
    assert URL not in client.clients  # dropped: the next attempt dials anew
