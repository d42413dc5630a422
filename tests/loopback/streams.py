"""The stand-in's websocket streams, as ccxt.pro's binanceusdm and Binance's docs use them.

Addresses: raw streams `/ws/<stream>[/<stream>...]`, combined `/stream?streams=a/b` (each
message wrapped as {"stream": ..., "data": ...}), under Binance's routes `/market`, `/public`,
`/private` or none; SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS messages on any of them
(ccxt connects to `/market/ws/<n>` and subscribes). User data: `/private/ws?listenKey=<key>`
(optionally `&events=A/B`, an allow list), `/ws/<listenKey>`, or a listen key subscribed as a
stream. Streams served: `!markPrice@arr[@1s]` and `<symbol>@markPrice[@1s]`, every second of
the stand-in's clock; user-data events as the engine produces them; listenKeyExpired when a
key lapses (its "E" a string, as fstream sends it); ping frames on demand (`ping`), the pongs
recorded. A connection is closed once it is 24 hours old on the stand-in's clock, as Binance
documents ("a single connection is only valid for 24 hours; expect to be disconnected at the
24 hour mark"). Faults: `StreamFaults` / `RandomStreamFaults` (faults.py) and `disconnect()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from quantum_trader.clock import utc_from_ms
from quantum_trader.ports import Clock

from . import payloads
from .faults import RandomStreamFaults, StreamFaults
from .state import LoopbackState

MARK_STREAMS = ("!markprice@arr@1s", "!markprice@arr")
ROUTES = ("/market", "/public", "/private", "")
CONNECTION_LIFETIME_MS = 24 * 3600 * 1000


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    kind: str  # "market" or "user"
    combined: bool
    streams: set[str] = field(default_factory=set)
    listen_key: str | None = None
    events: frozenset[str] | None = None  # the user-data allow list (None: everything)
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    opened_ms: int = 0  # on the stand-in's clock


class StreamHub:
    """Websocket connections of one stand-in, fed by its state and its clock."""

    def __init__(self, state: LoopbackState, sync: Any) -> None:
        self.state = state
        self._sync = sync  # the server's sync(): engine triggers, before each push
        self.connections: list[Connection] = []
        self.faults = StreamFaults()
        self.random: RandomStreamFaults | None = None
        self.handshakes: list[str] = []
        self.pongs: list[tuple[str, bytes]] = []  # (connection kind, payload) as received
        self._held: list[tuple[Connection, dict[str, Any]]] = []
        self.activity = 0  # connections opened and closed, messages in and out
        # User-data events that reached no user stream (dropped, silenced, or none was
        # connected), with the stand-in's ms: what only a REST read could reveal.
        self.hidden: list[tuple[int, dict[str, Any]]] = []
        # of those, the ones hidden because no user-data stream was connected (the client's
        # reconnect and seed tell it events may have been lost; a silence or a drop does not)
        self.unconnected: list[tuple[int, dict[str, Any]]] = []
        self._sending = 0
        self.algo_event_omits: frozenset[str] = frozenset()  # keys left out of ALGO_UPDATE's "o"
        state.sinks.append(self.on_user_event)

    # -- faults --------------------------------------------------------------------------------

    async def disconnect(self, kind: str | None = None) -> int:
        """Close every connection (of `kind`: "market" or "user") now; returns how many."""
        closing = [c for c in self.connections if kind in (None, c.kind)]
        for connection in closing:
            await connection.ws.close(code=1001, message=b"loopback disconnect")
        return len(closing)

    async def ping(self, payload: bytes) -> int:
        """Send a ping frame with `payload` on every connection now, as Binance does every 3
        minutes (it drops a connection that sends no pong within 10); returns how many."""
        open_now = [c for c in self.connections if not c.ws.closed]
        for connection in open_now:
            await connection.ws.ping(payload)
        return len(open_now)

    def silence(self, kind: str, seconds: float) -> None:
        """Send nothing on `kind` streams, and answer no ping, for `seconds`."""
        self.faults.silent_until_ms[kind] = self.state.now_ms + round(seconds * 1000)

    def expire_listen_keys(self) -> None:
        """Expire every listen key now (as 60 minutes without keep-alive would)."""
        for key in list(self.state.listen_keys):
            self.state.listen_keys[key] = self.state.now_ms
        self._expire()

    def busy(self) -> bool:
        """Whether a message waits in a connection's outbox or is being sent."""
        return self._sending > 0 or any(not c.outbox.empty() for c in self.connections)

    def _silent(self, kind: str) -> bool:
        return self.state.now_ms < self.faults.silent_until_ms.get(kind, 0)

    # -- serving -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.activity += 1
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.activity += 1
        connection = self._connection(ws, request)
        self.handshakes.append(f"{connection.kind} {request.path}")
        if connection.kind == "user" and connection.listen_key not in self.state.listen_keys:
            await ws.close(code=1008, message=b"invalid listen key")
            return ws
        self.connections.append(connection)
        writer = asyncio.create_task(self._write(connection))
        try:
            async for message in ws:
                self.activity += 1
                await self._read(connection, message)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self.connections.remove(connection)
            self.activity += 1
        return ws

    def _connection(self, ws: web.WebSocketResponse, request: web.Request) -> Connection:
        path = request.path
        for route in ROUTES:
            if route and path.startswith(route + "/"):
                path = path[len(route) :]
                break
        combined = path.startswith("/stream")
        names = request.query.get("streams", "") if combined else path.removeprefix("/ws")
        streams = {n for n in names.strip("/").split("/") if n}
        key = request.query.get("listenKey") or next(
            (n for n in streams if n in self.state.listen_keys), None
        )
        events = request.query.get("events")
        connection = Connection(ws, "user" if key else "market", combined)
        connection.opened_ms = self.state.now_ms
        connection.listen_key = key
        connection.events = frozenset(events.split("/")) if events else None
        connection.streams = {n.lower() for n in streams if n != key}
        return connection

    async def _read(self, connection: Connection, message: Any) -> None:
        if message.type == WSMsgType.PING:
            if not self._silent(connection.kind):
                await connection.ws.pong(message.data)
            return
        if message.type == WSMsgType.PONG:
            self.pongs.append((connection.kind, bytes(message.data)))
            return
        if message.type != WSMsgType.TEXT:
            return
        request = json.loads(message.data)
        method, params = request.get("method"), request.get("params") or []
        if method == "SUBSCRIBE":
            for name in params:
                if name in self.state.listen_keys:
                    connection.kind, connection.listen_key = "user", name
                else:
                    connection.streams.add(str(name).lower())
            answer: dict[str, Any] = {"result": None, "id": request.get("id")}
        elif method == "UNSUBSCRIBE":
            connection.streams -= {str(n).lower() for n in params}
            answer = {"result": None, "id": request.get("id")}
        elif method == "LIST_SUBSCRIPTIONS":
            answer = {"result": sorted(connection.streams), "id": request.get("id")}
        else:
            answer = {"error": {"code": 2, "msg": f"Invalid request: {method}"},
                      "id": request.get("id")}  # fmt: skip
        connection.outbox.put_nowait(json.dumps(answer))

    async def _write(self, connection: Connection) -> None:
        while True:
            text = await connection.outbox.get()
            if connection.ws.closed:
                return
            self._sending += 1
            try:
                await connection.ws.send_str(text)
            finally:
                self._sending -= 1
                self.activity += 1

    def _send(self, connection: Connection, stream: str, payload: Any) -> None:
        if connection.ws.closed:
            return
        body = {"stream": stream, "data": payload} if connection.combined else payload
        connection.outbox.put_nowait(json.dumps(body))

    # -- pushing -------------------------------------------------------------------------------

    async def run(self, clock: Clock) -> None:
        """Push every second of `clock`: engine triggers, expired keys, then mark prices."""
        while True:
            next_ms = (self.state.now_ms // 1000 + 1) * 1000
            await clock.sleep_until(utc_from_ms(next_ms))
            await self.tick()

    async def tick(self) -> None:
        self._sync()
        self._expire()
        await self._close_aged()
        self._flush_held()
        await self._random_faults()
        if self._silent("market"):
            return
        now = self.state.now_ms
        rows = [
            payloads.mark_price_row(i, self.state.mark(i), now, self.state.next_funding_ms())
            for i in self.state.markets
            if i not in self.faults.marks_left_out
        ]
        for connection in [c for c in self.connections if c.kind == "market"]:
            for stream in connection.streams:
                if stream in MARK_STREAMS:
                    self._send(connection, stream, rows)
                elif "@markprice" in stream:
                    row = next((r for r in rows if r["s"] == stream.split("@")[0].upper()), None)
                    if row is not None:
                        self._send(connection, stream, row)

    async def _close_aged(self) -> None:
        """Close the connections 24 hours old, as Binance does."""
        due = self.state.now_ms - CONNECTION_LIFETIME_MS
        for connection in [c for c in self.connections if c.opened_ms <= due]:
            await connection.ws.close(code=1000, message=b"connection lifetime reached")

    def _expire(self) -> None:
        for key in self.state.expired_listen_keys():
            event = payloads.listen_key_expired(key, self.state.now_ms)
            for connection in self._users(key):
                self._send(connection, key, event)
                connection.listen_key = None  # the stream delivers nothing more

    def _users(self, key: str | None = None) -> list[Connection]:
        return [
            c
            for c in self.connections
            if c.kind == "user" and c.listen_key is not None and key in (None, c.listen_key)
        ]

    def on_user_event(self, event: dict[str, Any]) -> None:
        """A user-data event from the engine: deliver it, faults permitting."""
        if event["e"] == "ALGO_UPDATE" and self.algo_event_omits:
            kept = {k: v for k, v in event["o"].items() if k not in self.algo_event_omits}
            event = {**event, "o": kept}
        users = [c for c in self._users() if c.events is None or event["e"] in c.events]
        if users and self.random is not None and self.random.drops_new_stop(event):
            self.hidden.append((self.state.now_ms, event))  # on no connection
            return
        if not users:
            self.hidden.append((self.state.now_ms, event))
            self.unconnected.append((self.state.now_ms, event))
        for connection in users:
            self._deliver(connection, event)

    def _deliver(self, connection: Connection, event: dict[str, Any]) -> None:
        faults, rng = self.faults, self.random
        if self._silent("user"):
            self.hidden.append((self.state.now_ms, event))
            return
        if faults.drop > 0 or (rng is not None and rng.rng.random() < rng.drop):
            faults.drop = max(0, faults.drop - 1)
            self.hidden.append((self.state.now_ms, event))
            return
        holding = any(c is connection for c, _ in self._held)
        if not holding and (
            faults.reorder > 0 or (rng is not None and rng.rng.random() < rng.reorder)
        ):
            faults.reorder = max(0, faults.reorder - 1)
            self._held.append((connection, event))  # sent after the next one, or next second
            return
        self._send(connection, connection.listen_key or "", event)
        if faults.duplicate > 0 or (rng is not None and rng.rng.random() < rng.duplicate):
            faults.duplicate = max(0, faults.duplicate - 1)
            self._send(connection, connection.listen_key or "", event)
        self._flush_held(connection)

    def _flush_held(self, connection: Connection | None = None) -> None:
        late = [h for h in self._held if connection in (None, h[0])]
        self._held = [h for h in self._held if h not in late]
        for held_by, event in late:
            self._send(held_by, held_by.listen_key or "", event)

    async def _random_faults(self) -> None:
        rng = self.random
        if rng is None:
            return
        for connection in list(self.connections):
            if rng.rng.random() < rng.disconnect_per_s:
                await connection.ws.close(code=1001, message=b"loopback random disconnect")
        for kind in ("market", "user"):
            if rng.rng.random() < rng.silence_per_s:
                self.silence(kind, rng.silence_s)
