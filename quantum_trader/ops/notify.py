"""Notifications to a webhook and to Telegram, sent beside trading, never in its way.

`Notifier.publish` is synchronous and O(1): it appends to a bounded queue per destination and
returns. When a queue is full the oldest notification is dropped, counted and logged. One
worker task per destination sends in order, retrying timeouts, connection errors, HTTP 408,
429 and 5xx with exponential backoff (Retry-After and Telegram's `retry_after` are honoured,
capped); any other answer is final, and so is a URL aiohttp cannot use. A message that fails by
an unexpected error (a bug) is counted failed too. The bot token and the webhook URL (which
often embeds a token) are never logged: failures are logged by error class or HTTP status only.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

import aiohttp

from quantum_trader.errors import socket_race
from quantum_trader.log import get_logger
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.ops.settings import NotifySettings
from quantum_trader.record import record

log = get_logger("notify")
RETRYABLE_STATUS = frozenset({408, 425, 429})
# Retry-After's delay-seconds (RFC 9110 §10.2.3): ASCII digits only (str.isdigit takes "²").
DELAY_SECONDS = re.compile(r"[0-9]+")


class NotificationKind(StrEnum):
    DAEMON_STARTED = "daemon_started"
    DAEMON_STOPPED = "daemon_stopped"
    ENTRY = "entry"
    EXIT = "exit"
    GOVERNOR_TRIP = "governor_trip"
    HEALTH_CRITICAL = "health_critical"
    UNIVERSE_CHANGED = "universe_changed"
    OPERATOR_PAUSED = "operator_paused"
    OPERATOR_RESUMED = "operator_resumed"
    OPERATOR_REQUEST_NOT_DONE = "operator_request_not_done"
    PROTECTION_FAILED = "protection_failed"


@record
class Notification:
    """One message: `text` for people, `fields` for machines. `time` is the trading clock's."""

    kind: NotificationKind
    time: datetime
    text: str
    fields: Mapping[str, str] = field(default_factory=dict)


class DeliveryFailed(Exception):
    """A send that did not succeed; `retryable` says whether trying again can help."""

    def __init__(self, reason: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Channel(Protocol):
    name: str

    async def send(self, session: aiohttp.ClientSession, notification: Notification) -> None:
        """Deliver once; raise DeliveryFailed."""
        ...


class WebhookChannel:
    """POST {"kind", "time", "text", **fields} as JSON; any 2xx is success."""

    name = "webhook"

    def __init__(self, url: str) -> None:
        self._url = url

    async def send(self, session: aiohttp.ClientSession, notification: Notification) -> None:
        body = {
            "kind": notification.kind.value,
            "time": notification.time.isoformat(),
            "text": notification.text,
            **notification.fields,
        }
        await _post(session, self._url, body)


class TelegramChannel:
    """The Bot API's sendMessage at `api_url` (https://api.telegram.org unless configured)."""

    name = "telegram"

    def __init__(self, api_url: str, bot_token: str, chat_id: str) -> None:
        self._url = f"{api_url}/bot{bot_token}/sendMessage"
        self._chat_id = chat_id

    async def send(self, session: aiohttp.ClientSession, notification: Notification) -> None:
        body = {"chat_id": self._chat_id, "text": notification.text}
        await _post(session, self._url, {**body, "disable_web_page_preview": True})


async def _post(session: aiohttp.ClientSession, url: str, body: Mapping[str, Any]) -> None:
    try:
        # Not followed: a 301/302/303 would turn the POST into a GET without the notification
        # (its 200 taken for a delivery), a 307/308 send it wherever the Location points.
        async with session.post(url, json=body, allow_redirects=False) as response:
            if 200 <= response.status < 300:
                return
            if 300 <= response.status < 400:
                raise DeliveryFailed(
                    f"HTTP {response.status}: a redirect; set the URL to the address it "
                    "redirects to",
                    retryable=False,
                )
            retry_after = await _retry_after(response)
            retryable = response.status in RETRYABLE_STATUS or response.status >= 500
            raise DeliveryFailed(f"HTTP {response.status}", retryable, retry_after)
    except aiohttp.InvalidURL:  # the same URL fails the same way however often it is tried
        raise DeliveryFailed("InvalidURL", retryable=False) from None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise DeliveryFailed(type(error).__name__, retryable=True) from None
    except RuntimeError as error:
        if not socket_race(error):
            raise
        raise DeliveryFailed("connection not made (event loop socket race)", True) from None


async def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Seconds to wait from a 429: Retry-After, else Telegram's `parameters.retry_after`;
    None (the normal backoff) for anything else."""
    if response.status != 429:
        return None
    # An HTTP date is the receiver's wall time, never the trading clock (a replay's runs fast).
    header = retry_after_s(response.headers.get("Retry-After", ""), datetime.now(UTC))
    if header is not None:
        return header
    try:
        payload = await response.json(content_type=None)
        return float(str(payload["parameters"]["retry_after"]))
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        return None


def retry_after_s(header: str, now: datetime) -> float | None:
    """A Retry-After value in seconds from `now`: delay-seconds or an HTTP date (RFC 9110);
    None for anything else."""
    text = header.strip()
    if DELAY_SECONDS.fullmatch(text):
        return float(text)
    if not text.isascii():
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": no zone said; an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


class Outbox:
    """A bounded queue in front of one channel, and the loop that empties it."""

    def __init__(
        self,
        channel: Channel,
        settings: NotifySettings,
        metrics: Metrics,
        warnings: RepeatedWarnings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self._settings = settings
        self._metrics = metrics
        self._warnings = warnings
        self._monotonic = monotonic
        metrics.declare_channel(channel.name)
        self._queue: deque[Notification] = deque()
        self._ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.busy = False
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._queue) + (1 if self.busy else 0)

    def put(self, notification: Notification) -> None:
        """Queue without waiting; when full, drop the oldest (counted and logged)."""
        if len(self._queue) >= self._settings.queue_size:
            oldest = self._queue.popleft()
            self.dropped += 1
            self._metrics.notifications.labels(self.channel.name, "dropped").inc()
            self._warnings.warn(
                "notification_dropped", self.channel.name, self._monotonic(),
                channel=self.channel.name, kind=oldest.kind.value, dropped_total=self.dropped,
                queue_size=self._settings.queue_size,
            )  # fmt: skip
        self._queue.append(notification)
        self.drained.clear()
        self._ready.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Send queued notifications one at a time, in order, until cancelled."""
        while True:
            await self._ready.wait()
            if not self._queue:
                self._ready.clear()
                self.drained.set()
                continue
            notification = self._queue.popleft()
            self.busy = True
            try:
                await self._deliver(session, notification)
            except Exception as error:  # a bug in one message must not end the worker
                self._metrics.notifications.labels(self.channel.name, "failed").inc()
                self._metrics.on_error(type(error).__name__, f"notify:{self.channel.name}")
                log.exception(
                    "notification_error", channel=self.channel.name, kind=notification.kind.value
                )
            finally:
                self.busy = False

    async def _deliver(self, session: aiohttp.ClientSession, notification: Notification) -> None:
        s = self._settings
        name = self.channel.name
        for attempt in range(1, s.max_attempts + 1):
            try:
                await self.channel.send(session, notification)
            except DeliveryFailed as failure:
                if not failure.retryable or attempt == s.max_attempts:
                    self._metrics.notifications.labels(name, "failed").inc()
                    self._metrics.on_error(failure.reason, f"notify:{name}")
                    log.warning(
                        "notification_failed", channel=name, kind=notification.kind.value,
                        attempts=attempt, reason=failure.reason,
                    )  # fmt: skip
                    return
                await asyncio.sleep(backoff_s(attempt, failure.retry_after_s, self._settings))
            else:
                self._metrics.notifications.labels(name, "sent").inc()
                return


def backoff_s(attempt: int, retry_after_s: float | None, settings: NotifySettings) -> float:
    """The wait after failed attempt number `attempt` (1-based): doubling from
    `backoff_initial_s`, at least the server's `retry_after_s`, never above `backoff_max_s`."""
    delay: float = min(settings.backoff_initial_s * 2.0 ** (attempt - 1), settings.backoff_max_s)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, settings.backoff_max_s))
    return delay


