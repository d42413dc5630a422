"""Honest windows: trained models are never evaluated on their own training data silently,
nor on symbols they did not learn from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_harness import cli
from report_builders import backtest, summary_text, tiny_settings, train_tiny, utc
from structlog.testing import capture_logs

from quantum_trader.backtest import BacktestRequest
from quantum_trader.errors import ConfigurationError

TRAINING_END = utc(2025, 10, 1)  # the tiny models learn from the week before
BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("data")
    train_tiny(tiny_settings(directory), TRAINING_END)
    return directory


def _manifest(models: Path) -> Path:
    return models / (models / "CURRENT").read_text().strip() / "manifest.json"


def _window_of(data_dir: Path) -> tuple[str, str]:
    meta = json.loads(_manifest(data_dir / "models").read_text())
    return meta["training_start"], meta["training_end"]


def test_the_models_record_the_window_their_labels_read(data_dir: Path) -> None:
    start, end = _window_of(data_dir)
    assert start == "2025-09-23T23:00:00+00:00"
    assert end == TRAINING_END.isoformat()  # the last label reads the bar closing then


def test_a_backtest_overlapping_the_training_window_is_refused(
    data_dir: Path, tmp_path: Path
) -> None:
    request = BacktestRequest(start=utc(2025, 9, 25), end=utc(2025, 9, 27), out_dir=tmp_path / "o")
    with pytest.raises(ConfigurationError) as refused:
        backtest(tiny_settings(data_dir), request)
    (line,) = refused.value.problems
    start, end = _window_of(data_dir)
    for named in ("2025-09-25T00:00:00+00:00 .. 2025-09-27", f"{start} .. {end}"):
        assert named in line
    assert "--allow-in-sample" in line
    assert not (tmp_path / "o").exists()
    assert list(tmp_path.iterdir()) == []  # no partial output left behind


def test_the_cli_refuses_with_one_line_and_exit_2(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = cli(
        data_dir,
        "backtest",
        "--start", "2025-09-25", "--end", "2025-09-27",
        "--symbols", "BTC/USDT:USDT,ETH/USDT:USDT",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "overlaps the training window" in lines[0]
    assert "--allow-in-sample" in lines[0]
    assert not out.exists()


def test_with_the_flag_every_output_is_stamped_in_sample(data_dir: Path, tmp_path: Path) -> None:
    request = BacktestRequest(
        start=utc(2025, 9, 25), end=utc(2025, 9, 27), out_dir=tmp_path, allow_in_sample=True
    )
    report = backtest(tiny_settings(data_dir), request)
    assert report.sample == "IN-SAMPLE"
    assert json.loads((tmp_path / "report.json").read_text())["sample"] == "IN-SAMPLE"
    page = (tmp_path / "report.html").read_text()
    assert "<title>IN-SAMPLE" in page
    assert 'id="in-sample-banner"' in page
    summary = summary_text(report, tmp_path)
    assert summary.lstrip().startswith("IN-SAMPLE")
    assert "ensemble" in summary
    assert "2025-09-23T23:00:00+00:00 .. 2025-10-01T00:00:00+00:00" in summary


def test_after_the_training_window_the_run_is_out_of_sample_and_says_on_what(
    data_dir: Path, tmp_path: Path
) -> None:
    request = BacktestRequest(start=utc(2025, 10, 1), end=utc(2025, 10, 3), out_dir=tmp_path)
    report = backtest(tiny_settings(data_dir), request)
    assert report.sample == "OUT-OF-SAMPLE"
    assert report.signal_source == "ensemble"
    (period,) = report.provenance["periods"]
    assert period["training_end"] == TRAINING_END.isoformat()
    assert sorted(period["models"]) == ["lightgbm", "xgboost"]
    summary = summary_text(report, tmp_path)
    assert "OUT-OF-SAMPLE" in summary
    assert "models trained on 2025-09-23T23:00:00+00:00 .. 2025-10-01T00:00:00+00:00" in summary
    assert "IN-SAMPLE" not in (tmp_path / "report.html").read_text()


def test_models_that_do_not_record_their_window_are_not_traded_on(
    data_dir: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_dir / "models", copy / "models")
    manifest = _manifest(copy / "models")
    meta = json.loads(manifest.read_text())
    del meta["training_start"], meta["training_end"]
    manifest.write_text(json.dumps(meta))
    request = BacktestRequest(start=utc(2025, 10, 1), end=utc(2025, 10, 3), out_dir=tmp_path / "o")
    settings = tiny_settings(copy)
    settings = settings.model_copy(
        update={"signals": settings.signals.model_copy(update={"source": "ensemble"})}
    )
    with pytest.raises(ConfigurationError, match="loadable trained models"):
        backtest(settings, request)


@pytest.mark.parametrize(
    ("symbols", "untrained"), [((BTC, SOL), [SOL]), ((BTC, ETH), [])], ids=["SOL", "trained"]
)
def test_a_backtest_on_symbols_the_models_did_not_learn_from_runs_and_says_so(
    data_dir: Path, tmp_path: Path, symbols: tuple[str, ...], untrained: list[str]
) -> None:
    """The models learned from BTC and ETH. A backtest of SOL runs (a user may try how they
    transfer) but says so: one warning, and a line among the report's caveats (was: not a
    word)."""
    request = BacktestRequest(utc(2025, 10, 1), utc(2025, 10, 3), symbols, out_dir=tmp_path)
    with capture_logs() as logs:
        report = backtest(tiny_settings(data_dir), request)
    said = [e for e in logs if e["event"] == "symbols_not_trained_on"]
    caveats = [line for line in report.missing_inputs if "not trained on" in line]
    if not untrained:
        assert said == []
        assert caveats == []
        return
    (warning,) = said
    assert warning["log_level"] == "warning"
    assert (warning["symbols"], warning["trained_on"]) == (untrained, [BTC, ETH])
    assert "`quantum-trader train`" in warning["hint"]
    assert "leave them out" in warning["hint"]
    (line,) = caveats
    assert line == warning["detail"]
    assert line.startswith(
        f"the models in {data_dir / 'models'} were not trained on {SOL} (trained on {BTC}, {ETH})"
    )
    assert line in json.loads((tmp_path / "report.json").read_text())["missing_inputs"]
    assert "were not trained on" in summary_text(report, tmp_path)
    assert report.sample == "OUT-OF-SAMPLE"  # run, not refused
