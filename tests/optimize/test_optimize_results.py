"""The chosen settings file and the results beside it."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from optimize_builders import optimize_cli
from rich.console import Console

from quantum_trader.config_load import load_settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.optimize.results import StudyResults, check_out, print_results, write_results

BLOCK = {
    "start": "2025-10-12T00:00:00+00:00",
    "end": "2025-10-14T00:00:00+00:00",
    "score": 0.5,
    "return_pct": 1.0,
    "max_drawdown_pct": 2.0,
    "sharpe": None,
    "trades": 3,
}


def results() -> StudyResults:
    return StudyResults(
        study="s",
        storage="sqlite:///x.db",
        objective="TPE: maximize mean OOS sharpe",
        trials={"complete": 2},
        best_trial=1,
        best_params={"sizing.stop_atr_multiple": 2.5, "monitor.trail_mode_trend_follow": "LOOSE"},
        best_values=[0.5],
        folds=[{"fold": 1, "in_sample": BLOCK, "out_of_sample": BLOCK, "gap": 0.0}],
        mean_in_sample=0.5,
        mean_out_of_sample=0.5,
        mean_gap=0.0,
        holdout=BLOCK,
        holdout_baseline=BLOCK,
        layout={},
        symbols=["BTC/USDT:USDT"],
    )


def test_the_settings_file_keeps_the_config_adds_the_choice_and_drops_secrets(
    tmp_path: Path,
) -> None:
    config = tmp_path / "mine.toml"
    config.write_text(
        '[exchange]\napi_key = "KEY-123"\napi_secret = "SECRET-456"\n'
        "paper_initial_balance_usdt = 5000.0\n"
        '[server]\ntoken = "TOKEN-789-abcdefghijklmnop"\n'
        "[sizing]\nstop_atr_multiple = 1.5\nrisk_per_trade = 0.01\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "best.toml"
    report = write_results(results(), out, config)
    text = out.read_text()
    for secret in ("KEY-123", "SECRET-456", "TOKEN-789"):
        assert secret not in text
    chosen = tomllib.loads(text)
    assert chosen["sizing"] == {"stop_atr_multiple": 2.5, "risk_per_trade": 0.01}
    assert chosen["exchange"] == {"paper_initial_balance_usdt": 5000.0}
    settings = load_settings(out, environ={})
    assert settings.monitor.trail_mode_trend_follow == "LOOSE"
    assert settings.signals.source == "rules"
    assert settings.market.symbols == ("BTC/USDT:USDT",)
    assert json.loads(report.read_text())["best_trial"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["best.results.json", "best.toml"]


@pytest.mark.parametrize("where", ["under a file", "a directory", "no name"])
def test_an_out_that_cannot_be_written_is_refused_before_the_study(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("")
    out = {
        "under a file": tmp_path / "a-file" / "best.toml",
        "a directory": tmp_path,
        "no name": Path(""),
    }[where]
    with pytest.raises(ConfigurationError) as refused:
        check_out(out)
    (line,) = refused.value.problems
    assert line.startswith(f"--out {out}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no probe left behind
    check_out(tmp_path / "new" / "best.toml")  # a new directory is made for it
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == []


def test_a_negative_seed_is_a_usage_error_naming_seed(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[space]\n"sizing.risk_per_trade" = { low = 0.005, high = 0.01 }\n')
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "1", "--seed", "-1")
    assert done.returncode == 2
    assert "Invalid value for '--seed'" in done.stderr  # it named --study
    assert not (tmp_path / "optimize").exists()


@pytest.mark.parametrize("named", ["--config", "--space"])
def test_an_out_naming_an_input_of_the_command_is_refused_and_the_input_kept(
    tmp_path: Path, named: str
) -> None:
    # Found by an outside probe (2026-12-03): --out naming the --config file replaced it with
    # the chosen settings, its API key dropped; naming the --space file, the space was lost.
    space = tmp_path / "space.toml"
    space.write_text('[space]\n"sizing.risk_per_trade" = { low = 0.005, high = 0.01 }\n')
    config = tmp_path / "settings.toml"
    config.write_text('[exchange]\napi_key = "KEY-123"\n')
    before = {p.name: p.read_bytes() for p in (space, config)}
    target = {"--config": config, "--space": space}[named]
    out = tmp_path / "." / target.name  # the same file by another name
    args = ("--space", str(space), "--config", str(config), "--trials", "1", "--out", str(out))
    done = optimize_cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"configuration error: --out {out}: is the {named} file; the chosen settings would "
        "replace it: choose another file"
    ]
    assert {p.name: p.read_bytes() for p in (space, config)} == before


def test_the_table_names_the_score_its_columns_hold_when_the_study_chose_by_others(
    tmp_path: Path,
) -> None:
    # Found by an outside probe (2026-12-03): with --multi the title named return % and max
    # drawdown %, the columns beneath it held Sharpe ratios without saying so.
    chosen = replace(
        results(),
        objective="NSGA-II: maximize mean OOS return %, minimize mean OOS max drawdown %",
        score="sharpe",
    )
    console = Console(record=True, width=200)
    print_results(console, chosen, tmp_path / "best.toml", tmp_path / "best.results.json")
    text = console.export_text()
    assert "IS, OOS, gap: each block's sharpe" in text
    assert "scored once: sharpe " in text


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_study_name_is_refused(tmp_path: Path, name: str) -> None:
    # Found by an outside probe (2026-12-03): a study named "" was created, and its
    # interruption said "rerun the same command (--study ) to resume".
    space = tmp_path / "space.toml"
    space.write_text('[space]\n"sizing.risk_per_trade" = { low = 0.005, high = 0.01 }\n')
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "1", "--study", name)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"configuration error: --study {name!r}: name the study, e.g. --study sweep-1"
    ]
    assert not (tmp_path / "data" / "optimize").exists()


def test_an_out_whose_results_file_is_a_directory_is_refused_before_the_study(
    tmp_path: Path,
) -> None:
    """Was: every trial ran, then an IsADirectoryError traceback in write_results, the chosen
    settings written without their results (found by an outside probe, 2026-12-06)."""
    space = tmp_path / "space.toml"
    space.write_text('[space]\n"sizing.risk_per_trade" = { low = 0.005, high = 0.01 }\n')
    out = tmp_path / "best.toml"
    (tmp_path / "best.results.json").mkdir()
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "1", "--out", str(out))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"configuration error: --out {out}: the results are written beside it to "
        f"{tmp_path / 'best.results.json'}, which is a directory; move it aside or choose "
        "another --out"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.results.json", "space.toml"]
    assert not any((tmp_path / "best.results.json").iterdir())
