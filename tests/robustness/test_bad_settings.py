"""Bad settings as an outsider types them: one line naming the setting, exit code 2.

Non-finite numbers, lists written `a,b`, mappings that are not JSON, and rules between two
settings (within a section and across sections) that would make the daemon do something other
than what the user asked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from child_env import child_env
from conftest import REPO
from pydantic import BaseModel

from quantum_trader.config import Settings
from quantum_trader.config_load import load_settings
from quantum_trader.errors import ConfigurationError


def problems(**env: str) -> tuple[str, ...]:
    """The lines `load_settings` reports for these QT_ variables (set in the environment)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with pytest.raises(ConfigurationError) as error:
            load_settings(None, environ=env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return error.value.problems


def loads(**env: str) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings(None, environ=env)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = child_env()
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


def float_settings(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every float setting, as its path of field names (nested sections included)."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from float_settings(kind, (*prefix, name))
        elif kind is float:
            yield (*prefix, name)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_a_non_finite_replay_speed_is_named(value: str) -> None:
    assert problems(QT_MARKET__REPLAY_SPEED=value) == (
        f"market.replay_speed: Input should be a finite number; got {value!r} "
        "[QT_MARKET__REPLAY_SPEED]",
    )


def test_every_float_setting_refuses_nan_and_infinity() -> None:
    paths = list(float_settings(Settings))
    assert len(paths) > 100  # the walk found the sections' floats, nested ones included
    for path in paths:
        variable = "QT_" + "__".join(part.upper() for part in path)
        for value in ("nan", "inf"):
            (line,) = problems(**{variable: value})
            assert line.startswith(f"{'.'.join(path)}: Input should be a finite number"), line
            assert line.endswith(f"[{variable}]"), line


def test_a_replay_speed_beyond_the_calendar_is_refused() -> None:
    (line,) = problems(QT_MARKET__REPLAY_SPEED="1e300")
    assert line.startswith("market.replay_speed: Input should be less than or equal to 1000000")


def test_a_duration_beyond_the_calendar_is_refused() -> None:
    (line,) = problems(QT_GOVERNOR__PAUSE_DURATION_S="1e12")
    assert line.startswith("governor.pause_duration_s: Input should be less than or equal to")


@pytest.mark.parametrize(
    ("variable", "value", "bound"),
    [
        # Was: accepted; train then blamed the data ("raise ensemble.training_days").
        ("QT_ENSEMBLE__EMBARGO_H", "1000000", "8760"),
        # Was: an XGBoostError traceback once training began (LightGBM's seed is a C int).
        ("QT_ENSEMBLE__SEED", str(2**63), "2147483647"),
        ("QT_ENSEMBLE__SEED", str(2**31), "2147483647"),
        # Was: a matplotlib traceback drawing the backtest's equity curve.
        ("QT_EXCHANGE__PAPER_INITIAL_BALANCE_USDT", "1e308", "1000000000"),
        # Was: the costs overflowed, and train said no hour had every feature defined.
        ("QT_ENSEMBLE__LABEL_NOTIONAL_USDT", "1e300", "1000000000"),
    ],
)
def test_a_setting_beyond_its_upper_bound_is_refused(variable: str, value: str, bound: str) -> None:
    """Found by an outside probe of the ML commands (2026-12-06)."""
    setting = ".".join(variable.removeprefix("QT_").lower().split("__"))
    assert problems(**{variable: value}) == (
        f"{setting}: Input should be less than or equal to {bound}; got {value!r} [{variable}]",
    )


def test_the_cli_refuses_an_infinite_replay_speed_with_exit_2() -> None:
    done = cli("run", env={"QT_MARKET__REPLAY_SPEED": "inf", "QT_DATA_DIR": "never-created"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "configuration error: market.replay_speed: Input should be a finite number; "
        "got 'inf' [QT_MARKET__REPLAY_SPEED]"
    ]
    assert not Path("never-created").exists()


@pytest.mark.parametrize(
    "value", ["xgboost,lightgbm", " xgboost , lightgbm ", '["xgboost", "lightgbm"]']
)
def test_a_list_setting_takes_commas_or_a_json_list(value: str) -> None:
    assert loads(QT_ENSEMBLE__MODELS=value).ensemble.models == ("xgboost", "lightgbm")


def test_symbols_take_commas() -> None:
    settings = loads(QT_MARKET__SYMBOLS="BTC/USDT:USDT,ETH/USDT:USDT")
    assert settings.market.symbols == ("BTC/USDT:USDT", "ETH/USDT:USDT")


def test_an_unknown_item_of_a_list_names_the_variable() -> None:
    (line,) = problems(QT_ENSEMBLE__MODELS="xgboost,randomforest")
    assert line == (
        "ensemble.models.1: Input should be 'xgboost', 'lightgbm', 'nhits' or 'patchtst'; "
        "got 'randomforest' [QT_ENSEMBLE__MODELS]"
    )


def test_a_broken_json_list_is_one_line() -> None:
    (line,) = problems(QT_ENSEMBLE__MODELS='["xgboost", ')
    assert line.startswith("ensemble.models: ")
    assert line.endswith("[QT_ENSEMBLE__MODELS]")


def test_a_mapping_setting_that_is_not_json_is_named() -> None:
    assert problems(QT_BALANCER__SECTORS="BTC=Layer1,ETH=Layer1") == (
        'balancer.sectors: expected a JSON object such as {"BTC/USDT:USDT": "Layer1"}; '
        "got 'BTC=Layer1,ETH=Layer1' [QT_BALANCER__SECTORS]",
    )
    sectors = loads(QT_BALANCER__SECTORS='{"BTC/USDT:USDT": "Layer1"}').balancer.sectors
    assert sectors == {"BTC/USDT:USDT": "Layer1"}


def test_a_max_stop_below_the_min_stop_is_named() -> None:
    assert problems(QT_SIZING__MIN_STOP_PCT="0.05", QT_SIZING__MAX_STOP_PCT="0.01") == (
        "sizing.max_stop_pct: must be at least min_stop_pct (0.05); got '0.01' "
        "[QT_SIZING__MAX_STOP_PCT]",
    )


def test_a_default_leverage_above_the_max_is_named() -> None:
    assert problems(QT_SIZING__DEFAULT_LEVERAGE="20") == (
        "sizing.max_leverage: must be at least default_leverage (20); got 10",
    )


def test_a_line_names_the_config_file_only_for_a_value_the_file_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`default_leverage` from the environment above `max_leverage`'s default: the line checks
    the default, which no file set, so it names none (it named the shipped config file, where
    the user looked for `sizing.max_leverage` in vain); a value the file sets names the file."""
    config = tmp_path / "settings.toml"
    config.write_text("[sizing]\nrisk_per_trade = 0.02\n\n[executor]\ninterval_s = -1\n")
    monkeypatch.setenv("QT_SIZING__DEFAULT_LEVERAGE", "20")
    with pytest.raises(ConfigurationError) as error:
        load_settings(config, environ={"QT_SIZING__DEFAULT_LEVERAGE": "20"})
    assert sorted(error.value.problems) == [
        f"executor.interval_s: Input should be greater than 0; got -1 [config file {config}]",
        "sizing.max_leverage: must be at least default_leverage (20); got 10",
    ]


@pytest.mark.parametrize(
    "variable", ["QT_SIZING__MAX_LEVERAGE", "QT_RISK__MAX_LEVERAGE", "QT_BALANCER__MAX_LEVERAGE"]
)
def test_leverage_beyond_binances_cap_is_refused(variable: str) -> None:
    (line,) = problems(**{variable: "1000"})
    assert "Input should be less than or equal to 125; got '1000'" in line
    assert line.endswith(f"[{variable}]")


@pytest.mark.parametrize("variable", ["QT_RISK__MAX_RISK_PER_TRADE", "QT_SIZING__RISK_PER_TRADE"])
def test_a_risk_of_100_percent_per_trade_is_refused(variable: str) -> None:
    (line,) = problems(**{variable: "1.0"})
    assert "Input should be less than or equal to 0.1; got '1.0'" in line


def test_the_sizer_may_not_build_what_the_risk_guard_refuses() -> None:
    found = problems(
        QT_SIZING__MAX_LEVERAGE="20",
        QT_SIZING__RISK_PER_TRADE="0.03",
        QT_SIZING__MAX_RISK_FRACTION="0.05",
        QT_SIZING__MAX_MARGIN_FRACTION="0.5",
    )
    assert found == (
        "sizing.max_leverage: must be at most risk.max_leverage (10), or the risk guard refuses "
        "what the sizer builds; got 20",
        "sizing.max_risk_fraction: must be at most risk.max_risk_per_trade (0.02), or the risk "
        "guard refuses what the sizer builds; got 0.05",
        "sizing.max_margin_fraction: must be at most risk.max_margin_per_trade (0.15), or the "
        "risk guard refuses what the sizer builds; got 0.5",
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"QT_SIZING__RISK_PER_TRADE": "0.05"},
            "sizing.max_risk_fraction: must be at least risk_per_trade (0.05)",
        ),
        (
            {"QT_ENSEMBLE__MIN_MODELS": "3", "QT_ENSEMBLE__MODELS": "xgboost,lightgbm"},
            "ensemble.models: lists 2 of them, fewer than min_models (3)",
        ),
        ({"QT_ENSEMBLE__MODELS": "xgboost,xgboost"}, "ensemble.models: models must not repeat"),
        (
            {"QT_ORCHESTRATOR__DEFENSIVE_MODE_DRAWDOWN": "0.04"},
            "orchestrator.critical_mode_drawdown: must be at least defensive_mode_drawdown (0.04)",
        ),
        (
            {"QT_ORCHESTRATOR__NORMAL_MIN_CONFIDENCE": "0.5"},
            "orchestrator.defensive_min_confidence: must be at least normal_min_confidence (0.5)",
        ),
        (
            {"QT_ORCHESTRATOR__CRITICAL_RISK_MULTIPLIER": "0.9"},
            "orchestrator.critical_risk_multiplier: must be at most defensive_risk_multiplier",
        ),
        (
            {"QT_BALANCER__SAFE_MODE_TOTAL_RISK": "0.2"},
            "balancer.safe_mode_total_risk: must be at most max_total_risk (0.15)",
        ),
        (
            {"QT_BALANCER__CANDIDATE_LEVERAGE": "40"},
            "balancer.candidate_leverage: must be at most max_leverage (30)",
        ),
        (
            {"QT_REGIME__EMA_FAST_PERIOD": "60"},
            "regime.ema_slow_period: must be above ema_fast_period (60)",
        ),
        (
            {"QT_REGIME__RANGING_MAX_ADX": "30"},
            "regime.ranging_max_adx: must be at most trending_min_adx (25.0)",
        ),
        (
            {"QT_SIGNALS__RULES_FAST_EMA": "50"},
            "signals.rules_slow_ema: must be above rules_fast_ema (50)",
        ),
        (
            {"QT_PERFORMANCE__DISABLE_AFTER_LOSSES": "30"},
            "performance.blacklist_after_losses: must be at least disable_after_losses (30)",
        ),
        (
            {"QT_MONITOR__TRAIL_ATR_AGGRESSIVE": "2"},
            "monitor.trail_atr_balanced: must be at least trail_atr_aggressive (2.0)",
        ),
        (
            {"QT_COSTS__SLIPPAGE_SMALL": "0.001"},
            "costs.slippage_large: must be at least slippage_small (0.001)",
        ),
        (
            {"QT_SIZING__LIFECYCLE__BASE_MATURE": "0.5"},
            "sizing.lifecycle.cap_mature: must be at least base_mature (0.5)",
        ),
        (
            {"QT_SIZING__MULTIPLIERS__TOTAL_LOW": "2"},
            "sizing.multipliers.total_high: must be at least total_low (2.0)",
        ),
        (
            {"QT_HEALTH__LATENCY_GOOD_MS": "2000"},
            "health.latency_acceptable_ms: must be at least latency_good_ms (2000.0)",
        ),
        (
            {"QT_GOVERNOR__VOLATILITY_MIN_BARS": "200"},
            "governor.volatility_min_bars: must be at most volatility_lookback_hours (168)",
        ),
    ],
)
def test_rules_between_two_settings_are_named(env: dict[str, str], expected: str) -> None:
    (line,) = problems(**env)
    assert line.startswith(expected), line


def test_the_defaults_and_the_shipped_config_keep_every_rule() -> None:
    load_settings(None, environ={})
    shipped = load_settings(REPO / "config" / "default.toml", environ={})
    assert shipped.sizing.max_leverage <= shipped.risk.max_leverage


def test_the_cli_prints_one_line_per_broken_rule_and_exits_2() -> None:
    done = cli(
        "config",
        "show",
        env={
            "QT_SIZING__MAX_STOP_PCT": "0.001",
            "QT_SIZING__DEFAULT_LEVERAGE": "1000",
            "QT_MARKET__REPLAY_SPEED": "inf",
            "QT_ENSEMBLE__MODELS": "xgboost,lightgbm",
        },
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("configuration error: ") for line in lines)
    assert "Traceback" not in done.stderr


def test_the_keeper_may_not_give_up_an_order_binance_may_still_execute() -> None:
    """A receive window of 60 s and the default 30 s grace: an entry delayed in transit could
    be settled as never accepted while Binance can still execute it, then entered again."""
    (line,) = problems(QT_EXCHANGE__RECV_WINDOW_MS="60000")
    assert line == (
        "keeper.unknown_order_final_s: must be at least exchange.recv_window_ms in seconds plus 5 "
        "(65): Binance may still execute a delayed order that long after it was sent, and the "
        "keeper would take it for never accepted and enter again; got 30"
    )
    settings = loads(QT_EXCHANGE__RECV_WINDOW_MS="60000", QT_KEEPER__UNKNOWN_ORDER_FINAL_S="65")
    assert settings.keeper.unknown_order_final_s == 65
    assert loads(QT_EXCHANGE__RECV_WINDOW_MS="25000").exchange.recv_window_ms == 25_000  # 25 + 5


DURATION_SUFFIXES = ("_s", "_ms", "_h", "_days")


def duration_settings(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every setting named as a duration (`*_s`, `*_ms`, `*_h`, `*_days`), with its type."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from duration_settings(kind, (*prefix, name))
        elif name.endswith(DURATION_SUFFIXES):
            yield (*prefix, name), kind


def test_every_duration_setting_refuses_a_value_beyond_the_calendar() -> None:
    """Was: 11 of them (notify's backoffs, timeout and flush, the keeper's REST checks, ...)
    took 1e12; a notification flush of 1e12 s kept SIGTERM from ever finishing."""
    found = list(duration_settings(Settings))
    assert len(found) > 40  # the walk found the sections' durations, nested ones included
    for path, kind in found:
        variable = "QT_" + "__".join(part.upper() for part in path)
        value = "1000000000000" if kind is int else "1e12"
        (line,) = problems(**{variable: value})
        assert line.startswith(f"{'.'.join(path)}: Input should be less than"), line
