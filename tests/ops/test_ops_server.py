"""The status server of a real daemon (the CLI in a subprocess, paper mode, replay at 600×,
a bearer token, a webhook receiver on loopback): every endpoint, the token, the metrics, the
notifications of a running daemon, and the live page in headless chromium."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from browser import artifact, headless_chromium
from daemon_harness import Daemon, eventually
from ops_builders import TOKEN, Receiver, get, status_url

pytestmark = pytest.mark.slow  # the real CLI in a subprocess
FAMILIES = (
    "qt_cycle_duration_seconds",
    "qt_decisions_total",
    "qt_orders_total",
    "qt_fills_total",
    "qt_trades_closed_total",
    "qt_errors_total",
    "qt_exchange_requests_total",
    "qt_exchange_used_weight_1m",
    "qt_streams",
    "qt_equity_usdt",
    "qt_open_positions",
    "qt_health",
    "qt_trading_state",
    "qt_loop_lag_seconds",
    "qt_loop_lag_max_seconds",
    "qt_loop_interval_seconds",
    "qt_loop_overruns_total",
    "qt_notifications_total",
    "qt_status_connections",
    "qt_status_connections_closed_total",
    "process_resident_memory_bytes",
)


@dataclass(frozen=True, slots=True)
class Served:
    daemon: Daemon
    url: str
    receiver: Receiver


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    receiver = Receiver()
    daemon = Daemon.start(
        tmp_path_factory.mktemp("served"),
        QT_MARKET__REPLAY_SPEED="600",  # from the sample's start: it enters at once
        QT_SERVER__TOKEN=TOKEN,
        QT_NOTIFY__WEBHOOK_URL=f"{receiver.url}/hook",
    )
    try:
        yield Served(daemon, status_url(daemon), receiver)
    finally:
        daemon.stop(signal.SIGTERM)
        receiver.close()


def status_with_a_position(served: Served) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = get(f"{served.url}/status", TOKEN).json()
        marked = [p for p in status["positions"] if p["mark_price"] is not None]
        return status if marked and status["recent_decisions"] else None

    return eventually(probe, 60, "an open position with its mark price")


def test_health_needs_no_token(served: Served) -> None:
    answer = get(f"{served.url}/health")
    assert answer.status == 200
    body = answer.json()
    assert body["status"] in ("HEALTHY", "DEGRADED")  # 503 is CRITICAL only: test_ops_health
    assert isinstance(body["problems"], list)


def test_a_browser_asking_for_an_icon_gets_no_content_and_no_warning(served: Served) -> None:
    """Browsers ask /favicon.ico of every page they show, /health and /status among them (was:
    404, with the token set 401 and a status_unauthorized warning on each visit)."""
    answer = get(f"{served.url}/favicon.ico")
    assert (answer.status, answer.body) == (204, b"")


@pytest.mark.parametrize("path", ["/status", "/metrics"])
def test_a_missing_or_wrong_token_gets_401_and_is_logged_without_the_token(
    served: Served, path: str
) -> None:
    wrong = "not-the-token-" + path.strip("/")
    assert get(served.url + path).status == 401
    refused = get(served.url + path, wrong)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert get(served.url + path, TOKEN).status == 200
    logged = eventually(
        lambda: [
            e for e in served.daemon.logged_so_far("status_unauthorized") if e["path"] == path
        ],
        10,
        "the refusal in the log",
    )
    assert logged[0]["client"] == "127.0.0.1"
    output = served.daemon.output.read_text() + served.daemon.stderr
    assert wrong not in output
    assert TOKEN not in output


def test_refusals_for_paths_not_served_share_one_line(served: Served) -> None:
    """A client naming a new path each time (an outside probe: 4,500 lines a second, RSS
    148 → 794 MB) is one line and one entry, not one each."""
    for n in range(60):
        assert get(f"{served.url}/nothing-here-{n}-{'a' * 500}").status == 401
    logged = eventually(
        lambda: [
            e
            for e in served.daemon.logged_so_far("status_unauthorized")
            if e["path"].startswith("/nothing-here-")
        ],
        10,
        "the first refusal in the log",
    )
    assert len(logged) == 1
    assert len(logged[0]["path"]) == 200  # cut: a path of any length is not logged whole


def test_a_malformed_request_is_one_line_without_a_traceback(served: Served) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            oversized = f"Bearer {'x' * 9000}"  # beyond aiohttp's 8,190-byte field
            connection.sendall(
                f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: {oversized}\r\n\r\n".encode()
            )
            assert b" 400 Bad Request" in connection.recv(64)
    (line,) = eventually(
        lambda: served.daemon.logged_so_far("status_request_failed"), 10, "the refusal's line"
    )
    assert line["error"] == "LineTooLong"
    assert "Traceback" not in served.daemon.stderr
    assert "xxxxxxxx" not in served.daemon.output.read_text() + served.daemon.stderr


def test_a_token_with_bytes_not_utf8_is_refused_like_any_wrong_one(served: Served) -> None:
    """`Authorization: Bearer \\xff...` (bytes an outside client chose) is a 401 and a "wrong
    token" warning (was: a 500 and an error line with a traceback, UnicodeEncodeError)."""
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer \xff\xfe" + TOKEN.encode() + b"\r\n\r\n"
        )
        assert connection.recv(64).startswith(b"HTTP/1.1 401 ")
    eventually(
        lambda: [
            e
            for e in served.daemon.logged_so_far("status_unauthorized")
            if (e["path"], e["reason"]) == ("/metrics", "wrong token")
        ],
        10,
        "the refusal in the log",
    )
    assert served.daemon.logged_so_far("status_handler_failed") == []