def channels_from(settings: NotifySettings) -> list[Channel]:
    """The destinations the settings name (none: notifications are off)."""
    channels: list[Channel] = []
    if settings.webhook_url is not None:
        channels.append(WebhookChannel(settings.webhook_url.get_secret_value()))
    if settings.telegram_bot_token is not None and settings.telegram_chat_id is not None:
        token = settings.telegram_bot_token.get_secret_value()
        channels.append(
            TelegramChannel(settings.telegram_api_url, token, settings.telegram_chat_id)
        )
    return channels


class Notifier:
    """Every configured destination's outbox and worker. `start` opens the HTTP session and
    the workers; `close` gives the queues `shutdown_flush_s` to empty, then stops."""

    def __init__(
        self,
        settings: NotifySettings,
        metrics: Metrics,
        warnings: RepeatedWarnings,
        channels: list[Channel] | None = None,
    ) -> None:
        self._settings = settings
        chosen = channels_from(settings) if channels is None else channels
        self.outboxes = [Outbox(c, settings, metrics, warnings) for c in chosen]
        self._session: aiohttp.ClientSession | None = None
        self._workers: list[asyncio.Task[None]] = []

    def publish(self, notification: Notification) -> None:
        """Queue for every destination; never waits."""
        for outbox in self.outboxes:
            outbox.put(notification)

    def counts(self) -> dict[str, int]:
        return {
            "pending": sum(o.pending for o in self.outboxes),
            "dropped": sum(o.dropped for o in self.outboxes),
            "channels": len(self.outboxes),
        }

    async def start(self) -> None:
        if not self.outboxes:
            return
        timeout = aiohttp.ClientTimeout(total=self._settings.request_timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._workers = [
            asyncio.create_task(o.run(self._session), name=f"notify-{o.channel.name}")
            for o in self.outboxes
        ]

    async def close(self) -> None:
        """Let the queues drain for at most `shutdown_flush_s`, then stop the workers."""
        try:
            async with asyncio.timeout(self._settings.shutdown_flush_s):
                for outbox in self.outboxes:
                    await outbox.drained.wait()
        except TimeoutError:
            pass
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        left = sum(o.pending for o in self.outboxes)
        if left:
            log.warning("notifications_unsent_at_shutdown", count=left)
        if self._session is not None:
            await self._session.close()
