"""Notifications against a loopback receiver that is up, slow and down: in order when up,
retried when slow, bounded and never in trading's way when down, and the bot token is never
logged. The daemon itself keeps trading while its receiver is down."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_harness import Daemon, eventually, query
from ops_builders import BOT_TOKEN, Receiver, closed_port_url, status_url
from pydantic import SecretStr
from socket_race import RacingConnector
from structlog.testing import capture_logs

from quantum_trader.domain import ClosedTrade, ExitReason, Side
from quantum_trader.log import get_logger
from quantum_trader.ops.messages import exit_
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.notify import (
    Notification,
    NotificationKind,
    Notifier,
    Outbox,
    WebhookChannel,
    backoff_s,
    retry_after_s,
)
from quantum_trader.ops.operator_view import trades_document
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.ops.settings import NotifySettings
from quantum_trader.report.statistics import group_table, trade_table

T0 = datetime(2025, 9, 8, tzinfo=UTC)
CHAT = "-1001234"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    up = Receiver()
    yield up
    up.close()


def settings_for(webhook: str | None, telegram: str | None, **change: Any) -> NotifySettings:
    fields: dict[str, Any] = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, **change}
    if webhook is not None:
        fields["webhook_url"] = SecretStr(webhook)
    if telegram is not None:
        fields |= {
            "telegram_api_url": telegram,
            "telegram_bot_token": SecretStr(BOT_TOKEN),
            "telegram_chat_id": CHAT,
        }
    return NotifySettings(**fields)


def notifier_for(settings: NotifySettings) -> tuple[Notifier, Metrics]:
    metrics = Metrics()
    warnings = RepeatedWarnings(get_logger("test"), 60.0)
    return Notifier(settings, metrics, warnings), metrics


def message(number: int) -> Notification:
    return Notification(NotificationKind.ENTRY, T0, f"entry {number}", {"n": str(number)})


def counted(metrics: Metrics, channel: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "qt_notifications_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


async def test_an_up_receiver_gets_every_notification_in_order(receiver: Receiver) -> None:
    notifier, metrics = notifier_for(settings_for(f"{receiver.url}/hook", receiver.url))
    await notifier.start()
    for number in range(3):
        notifier.publish(message(number))
    await notifier.close()
    hooks = [r.body for r in receiver.received if r.path == "/hook"]
    assert [h["n"] for h in hooks] == ["0", "1", "2"]
    assert hooks[0] == {"kind": "entry", "time": T0.isoformat(), "text": "entry 0", "n": "0"}
    telegram = [r for r in receiver.received if r.path != "/hook"]
    assert {r.path for r in telegram} == {f"/bot{BOT_TOKEN}/sendMessage"}
    assert [r.body["text"] for r in telegram] == ["entry 0", "entry 1", "entry 2"]
    assert telegram[0].body["chat_id"] == CHAT
    assert counted(metrics, "webhook", "sent") == 3
    assert counted(metrics, "telegram", "sent") == 3


async def test_a_slow_receiver_is_retried_until_it_answers(receiver: Receiver) -> None:
    receiver.script = [(200, 0.6, "{}"), (503, 0.0, "{}")]  # too slow, then unavailable, then up
    notifier, metrics = notifier_for(
        settings_for(f"{receiver.url}/hook", None, request_timeout_s=0.2)
    )
    await notifier.start()
    with capture_logs() as logs:
        notifier.publish(message(1))
        await notifier.close()
    assert receiver.attempts == 3
    assert counted(metrics, "webhook", "sent") == 1
    assert counted(metrics, "webhook", "failed") == 0
    assert not [e for e in logs if e["event"] == "notification_failed"]


async def test_the_event_loops_socket_race_is_retried_not_a_lost_notification(
    receiver: Receiver,
) -> None:
    """uvloop's fd-reuse race (a plain RuntimeError from aiohttp's connect) is a connection
    not made: retried like any network failure, where the worker took it for a bug in the
    message and dropped it."""
    settings = settings_for(f"{receiver.url}/hook", None)
    metrics = Metrics()
    outbox = Outbox(
        WebhookChannel(f"{receiver.url}/hook"), settings, metrics,
        RepeatedWarnings(get_logger("test"), 60.0),
    )  # fmt: skip
    async with aiohttp.ClientSession(connector=RacingConnector(1)) as session:
        worker = asyncio.create_task(outbox.run(session))
        with capture_logs() as logs:
            outbox.put(message(1))
            await asyncio.wait_for(outbox.drained.wait(), 10)
        worker.cancel()
        await asyncio.wait({worker})
    assert [r.body["n"] for r in receiver.received] == ["1"]
    assert counted(metrics, "webhook", "sent") == 1
    assert not [e for e in logs if e["log_level"] in ("error", "warning")]


async def test_telegram_flood_control_is_respected(receiver: Receiver) -> None:
    flood = '{"ok": false, "parameters": {"retry_after": 0.05}}'
    receiver.script = [(429, 0.0, flood)]
    notifier, metrics = notifier_for(settings_for(None, receiver.url))
    await notifier.start()
    notifier.publish(message(1))
    await notifier.close()
    assert receiver.attempts == 2
    assert counted(metrics, "telegram", "sent") == 1


@pytest.mark.parametrize("header", ["²".encode(), b"1.5", b"-1", b"soon"])
async def test_a_retry_after_that_is_no_number_is_the_normal_backoff(
    receiver: Receiver, header: bytes
) -> None:
    """Was (found by an outside-style probe, 2026-12-06): `Retry-After: ²` passed isdigit,
    float() failed, and the message was lost with a traceback, counted nowhere."""
    receiver.script = [(429, 0.0, "{}")]
    receiver.headers = {"Retry-After": header}
    notifier, metrics = notifier_for(settings_for(f"{receiver.url}/hook", None))
    await notifier.start()
    with capture_logs() as logs:
        notifier.publish(message(1))
        await notifier.close()
    assert receiver.attempts == 2
    assert counted(metrics, "webhook", "sent") == 1
    assert not [e for e in logs if e["log_level"] in ("error", "warning")]


def test_retry_after_reads_ascii_seconds_or_an_http_date() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s("Sat, 05 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_s("Sat, 05 Dec 2026 11:00:00 GMT", now) == 0.0  # passed: at once
    for bad in ("²", "٣", "1.5", "-1", "", "30 seconds", "Sat, 99 Dec 2026"):
        assert retry_after_s(bad, now) is None, bad


class Broken:
    """A channel with a bug: every send raises what no channel should."""

    name = "webhook"

    async def send(self, session: aiohttp.ClientSession, notification: Notification) -> None:
        raise KeyError("a bug")


async def test_a_notification_failing_by_a_bug_is_counted_failed_and_the_next_goes_on() -> None:
    settings = settings_for(None, None)
    metrics = Metrics()
    outbox = Outbox(Broken(), settings, metrics, RepeatedWarnings(get_logger("test"), 60.0))
    async with aiohttp.ClientSession() as session:
        worker = asyncio.create_task(outbox.run(session))
        with capture_logs() as logs:
            outbox.put(message(1))
            outbox.put(message(2))
            await asyncio.wait_for(outbox.drained.wait(), 10)
        worker.cancel()
        await asyncio.wait({worker})
    assert counted(metrics, "webhook", "failed") == 2
    assert [e["kind"] for e in logs if e["event"] == "notification_error"] == ["entry", "entry"]


async def test_a_url_aiohttp_cannot_use_is_not_retried() -> None:
    """The settings refuse such a URL (test_ops_settings.py); a channel given one anyway
    (built in code) fails once, as retrying it cannot help. Was: retried as temporary."""
    settings = settings_for(None, None, max_attempts=4)
    metrics = Metrics()
    outbox = Outbox(
        WebhookChannel("http://127.0.0.1:99999/hook"), settings, metrics,
        RepeatedWarnings(get_logger("test"), 60.0),
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        worker = asyncio.create_task(outbox.run(session))
        with capture_logs() as logs:
            outbox.put(message(1))
            await asyncio.wait_for(outbox.drained.wait(), 10)
        worker.cancel()
        await asyncio.wait({worker})
    assert counted(metrics, "webhook", "failed") == 1
    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert failed["attempts"] == 1
    assert failed["reason"] == "InvalidURL"
    assert "99999" not in str(logs)


async def test_a_refusal_is_final(receiver: Receiver) -> None:
    receiver.status = 403  # e.g. the bot was removed from the chat: retrying cannot help
    notifier, metrics = notifier_for(settings_for(None, receiver.url, max_attempts=5))
    await notifier.start()
    with capture_logs() as logs:
        notifier.publish(message(1))
        await notifier.close()
    assert receiver.attempts == 1
    assert counted(metrics, "telegram", "failed") == 1
    failed = [e for e in logs if e["event"] == "notification_failed"]
    assert failed[0]["reason"] == "HTTP 403"
    assert BOT_TOKEN not in str(logs)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_final_failure_not_a_delivery(
    receiver: Receiver, status: int
) -> None:
    """A webhook that moved (an http:// address the server upgrades to https://). Was (found by
    an outside-style probe, 2026-12-04): aiohttp followed it, turning the POST of a 301, 302 or
    303 into a GET without the notification, whose 200 counted as sent; a 307/308 resent the
    notification to wherever the Location pointed."""
    receiver.script = [(status, 0.0, "{}")]
    receiver.redirect_to = "/moved"
    notifier, metrics = notifier_for(settings_for(f"{receiver.url}/hook", None, max_attempts=3))
    await notifier.start()
    with capture_logs() as logs:
        notifier.publish(message(1))
        await notifier.close()
    assert [r.path for r in receiver.received] == []
    assert receiver.attempts == 1
    assert counted(metrics, "webhook", "sent") == 0
    assert counted(metrics, "webhook", "failed") == 1
    (failed,) = [e for e in logs if e["event"] == "notification_failed"]
    assert failed["reason"] == (
        f"HTTP {status}: a redirect; set the URL to the address it redirects to"
    )
    assert "/moved" not in str(logs)


async def test_a_down_receiver_bounds_the_queue_drops_the_oldest_and_never_logs_the_token() -> None:
    down = closed_port_url()
    settings = settings_for(down, down.removesuffix("/hook"), queue_size=5, max_attempts=3)
    notifier, metrics = notifier_for(settings)
    await notifier.start()
    with capture_logs() as logs:
        for number in range(50):  # synchronous: publishing cannot wait for the network
            notifier.publish(message(number))
        assert notifier.counts() == {"pending": 10, "dropped": 90, "channels": 2}
        await notifier.close()
    assert counted(metrics, "webhook", "dropped") == 45
    assert counted(metrics, "telegram", "failed") == 5
    dropped = [e for e in logs if e["event"] == "notification_dropped"]
    assert len(dropped) == 2  # one line per channel, the rest counted (and summarized later)
    assert dropped[0]["queue_size"] == 5
    failed = [e for e in logs if e["event"] == "notification_failed"]
    assert {e["attempts"] for e in failed} == {3}
    assert {e["reason"] for e in failed} == {"ClientConnectorError"}
    assert BOT_TOKEN not in str(logs)
    assert down not in str(logs)


def test_an_exit_of_unknown_r_says_so_and_its_documents_hold_no_number_for_it() -> None:
    """A trade whose initial risk was unknown (was: "+0.00 R" and "0.0000", a break-even)."""
    known = ClosedTrade(
        "BTC/USDT:USDT", Side.LONG, Decimal("0.01"), Decimal(90_000), Decimal(91_000), T0,
        T0 + timedelta(hours=3), ExitReason.TP_HIT, Decimal(10), Decimal(0), Decimal(0), 1.5,
        "qt-e-1",
    )  # fmt: skip
    unknown = dataclasses.replace(known, r_multiple=None)
    assert exit_(known).text.endswith("PnL +10.00 USDT, +1.50 R")
    assert exit_(known).fields["r_multiple"] == "1.5000"
    assert exit_(unknown).text.endswith("PnL +10.00 USDT, R unknown (no initial risk known)")
    assert "r_multiple" not in exit_(unknown).fields
    rows = trades_document([known, unknown], Path("quantum_trader.db"))["trades"]
    assert [row["r_multiple"] for row in rows] == [1.5, None]  # `trades --json`: null


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [(1, None, 1.0), (2, None, 2.0), (3, None, 4.0), (9, None, 30.0), (1, 7.0, 7.0), (1, 99, 30.0)],
)
def test_backoff_doubles_honours_retry_after_and_is_capped(
    attempt: int, retry_after: float | None, expected: float
) -> None:
    assert backoff_s(attempt, retry_after, NotifySettings()) == expected


@pytest.mark.slow
def test_the_daemon_keeps_trading_while_its_receivers_are_down(tmp_path: Path) -> None:
    down = closed_port_url()
    daemon = Daemon.start(
        tmp_path,
        QT_MARKET__REPLAY_SPEED="600",
        QT_NOTIFY__WEBHOOK_URL=down,
        QT_NOTIFY__TELEGRAM_API_URL=down.removesuffix("/hook"),
        QT_NOTIFY__TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        QT_NOTIFY__TELEGRAM_CHAT_ID=CHAT,
        QT_NOTIFY__QUEUE_SIZE="2",
        QT_NOTIFY__BACKOFF_INITIAL_S="0.2",
    )
    status_url(daemon)
    eventually(lambda: daemon.logged_so_far("notification_failed"), 30, "a failed delivery")
    decisions = len(daemon.query("SELECT 1 FROM decisions"))
    eventually(
        lambda: (
            daemon.query("SELECT 1 FROM positions")
            and len(daemon.query("SELECT 1 FROM decisions")) > decisions + 50
        ),
        30,
        "positions and more decisions while notifications fail",
    )
    assert daemon.stop(signal.SIGTERM, timeout_s=30) == 0
    assert daemon.events[-1]["event"] == "daemon_stopped"
    assert (
        query(tmp_path / "quantum_trader.db", "SELECT 1 FROM orders WHERE status = 'PENDING'") == []
    )
    output = daemon.output.read_text() + daemon.stderr
    assert BOT_TOKEN not in output
    assert down not in output


def test_a_liquidation_and_an_adl_are_named_wherever_exits_are_read() -> None:
    """The exit message, `trades --json`, the closed-trade metric and the report's table by
    exit reason (keeper/forced.py names them; were MANUAL)."""
    base = ClosedTrade(
        "BTC/USDT:USDT", Side.LONG, Decimal("0.01"), Decimal(90_000), Decimal(60_000), T0,
        T0 + timedelta(hours=3), ExitReason.LIQUIDATION, Decimal(-300), Decimal(1), Decimal(0),
        -1.0, "qt-e-2",
    )  # fmt: skip
    trades = [base, dataclasses.replace(base, exit_reason=ExitReason.ADL)]
    assert exit_(base).text.startswith("EXIT LONG BTC/USDT:USDT (LIQUIDATION) @ 60000")
    assert exit_(trades[1]).fields["reason"] == "ADL"
    rows = trades_document(trades, Path("quantum_trader.db"))["trades"]
    assert [row["exit_reason"] for row in rows] == ["LIQUIDATION", "ADL"]
    metrics = Metrics()
    for reason in ("LIQUIDATION", "ADL"):  # exported at 0 before the first
        labels = {"reason": reason}
        assert metrics.registry.get_sample_value("qt_trades_closed_total", labels) == 0
    table = group_table(trade_table(trades), "exit_reason")
    assert [(row["exit_reason"], row["trades"]) for row in table] == [
        ("ADL", 1),
        ("LIQUIDATION", 1),
    ]


def test_a_request_the_stopping_daemon_did_not_carry_out_is_notified(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A grace too short for the loops to end: the stop sends nothing more, and the request
    filed before it is notified as not done (the log and `status` say so too:
    tests/robustness/test_bad_operator_requests.py)."""
    daemon = Daemon.start(
        tmp_path / "data",
        QT_MARKET__REPLAY_SPEED="1",
        QT_MONITOR__INTERVAL_S="3600",  # no tick between the request and the stop
        QT_OPERATOR__REQUEST_MAX_AGE_S="7210",
        QT_EXECUTOR__SHUTDOWN_GRACE_S="0.000001",
        QT_NOTIFY__WEBHOOK_URL=f"{receiver.url}/hook",
    )
    try:
        eventually(lambda: daemon.logged_so_far("cycle_completed"), 60, "the first cycle")
        assert daemon.cli("close-all", "--operator", "desk").returncode == 0
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    (not_done,) = [
        r.body for r in receiver.received if r.body["kind"] == "operator_request_not_done"
    ]
    assert not_done["request"] == "close_all"
    assert not_done["by"] == "desk"
    assert not_done["text"].startswith("NOT DONE: operator request close_all (by desk at ")