def test_status_shows_positions_with_their_futures_basics(served: Served) -> None:
    status = status_with_a_position(served)
    assert status["mode"] == "paper"
    assert status["trading"]["state"] in ("ACTIVE", "REDUCING", "HALTED")
    assert status["governor"]["decision"]
    assert all(p["mark_price"] is not None for p in status["positions"])  # new ones too
    for p in status["positions"]:
        entry, mark = Decimal(p["entry_price"]), Decimal(p["mark_price"])
        quantity, leverage = Decimal(p["quantity"]), p["leverage"]
        sign = 1 if p["side"] == "LONG" else -1
        pnl = Decimal(p["unrealized_pnl_usdt"])
        assert abs(pnl - (mark - entry) * quantity * sign) < Decimal("1e-8")
        assert abs(Decimal(p["margin_usdt"]) - entry * quantity / leverage) < Decimal("1e-8")
        # The protective stop sits between the entry and the liquidation price.
        stop, liquidation = Decimal(p["stop_price"]), Decimal(p["liquidation_price"])
        assert (entry - stop) * sign > 0
        assert (stop - liquidation) * sign > 0
        assert p["protected"] is True
    assert Decimal(status["account"]["equity_usdt"]) > 0
    assert status["last_cycle"]["cycle_id"].startswith("c")
    assert status["balancer"]["risk_mode"]
    decision = status["recent_decisions"][-1]
    assert decision["gate"]
    assert decision["reason"]
    assert isinstance(decision["approved"], bool)
    assert status["streams"] == []  # REST only, documented
    assert status["replay"]["finished"] is False


def test_metrics_expose_every_documented_family_with_live_values(served: Served) -> None:
    status = status_with_a_position(served)
    text = get(f"{served.url}/metrics", TOKEN).body.decode()
    for family in FAMILIES:
        assert re.search(rf"^# TYPE {family} ", text, re.M), family
    assert _sample(text, 'qt_orders_total{kind="MARKET",outcome="filled"}') >= 1
    assert (
        _sample(text, 'qt_fills_total{side="BUY"}') + _sample(text, 'qt_fills_total{side="SELL"}')
        >= 1
    )
    assert _sample(text, "qt_cycle_duration_seconds_count") >= 1
    assert _sample(text, "qt_streams") == 0
    assert _sample(text, 'qt_loop_interval_seconds{loop="executor"}') == 30
    assert _sample(text, "qt_open_positions") >= 1
    assert len(status["positions"]) >= 1


def test_the_webhook_hears_the_start_and_the_entries(served: Served) -> None:
    status_with_a_position(served)
    kinds = eventually(
        lambda: served.receiver.kinds() if "entry" in served.receiver.kinds() else None,
        30,
        "an entry notification",
    )
    assert kinds[0] == "daemon_started"
    entry = next(r.body for r in served.receiver.received if r.body["kind"] == "entry")
    assert entry["text"].startswith("ENTRY ")
    assert entry["side"] in ("LONG", "SHORT")
    assert Decimal(entry["stop_price"]) > 0


def test_the_live_page_shows_the_daemon_in_headless_chromium(served: Served) -> None:
    status_with_a_position(served)
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        console: list[str] = []  # errors the browser reports (was: /favicon.ico's 401)
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: console.append(str(error)))
        page.goto(f"{served.url}/#token={TOKEN}")
        page.wait_for_selector("body[data-loaded='1']", timeout=15_000)
        page.wait_for_function(
            "document.querySelectorAll('#positions tbody tr td.num').length > 0", timeout=15_000
        )
        assert page.inner_text("#health") in ("HEALTHY", "DEGRADED")
        assert page.inner_text("#trading") in ("ACTIVE", "REDUCING", "HALTED")
        assert "paper" in page.inner_text("#mode")
        assert page.locator("#decisions tbody tr").count() >= 1
        assert page.locator("#equity polyline, #equity-range").count() >= 1
        assert TOKEN not in page.url  # the fragment is dropped once read
        first_time = page.inner_text("#time")
        page.wait_for_function(
            f"document.getElementById('time').textContent !== {first_time!r}", timeout=10_000
        )  # it updates itself
        target = artifact("live-page.png")
        page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    assert console == []


def test_the_page_asks_for_the_token_when_it_has_none(served: Served) -> None:
    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto(f"{served.url}/")
        page.wait_for_selector("#token-form", state="visible", timeout=10_000)
        assert "401" in page.inner_text("#problem")
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        page.wait_for_selector("body[data-loaded='1']", timeout=10_000)
        assert not page.is_visible("#token-form")


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
