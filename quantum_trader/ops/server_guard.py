"""The status server's guard against slow and abusive clients: a connection cap and a
request-head timeout, so that an outside probe cannot hold the daemon's descriptors (1,100
half-open connections once stopped the cycles for a minute).

aiohttp has no connection cap, and only its newest releases close a connection that never
sends a request (3.14.5 starts its keep-alive timer at the connection; 3.11, which
pyproject allows, does not), so the guard does both itself, without touching aiohttp:

- `listen` creates the listening server with `loop.create_server` around a wrapper of
  aiohttp's protocol factory (`runner.server`, as `web.SockSite` does with the bare one).
- Past `max_connections` open connections, a new one is closed at once, before aiohttp
  sees it: no parser, no task, no response (a 503 would cost a write to a client that may
  not read, and tell an abusive one nothing it needs). Counted in
  `qt_status_connections_closed_total{reason="cap"}`; one `status_connection_refused`
  warning, then one summary line an interval (`RepeatedWarnings`).
- A connection that has not delivered a complete request head `head_timeout_s` after it
  was made, or after the handler of its previous request returned (an idle kept-alive
  connection, a client that does not read its response), is aborted. `middleware` tells
  the guard when a request reaches the application and when its handler is done; while a
  handler runs, the clock stops (the handlers bound themselves: /status waits at most
  `server.exchange_read_wait_s` for the exchange). A request that arrives while part of an
  earlier answer is still unsent (in the transport's buffer or the kernel's send queue: the
  client has not read it) does not stop or restart the clock: a client that keeps asking
  without reading (pipelined or one request every few seconds) is aborted the timeout after
  the last answer it took, not when the buffers finally fill. Counted with `reason="timeout"`; a
  connection that had sent part of a request (Slowloris) is also a
  `status_request_timed_out` warning, an idle one (a browser's preconnect) is not.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
import time
from collections.abc import Callable
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler

from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.quiet import RepeatedWarnings

BACKLOG = 128  # aiohttp's sites' default


class ConnectionGuard:
    """Counts the open connections of one server and closes those it must."""

    def __init__(
        self,
        max_connections: int,
        head_timeout_s: float,
        warnings: RepeatedWarnings,
        metrics: Metrics,
    ) -> None:
        self.max_connections = max_connections
        self.head_timeout_s = head_timeout_s
        self._warnings = warnings
        self._metrics = metrics
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocols(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server`: `inner`'s protocols, guarded."""
        return lambda: _Guarded(self, inner)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = self._open.get(request.transport) if request.transport else None
        # An earlier answer not yet taken by the client: its clock keeps running.
        timed = guarded is not None and guarded.unsent_bytes() == 0
        if timed and guarded is not None:
            guarded.disarm()
        try:
            return await handler(request)
        finally:
            if timed and guarded is not None:
                guarded.arm()

    def _admit(self, guarded: _Guarded, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.max_connections:
            self._metrics.status_closed.labels("cap").inc()
            self._warnings.warn(
                "status_connection_refused", "cap", time.monotonic(),
                max_connections=self.max_connections, client=_client(transport),
            )  # fmt: skip
            return False
        self._open[transport] = guarded
        self._metrics.status_connections.set(len(self._open))
        return True

    def _timed_out(self, transport: asyncio.BaseTransport, partial: bool) -> None:
        self._metrics.status_closed.labels("timeout").inc()
        if partial:
            self._warnings.warn(
                "status_request_timed_out", "head", time.monotonic(),
                head_timeout_s=self.head_timeout_s, client=_client(transport),
            )  # fmt: skip

    def _release(self, transport: asyncio.BaseTransport) -> None:
        if self._open.pop(transport, None) is not None:
            self._metrics.status_connections.set(len(self._open))


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol behind the cap and the head timer. The inner
    protocol is made only for an admitted connection."""

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes received since the timer started

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard._admit(self, transport):
            transport.close()  # nothing written: closed at once
            return
        # A stream server's transports are asyncio.Transports (uvloop's without subclassing).
        self._transport = cast(asyncio.Transport, transport)
        self._inner = self._make_inner()
        self.arm()
        self._inner.connection_made(transport)

    def arm(self) -> None:
        """Start the clock for the next request head."""
        self.disarm()
        if self._transport is not None and not self._transport.is_closing():
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._guard.head_timeout_s, self._expire)
            self._partial = False

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def unsent_bytes(self) -> int:
        """Bytes written to this connection that the client has not taken yet: in the
        transport's buffer, and in the kernel's send queue (Linux; elsewhere 0)."""
        transport = self._transport
        if transport is None:
            return 0
        queued = transport.get_write_buffer_size()
        sock = transport.get_extra_info("socket")
        try:
            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        except (AttributeError, OSError):
            return queued
        return queued + int(struct.unpack("i", raw)[0])

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._guard._timed_out(transport, self._partial)
            transport.abort()  # `close` would wait for a client that does not read

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._partial = self._partial or self._timer is not None
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self._inner is None or self._transport is None:
            return
        self._guard._release(self._transport)
        self._transport = None
        self._inner.connection_lost(exc)


def _client(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


async def listen(
    runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int
) -> asyncio.Server:
    """Listen on `host`:`port` (as `web.TCPSite` would) with `runner`'s protocols, guarded.
    The caller closes the server before `runner.cleanup()`."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        guard.protocols(server), host, port, backlog=BACKLOG, reuse_address=None
    )
