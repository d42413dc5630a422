"""The real daemon (the CLI in a subprocess, paper mode, replay at 600×) while its status
server is attacked by clients that send part of a request head and hang (Slowloris), more of
them than the server lets in: the cycles go on, the server closes every one of them, and
answers once they are gone (was: 1,100 such connections stopped the cycles for a minute)."""

from __future__ import annotations

import select
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemon_harness import Daemon, eventually
from ops_builders import get, status_url

pytestmark = pytest.mark.slow  # the real CLI in a subprocess
PARTIAL = b"GET /health HTTP/1.1\r\nHost: x\r\n"  # no blank line: the head never ends
CAP = 4
CLIENTS = 20


@dataclass(slots=True)
class Attack:
    """`CLIENTS` sockets, each sending `PARTIAL` and then nothing; each one the server closes
    is replaced by a new one until `stop`, after which the rest are left to the server."""

    address: tuple[str, int]
    sockets: list[socket.socket] = field(default_factory=list)
    closed_by_server: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                while len(self.sockets) < CLIENTS:
                    self.sockets.append(self._hang())
                self._reap(0.05)
            while self.sockets:  # no more replacements: the server closes the rest
                self._reap(1.0)
        finally:
            self.done.set()

    def _hang(self) -> socket.socket:
        client = socket.create_connection(self.address, timeout=10)
        with suppress(OSError):  # closed at once, beyond the cap
            client.sendall(PARTIAL)
        return client

    def _reap(self, wait_s: float) -> None:
        readable, _, _ = select.select(self.sockets, [], [], wait_s)
        for client in readable:
            try:
                data = client.recv(4096)
            except OSError:  # reset
                data = b""
            assert data == b"", f"an answer to a partial request: {data[:80]!r}"
            self.sockets.remove(client)
            client.close()
            self.closed_by_server += 1
        self.stopping.wait(0.02)  # at most ≈ 50 rounds a second: an attack, not a busy loop


@contextmanager
def attacking(address: tuple[str, int]) -> Iterator[Attack]:
    attack = Attack(address)
    thread = threading.Thread(target=attack.run, daemon=True)
    thread.start()
    try:
        yield attack
    finally:
        attack.stopping.set()
        thread.join(timeout=60)
        for client in attack.sockets:
            client.close()


def test_the_cycles_go_on_while_slow_clients_beyond_the_cap_attack_the_server(
    tmp_path: Path,
) -> None:
    daemon = Daemon.start(
        tmp_path / "attacked",
        QT_MARKET__REPLAY_SPEED="600",
        QT_SERVER__MAX_CONNECTIONS=str(CAP),
        QT_SERVER__REQUEST_HEAD_TIMEOUT_S="1",  # the least allowed
    )
    try:
        url = status_url(daemon)
        host, port = url.removeprefix("http://").split(":")

        def cycles() -> int:
            assert daemon.process.poll() is None, daemon.stderr[-2000:]
            return len(daemon.logged_so_far("cycle_completed"))

        eventually(cycles, 60, "a first cycle")
        with attacking((host, int(port))) as attack:
            before = cycles()
            eventually(
                lambda: cycles() >= before + 20 and attack.closed_by_server >= 2 * CLIENTS,
                120,
                "20 cycles while the server is attacked",
            )
            attack.stopping.set()
            assert attack.done.wait(60), "the server left slow clients open"
        assert get(f"{url}/health").status == 200  # every slow one closed: room again
        metrics = get(f"{url}/metrics").body.decode()
        assert _sample(metrics, "qt_status_connections") == 1  # the scrape's own
        refused = _sample(metrics, 'qt_status_connections_closed_total{reason="cap"}')
        timed_out = _sample(metrics, 'qt_status_connections_closed_total{reason="timeout"}')
        assert timed_out >= CAP  # at least the first ones let in
        assert refused >= 1
        assert refused + timed_out >= attack.closed_by_server
        # And on after it (waited for: the attack may have ended within a cycle's time).
        eventually(lambda: cycles() > before + 20, 60, "a cycle after the attack")
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0
    lines = daemon.named("status_connection_refused")
    assert 1 <= len(lines) <= 3  # one at once, then a summary a minute: not one a refusal
    assert lines[0]["max_connections"] == CAP
    assert 1 <= len(daemon.named("status_request_timed_out")) <= 3
    assert "Traceback" not in daemon.stderr


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")
