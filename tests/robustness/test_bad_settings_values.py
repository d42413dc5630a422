"""Settings values an outsider writes that the types alone let through: a TOML boolean for a
number, an empty string for a setting whose empty value means something else, a section
written as a plain value, and a paper account too small for the risk guard's minimum (found by
the outside-style probes of 2026-12-04). Each is one line naming the setting, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env

from quantum_trader.config_load import load_settings
from quantum_trader.errors import ConfigurationError


def file_problems(tmp_path: Path, text: str) -> tuple[str, ...]:
    config = tmp_path / "settings.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as error:
        load_settings(config, environ={})
    return error.value.problems


@pytest.mark.parametrize(
    ("section", "setting", "value"),
    [
        ("sizing", "default_leverage", "true"),
        ("risk", "max_open_positions", "true"),
        ("exchange", "paper_initial_balance_usdt", "true"),
        ("executor", "interval_s", "true"),
        ("monitor", "interval_s", "false"),
    ],
)
def test_a_boolean_for_a_number_is_refused_not_read_as_1(
    tmp_path: Path, section: str, setting: str, value: str
) -> None:
    """Was: `default_leverage = true` traded at leverage 1, `paper_initial_balance_usdt = true`
    a backtest of an account of 1 USDT that never traded, each without a word."""
    config = tmp_path / "settings.toml"
    (line,) = file_problems(tmp_path, f"[{section}]\n{setting} = {value}\n")
    assert line == (
        f"{section}.{setting}: expected a number, not a boolean; got {value.title()} "
        f"[config file {config}]"
    )


def test_a_boolean_setting_still_takes_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[executor]\nskip_unchanged_cycles = false\n", encoding="utf-8")
    assert load_settings(config, environ={}).executor.skip_unchanged_cycles is False


def test_a_section_written_as_a_value_in_the_file_names_the_section(tmp_path: Path) -> None:
    """Was: `market: Input should be a valid dictionary or instance of MarketSettings; got 5`,
    without the file."""
    config = tmp_path / "settings.toml"
    (line,) = file_problems(tmp_path, "market = 5\n")
    assert line == (
        "market: names the whole [market] section; write its settings under a [market] "
        f"table, e.g. [market] source = ...; got 5 [config file {config}]"
    )


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = child_env()
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        capture_output=True,
        text=True,
        env={**clean, "QT_DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_an_empty_replay_dir_is_refused_not_read_as_the_working_directory(
    tmp_path: Path,
) -> None:
    """Was: the working directory searched for candles, and every symbol `unknown … in .`."""
    done = cli(tmp_path, "backtest", "--out", "out", QT_MARKET__REPLAY_DIR="")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        "configuration error: market.replay_dir: is empty, which would mean the working "
        "directory; unset it for data_dir/market or the bundled sample, or name a directory "
        "[QT_MARKET__REPLAY_DIR]"
    )


@pytest.mark.parametrize(
    "variables",
    [
        {"QT_EXCHANGE__API_KEY": "", "QT_EXCHANGE__API_SECRET": "s" * 64},
        {"QT_EXCHANGE__API_KEY": "k" * 64, "QT_EXCHANGE__API_SECRET": "  "},
    ],
)
def test_an_empty_api_key_or_secret_is_missing(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    """Was accepted in testnet/live: every signed request sent with an empty key."""
    env = {"QT_EXCHANGE__MODE": "testnet", **variables}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings(None, environ=env)
    (line,) = error.value.problems
    assert line.startswith("exchange: mode=testnet needs exchange.api_key and ")
    assert "s" * 64 not in line
    assert "k" * 64 not in line


def test_an_empty_telegram_token_and_chat_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Was accepted: Telegram "configured" with no bot, each notification refused (404)."""
    env = {"QT_NOTIFY__TELEGRAM_BOT_TOKEN": "", "QT_NOTIFY__TELEGRAM_CHAT_ID": ""}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings(None, environ=env)
    assert sorted(error.value.problems) == [
        "notify.telegram_bot_token: is empty; unset it, or give the value "
        "[QT_NOTIFY__TELEGRAM_BOT_TOKEN]",
        "notify.telegram_chat_id: is empty; unset it, or give the value "
        "[QT_NOTIFY__TELEGRAM_CHAT_ID]",
    ]


def test_a_paper_account_below_the_risk_guards_minimum_is_refused(tmp_path: Path) -> None:
    """Was: a backtest of 50 USDT ran, every entry refused BALANCE_BELOW_MINIMUM, and its
    summary said `trades 0` without saying why. (`run` says it through its health check:
    tests/ops/test_ops_health.py starts a daemon so on purpose.)"""
    done = cli(tmp_path, "backtest", "--out", "out", QT_EXCHANGE__PAPER_INITIAL_BALANCE_USDT="50")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        "configuration error: exchange.paper_initial_balance_usdt: must be at least "
        "risk.min_balance_usdt (100), or the risk guard refuses every entry; got 50"
    )
    assert not (tmp_path / "out").exists()
