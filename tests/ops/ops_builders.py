"""Helpers of the operations tests: a loopback notification receiver, HTTP reads of the status
server, and a running daemon's status URL."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from daemon_harness import Daemon, eventually

TOKEN = "t0p-secret-status-token-4e1f"
BOT_TOKEN = "123456:bot-token-that-must-never-be-logged"


@dataclass(slots=True)
class Received:
    path: str
    body: dict[str, Any]


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST it accepts. Each request takes the
    next (status, delay_s, body) of `script`, then `status` after `delay_s` (a slow receiver)."""

    status: int = 200
    delay_s: float = 0.0
    script: list[tuple[int, float, str]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    redirect_to: str | None = None  # the Location of a 3xx answer (a GET there answers 200)
    headers: dict[str, bytes] = field(default_factory=dict)  # sent as given with each answer

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.attempts += 1
                status, delay_s, answer = (
                    receiver.script.pop(0)
                    if receiver.script
                    else (receiver.status, receiver.delay_s, '{"ok": true}')
                )
                time.sleep(delay_s)
                if status < 300:
                    receiver.received.append(Received(self.path, body))
                # A client that timed out (the delay tests) has hung up: nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    if 300 <= status < 400 and receiver.redirect_to is not None:
                        self.send_header("Location", receiver.redirect_to)
                    for name, value in receiver.headers.items():  # raw bytes: UTF-8 too
                        self.send_header(name, value.decode("latin-1"))
                    self.end_headers()
                    self.wfile.write(answer.encode())

            def do_GET(self) -> None:  # where a redirected POST lands as a GET, body lost
                receiver.attempts += 1
                receiver.received.append(Received(self.path, {"method": "GET"}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kinds(self) -> list[str]:
        return [str(r.body.get("kind")) for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens: a receiver that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, token: str | None = None) -> Answer:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def status_url(daemon: Daemon) -> str:
    """The running daemon's status server (it logs the address, port 0 picked a free one)."""

    def probe() -> list[dict[str, Any]]:
        if daemon.process.poll() is not None:
            raise AssertionError(f"the daemon exited: {daemon.stderr[-2000:]}")
        return daemon.logged_so_far("status_server_started")

    return str(eventually(probe, 60, "the status server")[0]["url"])
