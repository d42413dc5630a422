"""The server's and the notifications' settings: one line per problem, secrets never shown,
and an address already in use is a configuration problem (exit 2), not a crash."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env
from daemon_harness import Daemon, eventually
from ops_builders import BOT_TOKEN, TOKEN

from quantum_trader.config_load import load_settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.ops.server import check_address, check_open_files
from quantum_trader.ops.settings import ServerSettings


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = child_env()
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        capture_output=True,
        text=True,
        env={**clean, "QT_DATA_DIR": str(cwd), **env},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def problems(**env: str) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as error:
        load_settings(None, environ=env)
    return error.value.problems


def test_the_server_listens_on_loopback_by_default() -> None:
    settings = load_settings(None, environ={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.token is None
    assert settings.notify.webhook_url is None


def test_the_connection_cap_and_the_head_timeout_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At least one connection, a head timeout of at least 1 s: one clear line each."""
    settings = load_settings(None, environ={})
    assert (settings.server.max_connections, settings.server.request_head_timeout_s) == (64, 10)
    monkeypatch.setenv("QT_SERVER__MAX_CONNECTIONS", "0")
    (cap,) = problems(QT_SERVER__MAX_CONNECTIONS="0")
    assert cap.startswith("server.max_connections: ")
    assert "greater than or equal to 1" in cap
    monkeypatch.delenv("QT_SERVER__MAX_CONNECTIONS")
    monkeypatch.setenv("QT_SERVER__REQUEST_HEAD_TIMEOUT_S", "0")
    (timeout,) = problems(QT_SERVER__REQUEST_HEAD_TIMEOUT_S="0")
    assert timeout.startswith("server.request_head_timeout_s: ")
    assert "greater than or equal to 1" in timeout


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("QT_SERVER__MAX_CONNECTIONS", "0", "greater than or equal to 1"),
        ("QT_SERVER__MAX_CONNECTIONS", "10001", "less than or equal to 10000"),
        ("QT_SERVER__MAX_CONNECTIONS", "1.5", "a valid integer"),
        ("QT_SERVER__REQUEST_HEAD_TIMEOUT_S", "nan", "a finite number"),
        ("QT_SERVER__REQUEST_HEAD_TIMEOUT_S", "10s", "a valid number"),
        ("QT_SERVER__REQUEST_HEAD_TIMEOUT_S", "3601", "less than or equal to 3600"),
        # Was accepted: no request ever reached the server (1e-300), or one in four did not
        # (0.001 on loopback): a head that arrives whole waits for the loop's next turn, and a
        # timer due by then has closed it.
        ("QT_SERVER__REQUEST_HEAD_TIMEOUT_S", "1e-300", "greater than or equal to 1"),
        ("QT_SERVER__REQUEST_HEAD_TIMEOUT_S", "0.5", "greater than or equal to 1"),
    ],
)
def test_a_bad_cap_or_head_timeout_is_one_line_and_exit_2(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    done = run_cli("run", cwd=tmp_path, **{variable: value})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    setting = variable.removeprefix("QT_SERVER__").lower()
    assert line.startswith(f"configuration error: server.{setting}: ")
    assert says in line
    assert line.endswith(f"[{variable}]")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing opened


def test_a_cap_beyond_the_open_file_limit_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Under `ulimit -n 512`, a cap of 5,000 (was accepted: 700 slow clients then took every
    descriptor, `Too many open files` failed the cycles, as before the guard); 64 is fine."""
    clean = child_env()

    def at_most_512_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    done = subprocess.run(
        [sys.executable, "-m", "quantum_trader", "run"],
        capture_output=True,
        text=True,
        env={**clean, "QT_DATA_DIR": str(tmp_path), "QT_SERVER__MAX_CONNECTIONS": "5000"},
        cwd=tmp_path,
        timeout=60,
        check=False,
        preexec_fn=at_most_512_files,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("configuration error: server.max_connections: 5000 connections ")
    assert "512" in line
    assert "QT_SERVER__MAX_CONNECTIONS" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing opened
    check_open_files(ServerSettings(max_connections=64))  # this process's limit: enough


def test_a_short_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_SERVER__TOKEN", "short-secret")
    (line,) = problems(QT_SERVER__TOKEN="short-secret")
    assert line.startswith("server.token: ")
    assert "short-secret" not in line


def test_telegram_needs_a_chat_as_well_as_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_NOTIFY__TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    (line,) = problems(QT_NOTIFY__TELEGRAM_BOT_TOKEN=BOT_TOKEN)
    assert "telegram_chat_id" in line
    assert BOT_TOKEN not in line


def test_config_show_redacts_the_tokens_and_the_webhook(tmp_path: Path) -> None:
    hook = "https://hooks.example.invalid/services/T000/B000/XYZsecret"
    done = run_cli(
        "config",
        "show",
        cwd=tmp_path,
        QT_SERVER__TOKEN=TOKEN,
        QT_NOTIFY__WEBHOOK_URL=hook,
        QT_NOTIFY__TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        QT_NOTIFY__TELEGRAM_CHAT_ID="42",
    )
    assert done.returncode == 0, done.stderr
    for secret in (TOKEN, hook, BOT_TOKEN):
        assert secret not in done.stdout


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "run", cwd=tmp_path, QT_SERVER__PORT=str(port), QT_MARKET__REPLAY_SPEED="600"
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"configuration error: server.port: cannot listen on 127.0.0.1:{port}"
    )
    assert "QT_SERVER__PORT" in lines[0]
    # Checked before anything is opened: no lock, no database, no paper account.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_address_is_checked_as_the_server_would_bind_it() -> None:
    """Before anything is opened: each address of the host, a taken port named as such, an
    address of another machine as a host problem, port 0 and a disabled server not at all."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for host in ("127.0.0.1", "localhost", "0.0.0.0"):
            with pytest.raises(ConfigurationError) as error:
                check_address(ServerSettings(host=host, port=port))
            (line,) = error.value.problems
            assert line.startswith(f"server.port: cannot listen on {host}:{port} (")
            assert "another daemon" in line
        check_address(ServerSettings(host="127.0.0.1", port=port, enabled=False))
        check_address(ServerSettings(host="127.0.0.1", port=0))
    check_address(ServerSettings(host="127.0.0.1", port=port))  # free again
    with pytest.raises(ConfigurationError) as error:
        check_address(ServerSettings(host="192.0.2.1", port=port))  # TEST-NET-1: not ours
    (line,) = error.value.problems
    assert line.startswith(f"server.host: cannot listen on 192.0.2.1:{port} (")
    assert "QT_SERVER__HOST" in line


@pytest.mark.parametrize(
    ("value", "says"),
    [
        # Was accepted: asyncio binds an empty host on every interface, so a template's
        # `QT_SERVER__HOST=` served /status to the network (found by an outside-style probe).
        ("", "is empty"),
        ("   ", "is empty"),
        # Were accepted, then `run` blamed server.port and asked whether another daemon ran.
        ("127.0.0.1:8080", "without a port"),
        ("http://127.0.0.1", "not a URL"),
        ("localhost/", "not a URL"),
    ],
)
def test_a_host_that_is_no_host_is_one_line_naming_server_host(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("QT_SERVER__HOST", value)
    (line,) = problems(QT_SERVER__HOST=value)
    assert line.startswith("server.host: ")
    assert says in line
    assert "127.0.0.1 for this machine only" in line
    assert line.endswith("[QT_SERVER__HOST]")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", "::1", "::", "fe80::1"])
def test_host_names_and_addresses_ipv6_ones_too_are_taken(host: str) -> None:
    assert ServerSettings(host=host).host == host


def test_a_host_name_that_does_not_resolve_is_named_as_the_host(tmp_path: Path) -> None:
    """Was: `server.port: cannot listen on nosuchhost.invalid:8080 (Name or service not
    known); is another daemon running?`."""
    done = run_cli("run", cwd=tmp_path, QT_SERVER__HOST="nosuchhost.invalid")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("configuration error: server.host: cannot listen on nosuchhost")
    assert "not a name or address of this machine" in line
    assert "another daemon" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing opened


@pytest.mark.parametrize(
    "token",
    ["pässwörd-ünïcode-tökën-1234", "token-with-a-tab\there-12345", " token-with-a-leading-space"],
)
def test_a_token_the_live_page_cannot_send_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """Was accepted (found by an outside-style probe, 2026-12-04): a browser sends a header's
    characters beyond ASCII as single bytes, which the server does not read as the UTF-8 curl
    sends, so the page got 401 for ever with the right token; a space at either end is
    dropped from a header on its way."""
    monkeypatch.setenv("QT_SERVER__TOKEN", token)
    (line,) = problems(QT_SERVER__TOKEN=token)
    assert line == (
        "server.token: must be printable ASCII without a space at either end: the live page's "
        "browser sends nothing else in a header [QT_SERVER__TOKEN]"
    )


@pytest.mark.parametrize("host", ["::1", "::"])
def test_an_ipv6_address_is_bracketed_in_the_url_it_logs(tmp_path: Path, host: str) -> None:
    """Was `http://::1:39695` / `http://:::39613`, which no browser or curl opens (found by an
    outside-style probe, 2026-12-04)."""
    daemon = Daemon.start(tmp_path / "data", QT_SERVER__HOST=host, QT_MARKET__REPLAY_SPEED="60")
    try:
        (started,) = eventually(
            lambda: daemon.logged_so_far("status_server_started") or None, 60, "the server"
        )
    finally:
        assert daemon.stop(signal.SIGTERM) == 0, daemon.stderr
    assert started["url"].startswith(f"http://[{host}]:")
    port = int(started["url"].rsplit(":", 1)[1])
    assert port > 0


SECRET_PATH = "services/T000/XYZsecret"


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        f"http://127.0.0.1:99999/{SECRET_PATH}",
        f"http://[::1/{SECRET_PATH}",
        f"http://hooks.example.invalid:0/{SECRET_PATH}",
        f"ftp://hooks.example.invalid/{SECRET_PATH}",
    ],
)
def test_a_webhook_url_nothing_can_be_sent_to_is_refused_without_echoing_it(
    tmp_path: Path, url: str
) -> None:
    """Was: only its scheme checked; the daemon ran and every notification failed
    (InvalidUrlClientError), retried as if it could pass."""
    done = run_cli("config", "show", cwd=tmp_path, QT_NOTIFY__WEBHOOK_URL=url)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("configuration error: notify.webhook_url: must be an http(s) URL")
    assert line.endswith("[QT_NOTIFY__WEBHOOK_URL]")
    assert "XYZsecret" not in line
    assert "99999" not in line


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://bob:pw-secret@tg.example.invalid", "must not carry a user or password"),
        ("ftp://bob:pw-secret@tg.example.invalid", "must be an http(s) URL"),
    ],
)
def test_a_telegram_api_url_with_a_password_is_refused_without_echoing_it(
    tmp_path: Path, url: str, why: str
) -> None:
    """Was: printed by `config show`, and echoed whole by the bad-scheme error."""
    done = run_cli("config", "show", cwd=tmp_path, QT_NOTIFY__TELEGRAM_API_URL=url)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"configuration error: notify.telegram_api_url: {why}")
    assert "pw-secret" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("env", "needed"),
    [
        ({"QT_OPERATOR__REQUEST_MAX_AGE_S": "4"}, "twice monitor.interval_s (5 s) plus 10 s (20)"),
        (
            {"QT_OPERATOR__REQUEST_MAX_AGE_S": "60", "QT_MONITOR__INTERVAL_S": "30"},
            "twice monitor.interval_s (30 s) plus 10 s (70)",
        ),
        (
            {"QT_MARKET__REPLAY_SPEED": "0.02"},
            "twice monitor.interval_s (5 s of the replay's clock, 250 s of real time at "
            "market.replay_speed 0.02) plus 10 s (510)",
        ),
    ],
)
def test_a_request_max_age_that_a_monitor_tick_outlives_is_refused(
    tmp_path: Path, env: dict[str, str], needed: str
) -> None:
    """Was: accepted; every request was then dropped as `too_old` while the command said the
    daemon would act on it at its next tick (exit 0)."""
    data_dir = tmp_path / "never"
    done = run_cli("run", cwd=tmp_path, **{"QT_DATA_DIR": str(data_dir), **env})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"configuration error: operator.request_max_age_s: must be at least {needed}"
    )
    assert not data_dir.exists()


def test_a_notification_flush_beyond_the_service_units_stop_timeout_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: 1e12 accepted; with a webhook that never answered, SIGTERM never finished."""
    monkeypatch.setenv("QT_NOTIFY__SHUTDOWN_FLUSH_S", "61")
    (line,) = problems(QT_NOTIFY__SHUTDOWN_FLUSH_S="61")
    assert line.startswith("notify.shutdown_flush_s: Input should be less than or equal to 60")
