"""The status server (aiohttp): /health, /status, /metrics and the live page at /.

- `/health`: 200 with HEALTHY or DEGRADED, 503 with CRITICAL; never needs the token (the
  Docker healthcheck and load balancers call it), so its problem lines name files relative
  to the data directory or by role, never by absolute path (ops/public_paths.py).
- `/status`: the StatusSnapshot as JSON. `/metrics`: Prometheus text.
- `/favicon.ico`: 204, no icon (browsers ask for one on every page they show).
- `/`: the live page, a self-contained HTML file (no CDN) that polls /status. It holds no
  data itself, so it is served without the token; the token it sends with /status comes from
  the page's URL fragment (`/#token=...`, which browsers never send to a server) or a prompt.

With `server.token` set, /status and /metrics need `Authorization: Bearer <token>`; anything
else gets 401 and one warning line naming the path and the client, never the token.

At most `server.max_connections` connections are open; one that does not send a complete
request head within `server.request_head_timeout_s` is closed (ops/server_guard.py). A
handler whose client went away is cancelled (aiohttp's `handler_cancellation`).
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import resource
import socket
import time
from asyncio import Server
from importlib import resources

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from quantum_trader.errors import ConfigurationError
from quantum_trader.log import get_logger
from quantum_trader.ops.health import HealthStatus
from quantum_trader.ops.public_paths import public_places, without_absolute_paths
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.ops.server_guard import ConnectionGuard, listen
from quantum_trader.ops.settings import ServerSettings
from quantum_trader.ops.snapshot import snapshot_json
from quantum_trader.ops.telemetry import Telemetry

log = get_logger("status_server")
PAGE = ("quantum_trader", "resources/page/index.html")
PUBLIC_PATHS = frozenset({"/", "/health", "/favicon.ico"})
SERVED_PATHS = frozenset({"/status", "/metrics"})  # those the token guards
OPEN_FILES = 65_536
# The daemon's own descriptors beside the status server's connections, with room: 19 in paper
# mode (database, log, loop), more with the exchange's connections, streams and model children.
OWN_FILES = 256
PATH_LOGGED = 200  # characters of a refused path a log line keeps


def load_page() -> bytes:
    return resources.files(PAGE[0]).joinpath(PAGE[1]).read_bytes()


def check_address(settings: ServerSettings) -> None:
    """Raise the ConfigurationError `StatusServer.start` would for an address in use, before
    the daemon opens anything: in testnet/live it would otherwise connect to the exchange and
    reconcile the account first. A check, not a reservation (the port may be taken between
    the two), binding as asyncio's server does on Unix: each address of the host, reusing
    one in TIME_WAIT, IPv6 ones for IPv6 only."""
    if not settings.enabled:
        return
    try:
        addresses = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as error:  # a name that does not resolve
        raise _cannot_listen(settings, error) from None
    if settings.port == 0:
        return
    for family, kind, protocol, _, address in addresses:
        try:
            probe = socket.socket(family, kind, protocol)
        except OSError:  # a family this system lacks: asyncio skips it too
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise _cannot_listen(settings, error) from None


def _cannot_listen(settings: ServerSettings, error: OSError) -> ConfigurationError:
    where = f"cannot listen on {settings.host}:{settings.port} ({error.strerror})"
    if isinstance(error, socket.gaierror):
        return ConfigurationError(
            [
                f"server.host: {where}: not a name or address of this machine; set "
                "QT_SERVER__HOST to one (127.0.0.1 for this machine only, 0.0.0.0 for every "
                "interface)"
            ]
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return ConfigurationError(
            [
                f"server.host: {where}: not an address of this machine; set QT_SERVER__HOST "
                "to one (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
            ]
        )
    return ConfigurationError(
        [
            f"server.port: {where}; is another daemon running? Set QT_SERVER__PORT (0 picks a "
            "free port) or QT_SERVER__ENABLED=false"
        ]
    )


class _RequestErrors(logging.Handler):
    """aiohttp's errors about requests it could not serve (malformed, oversized): one warning
    line a kind of error a minute, through `RepeatedWarnings`, naming only the error's class —
    its text may quote the request's bytes, a token among them — without a traceback (was: a
    multi-line traceback on stderr for each such request). A handler of ours that raised is
    an error line with its traceback, aggregated the same way."""

    def __init__(self, warnings: RepeatedWarnings) -> None:
        super().__init__()
        self._warnings = warnings

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        kind = type(error).__name__ if error is not None else "error"
        if error is None or isinstance(error, HttpProcessingError):  # the client's request
            self._warnings.warn("status_request_failed", kind, time.monotonic(), error=kind)
        else:  # a handler of ours failed: its traceback, in the JSON log
            self._warnings.warn(
                "status_handler_failed", kind, time.monotonic(),
                level="error", exc_info=error, error=kind,
            )  # fmt: skip


def check_open_files(settings: ServerSettings) -> None:
    """Raise the open-file limit, then refuse a connection cap that the limit cannot hold
    beside the daemon's own files: the cap would never be reached, slow clients taking every
    descriptor first (`Too many open files` in the cycles, as before the guard; found with a
    cap of 5,000 under `ulimit -n 512`). Before anything is opened, as `check_address`."""
    if not settings.enabled:
        return
    limit = _raise_open_file_limit()
    needed = settings.max_connections + OWN_FILES
    if limit != resource.RLIM_INFINITY and needed > limit:
        raise ConfigurationError(
            [
                f"server.max_connections: {settings.max_connections} connections and the "
                f"daemon's own files need {needed} open files, but this process may open "
                f"{limit}; set QT_SERVER__MAX_CONNECTIONS to at most "
                f"{max(limit - OWN_FILES, 1)} or raise the limit (ulimit -n, LimitNOFILE=)"
            ]
        )


def _raise_open_file_limit() -> int:
    """The soft limit on open files raised to the hard one (at most OPEN_FILES), returned:
    connections held open by slow clients take descriptors the daemon's own files need, and
    1,024 (a common default) runs out under a few hundred of them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


