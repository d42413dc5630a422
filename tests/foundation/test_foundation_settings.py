"""Settings as a new user meets them: one clear line per problem, exit code 2, secrets hidden."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from child_env import child_env

from quantum_trader.config import Settings
from quantum_trader.config_load import load_settings
from quantum_trader.errors import ConfigurationError


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = child_env()
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def problems(config: Path | None = None, **env: str) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as error:
        load_settings(config, environ=env) if not env else _with_env(config, env)
    return error.value.problems


def _with_env(config: Path | None, env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings(config, environ=env)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_defaults_load_without_a_file() -> None:
    settings = load_settings(None, environ={})
    assert settings.exchange.mode == "paper"
    assert settings.executor.interval_s == 30
    assert settings.monitor.interval_s == 5


def test_a_misspelt_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "qt.toml"
    config.write_text("[executor]\nintervl_s = 30\n")
    assert problems(config) == (
        f"executor.intervl_s: unknown setting (misspelt?) [config file {config}]",
    )


def test_a_misspelt_section_in_the_environment_is_named() -> None:
    assert problems(QT_EXECUTR__INTERVAL_S="30") == (
        "QT_EXECUTR__INTERVAL_S: unknown setting 'executr' (environment variable)",
    )


def test_a_negative_interval_is_refused() -> None:
    found = problems(QT_EXECUTOR__INTERVAL_S="-5")
    assert found == (
        "executor.interval_s: Input should be greater than 0; got '-5' [QT_EXECUTOR__INTERVAL_S]",
    )


def test_a_non_numeric_environment_value_is_named() -> None:
    (line,) = problems(QT_MONITOR__INTERVAL_S="fast")
    assert line.startswith("monitor.interval_s: Input should be a valid number")
    assert "QT_MONITOR__INTERVAL_S" in line


def test_live_needs_an_explicit_confirmation() -> None:
    (line,) = problems(
        QT_EXCHANGE__MODE="live", QT_EXCHANGE__API_KEY="k", QT_EXCHANGE__API_SECRET="s"
    )
    assert "i_understand_live_risk" in line


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems(missing) == (f"config file not found: {missing} (--config)",)


def test_a_config_directory_is_named_as_one(tmp_path: Path) -> None:
    assert problems(tmp_path) == (f"--config {tmp_path}: a directory; name the TOML file",)


@pytest.mark.parametrize("kind", ["device", "fifo", "link loop"])
def test_a_config_that_is_no_regular_file_is_named_as_such(tmp_path: Path, kind: str) -> None:
    """Was: `config file not found` for /dev/null, a FIFO or a symbolic link loop."""
    path = Path("/dev/null") if kind == "device" else tmp_path / "config.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link loop":
        path.symlink_to(path.name)
    assert problems(path) == (f"--config {path}: not a regular file; name the TOML file",)


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[executor\n")
    (line,) = problems(config)
    assert line.startswith(f"config file {config} is not valid TOML")


def test_every_problem_gets_its_own_line() -> None:
    found = problems(QT_EXECUTOR__INTERVAL_S="-1", QT_MONITOR__INTERVAL_S="x")
    assert len(found) == 2


def test_the_cli_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    config = tmp_path / "qt.toml"
    config.write_text("[executor]\nintervl_s = 30\n")
    done = cli("run", "--config", str(config), env={"QT_MONITOR__INTERVAL_S": "-1"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("configuration error: ") for line in lines)


def test_config_show_redacts_secrets(tmp_path: Path) -> None:
    done = cli(
        "config",
        "show",
        env={"QT_EXCHANGE__API_KEY": "key-do-not-print", "QT_EXCHANGE__API_SECRET": "secret-xyz"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "key-do-not-print" not in done.stdout
    assert "secret-xyz" not in done.stdout
    assert "**********" in done.stdout


def test_usage_errors_exit_2() -> None:
    assert cli("backtest", "--start", "yesterday").returncode == 2
    assert cli("no-such-command").returncode == 2


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (
            b"\xff\xfe[\x00e\x00x\x00]\x00\n\x00",
            "it is not UTF-8 text (byte 0: invalid start byte)",
        ),
        (b"\xef\xbb\xbf[executor]\n", "it starts with a byte-order mark"),
    ],
)
def test_a_config_file_that_is_not_utf8_text_is_named_as_such(
    tmp_path: Path, content: bytes, why: str
) -> None:
    config = tmp_path / "qt.toml"
    config.write_bytes(content)
    (line,) = problems(config)
    assert line.startswith(f"config file {config} is not valid TOML: {why}")
    done = cli("config", "show", "--config", str(config), cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (2, f"configuration error: {line}")


@pytest.mark.parametrize("variable", ["QT_EXCHANGE__REST_URL", "QT_EXCHANGE__WS_URL"])
def test_an_exchange_address_carrying_a_password_is_refused_without_printing_it(
    tmp_path: Path, variable: str
) -> None:
    scheme = "ws" if variable.endswith("WS_URL") else "http"
    done = cli("config", "show", env={variable: f"{scheme}://bob:PW-do-not-print@127.0.0.1:9"})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "must not carry a user or password" in line
    assert f"got '{scheme}://bob:***@127.0.0.1:9'" in line
    assert "PW-do-not-print" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "given", ["2025-10-01", "2025-10-01T00:00:00", "2025-10-01T02:00:00+02:00", "2025-10-01T00:00Z"]
)
def test_a_replay_start_is_an_instant_in_utc_with_or_without_a_zone(given: str) -> None:
    start = _with_env(None, {"QT_MARKET__REPLAY_START": given}).market.replay_start
    assert start == datetime(2025, 10, 1, tzinfo=UTC)
    assert start is not None
    assert start.tzinfo is UTC


def test_a_replay_start_outside_the_recording_is_a_configuration_error(tmp_path: Path) -> None:
    env = {
        "QT_DATA_DIR": str(tmp_path / "data"),
        "QT_MARKET__REPLAY_START": "2030-01-01T00:00:00Z",
        "QT_SERVER__PORT": "0",
    }
    done = cli("run", env=env, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        "configuration error: market.replay_start: 2030-01-01T00:00:00+00:00 is outside the "
        "recording ("
    )
    # Refused before the database is made: a later run with a good start begins afresh.
    assert not any(p.name.startswith("quantum_trader.db") for p in (tmp_path / "data").iterdir())


def test_an_empty_data_dir_is_refused_not_taken_for_the_working_directory() -> None:
    (line,) = problems(QT_DATA_DIR="")
    assert line.startswith("data_dir: is empty, which would mean the working directory")
    assert line.endswith("[QT_DATA_DIR]")  # the variable that set it


def test_a_variable_naming_a_whole_section_is_refused_with_an_example() -> None:
    assert problems(QT_MARKET="1") == (
        "QT_MARKET: names the whole [market] section; set one of its settings, e.g. "
        "QT_MARKET__SOURCE (environment variable)",
    )
    as_json = _with_env(None, {"QT_MARKET": '{"symbols": ["BTC/USDT:USDT"]}'})  # still read
    assert as_json.market.symbols == ("BTC/USDT:USDT",)
