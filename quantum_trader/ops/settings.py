"""Settings of the operations side: the status server, notifications, operator requests."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from quantum_trader.settings_base import DAY_S, YEAR_S, Section

# The longest notify.shutdown_flush_s: the stop must end within the shipped service unit's
# TimeoutStopSec (60 s) after the executor's grace; beyond it systemd kills the daemon.
MAX_SHUTDOWN_FLUSH_S = 60.0


class ServerSettings(Section):
    """The status server: /health, /status, /metrics and the live page at /.

    `host` 127.0.0.1 keeps it on this machine; in a container set 0.0.0.0 so Prometheus can
    scrape it (compose does). `port` 0 picks a free port (the daemon logs the one it got).
    With `token` set, everything but /health needs `Authorization: Bearer <token>`.
    `exchange_read_interval_s` bounds how often /status reads the balance and mark prices from
    the exchange (weight 15 on Binance per read), however often it is polled;
    `exchange_read_wait_s` how long a request waits for such a read before it is answered with
    the last figures read (the read goes on; `exchange_read.pending_since` says so).
    `maintenance_margin_rate` estimates the liquidation price (Binance's first tier is
    0.4 %-1 % by symbol; the exchange's own figure is the one that counts).
    `max_connections` caps the open client connections (one more is closed at once; `run`
    refuses a cap the open-file limit cannot hold with 256 to spare, ops/server.py);
    `request_head_timeout_s` is how long a connection may take to send a complete request head
    after connecting or after its previous response (an idle kept-alive connection is closed
    then too): slow and abusive clients cannot hold the daemon's descriptors (ops/server_guard.py).
    At least 1 s: a head that arrived whole is read on the event loop's next turn, and a shorter
    timer due by then closes it (1e-300 let no request in, 0.001 one in four on loopback).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: SecretStr | None = None
    exchange_read_interval_s: float = Field(15.0, gt=0, le=DAY_S)
    exchange_read_wait_s: float = Field(2.0, gt=0, le=60)
    maintenance_margin_rate: float = Field(0.005, ge=0, lt=0.5)
    equity_points: int = Field(500, ge=10, le=100_000)
    recent_decisions: int = Field(50, ge=1, le=10_000)
    max_connections: int = Field(64, ge=1, le=10_000)
    request_head_timeout_s: float = Field(10.0, ge=1, le=3_600)

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        """A host name or address alone: asyncio binds an empty host on every interface, and a
        port or a scheme would only fail later, as if the port were taken."""
        advice = (
            "; give a host name or address: 127.0.0.1 for this machine only, 0.0.0.0 for "
            "every interface"
        )
        if not value.strip():
            raise ValueError(f"is empty, which would listen on every interface{advice}")
        if "/" in value:
            raise ValueError(f"is a host, not a URL{advice} (the port is server.port)")
        if value.count(":") == 1:  # an IPv6 address has two or more
            raise ValueError(f"a host without a port{advice} (the port is server.port)")
        return value

    @field_validator("token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the bearer token must be at least 16 characters")
        text = "" if value is None else value.get_secret_value()
        # A browser sends a header's characters beyond ASCII as single bytes, not the UTF-8
        # the server reads; a space at either end is dropped on the way.
        if not (text.isascii() and text.isprintable() and text == text.strip()):
            raise ValueError(
                "must be printable ASCII without a space at either end: the live page's "
                "browser sends nothing else in a header"
            )
        return value


class NotifySettings(Section):
    """Where notifications go: a webhook (JSON POST) and/or a Telegram chat.

    Both URLs and the bot token are secrets (a webhook URL often embeds one). Notifications
    wait in a bounded queue per destination (`queue_size`; when full the oldest is dropped and
    counted) and are retried `max_attempts` times with exponential backoff from
    `backoff_initial_s` up to `backoff_max_s`. Trading never waits for them.
    """

    webhook_url: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    queue_size: int = Field(100, ge=1, le=100_000)
    max_attempts: int = Field(4, ge=1, le=20)
    backoff_initial_s: float = Field(1.0, gt=0, le=YEAR_S)
    backoff_max_s: float = Field(30.0, gt=0, le=YEAR_S)
    request_timeout_s: float = Field(5.0, gt=0, le=300)
    shutdown_flush_s: float = Field(2.0, ge=0, le=MAX_SHUTDOWN_FLUSH_S)

    @field_validator("telegram_bot_token", "telegram_chat_id", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        """Set to nothing (a template's `QT_NOTIFY__TELEGRAM_BOT_TOKEN=`): every message would
        be refused by Telegram; unset means no Telegram."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty; unset it, or give the value")
        return value

    @model_validator(mode="after")
    def _check_telegram(self) -> NotifySettings:
        if (self.telegram_bot_token is None) != (self.telegram_chat_id is None):
            raise ValueError(
                "telegram needs both notify.telegram_bot_token and notify.telegram_chat_id "
                "(QT_NOTIFY__TELEGRAM_BOT_TOKEN, QT_NOTIFY__TELEGRAM_CHAT_ID)"
            )
        return self

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = url_problem(value.get_secret_value(), userinfo=True)
            if problem:  # the value is never shown: its path or query may hold a token
                raise ValueError(f"{problem}, e.g. https://hooks.example.com/path")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        problem = url_problem(value, userinfo=False)
        if problem:
            raise ValueError(f"{problem}, e.g. https://api.telegram.org")
        return value.rstrip("/")


def url_problem(url: str, *, userinfo: bool) -> str | None:
    """Why `url` is no http(s) address a request can be sent to, in words that do not repeat
    it (a webhook's path may carry a token); None when it is one. Checked at load: a URL that
    cannot be parsed fails every send, and retrying cannot help."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError:
        return "must be an http(s) URL with a host and a port in 1..65535 (it cannot be parsed)"
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    if not parts.hostname or any(c.isspace() for c in url):
        return "must be an http(s) URL with a host (and no spaces)"
    if port == 0:
        return "must be an http(s) URL with a port in 1..65535"
    if not userinfo and (parts.username is not None or parts.password is not None):
        return (
            "must not carry a user or password (user:password@): the address is shown by "
            "config show; give it without them"
        )
    return None


class OperatorSettings(Section):
    """Operator requests (`pause`, `resume`, `close-all`, `reset-halt`, `lift-blacklist`).

    The daemon acts only on requests filed after it started and at most
    `request_max_age_s` seconds (wall clock) ago; older ones are dropped with a log line, so
    nothing filed long ago is carried out later by surprise. It must be at least twice the
    monitor's tick plus 10 s (config.py): requests are carried out on that tick.
    """

    # Above a day: config.py requires twice the monitor's tick, which may be a day.
    request_max_age_s: float = Field(300.0, gt=0, le=3 * DAY_S)