class StatusServer:
    """Bound by `start` (ConfigurationError if the address cannot be used), ended by `close`."""

    def __init__(
        self, settings: ServerSettings, telemetry: Telemetry, warnings: RepeatedWarnings
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._warnings = warnings
        self._token = settings.token.get_secret_value().encode() if settings.token else None
        self._page = load_page()
        self._places = public_places(telemetry.view.runtime.settings)
        self._runner: web.AppRunner | None = None
        self._listener: Server | None = None
        self.guard = ConnectionGuard(
            settings.max_connections, settings.request_head_timeout_s, warnings, telemetry.metrics
        )
        self.port = settings.port
        # aiohttp's own errors (a malformed or oversized request): one line a kind a minute.
        self._request_errors = logging.getLogger(f"quantum_trader.status_server.{id(self)}")
        self._request_errors.propagate = False
        self._request_errors.addHandler(_RequestErrors(warnings))

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.guard.middleware, self._authorize])
        app.router.add_get("/", self._index)
        app.router.add_get("/health", self._health)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/favicon.ico", self._no_icon)
        return app

    async def start(self) -> str:
        """Listen; return the base URL (with the port the system picked when `port` is 0)."""
        s = self._settings
        _raise_open_file_limit()
        self._runner = web.AppRunner(
            self.application(),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,  # a client gone: its handler is cancelled
            # aiohttp's own idle timer (the locked 3.14.5 starts it before the first request
            # too; older releases do not), set to the guard's: both close an idle connection
            # after the same time.
            keepalive_timeout=s.request_head_timeout_s,
            logger=self._request_errors,
        )
        await self._runner.setup()
        try:
            self._listener = await listen(self._runner, self.guard, s.host, s.port)
        except OSError as error:
            await self._runner.cleanup()
            raise _cannot_listen(s, error) from None
        self.port = int(self._listener.sockets[0].getsockname()[1])
        host = f"[{s.host}]" if ":" in s.host else s.host  # an IPv6 address, as URLs write it
        url = f"http://{host}:{self.port}"
        log.info("status_server_started", url=url, token_required=self._token is not None)
        return url

    async def close(self) -> None:
        """Stop listening, close the connections (aiohttp lets running handlers finish)."""
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._listener is not None:
            await self._listener.wait_closed()

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is None or request.path in PUBLIC_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        # aiohttp keeps a header's bytes that are not UTF-8 as surrogates: back to those bytes
        # (a plain `encode()` raised, a 500 and an error line for any client sending them).
        offered = credentials.encode("utf-8", "surrogateescape")
        if scheme.lower() == "bearer" and hmac.compare_digest(offered, self._token):
            return await handler(request)
        reason = "wrong token" if given else "no token"
        # Paths we do not serve share one key: a client naming a new path each time would
        # otherwise be a new line and a new entry each time (memory and log without bound).
        served = request.path if request.path in SERVED_PATHS else "(another path)"
        self._warnings.warn(
            "status_unauthorized", (request.remote, reason, served), time.monotonic(),
            path=request.path[:PATH_LOGGED], client=request.remote, reason=reason,
        )  # fmt: skip
        return web.json_response(
            {"error": "unauthorized: send Authorization: Bearer <server.token>"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="quantum-trader"'},
        )

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._page,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def _no_icon(self, request: web.Request) -> web.Response:
        """204: a browser showing /health or /status asks for an icon (the live page names an
        empty one); was a 404, or with a token a 401 and a status_unauthorized warning."""
        return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})

    async def _health(self, request: web.Request) -> web.Response:
        report = self._telemetry.view.runtime.health.latest
        status = 503 if report.status is HealthStatus.CRITICAL else 200
        problems = [without_absolute_paths(p, self._places) for p in report.problems]
        body = {"status": report.status.value, "problems": problems}
        return web.json_response(body, status=status)

    async def _status(self, request: web.Request) -> web.Response:
        snapshot = await self._telemetry.snapshot()
        return web.json_response(
            snapshot_json(snapshot),
            dumps=lambda data: json.dumps(data, default=str),
            headers={"Cache-Control": "no-store"},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self._telemetry.metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response
