"""Market data bad inputs (docs/BAD_INPUTS.md, "Market data"): each defect refused, repaired or
marked untradeable as stated, through the loader every command uses and through the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pytest
from conftest import REPO
from daemon_harness import cli
from structlog.testing import capture_logs

from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.layout import parse_file_name
from quantum_trader.market.validation import check_candles

BTC = "BTC/USDT:USDT"
SAMPLE = bundled_sample_dir()
FIVE_MINUTES_MS = 300_000


def sample_copy(tmp_path: Path, symbol_stem: str = "BTC_USDT_USDT") -> Path:
    """A market directory holding the bundled BTC 5 m and 1 h candles and the sample's rules."""
    out = tmp_path / "market"
    out.mkdir()
    for name in (f"{symbol_stem}-5m-futures.feather", f"{symbol_stem}-1h-futures.feather"):
        shutil.copy(SAMPLE / name, out / name)
    shutil.copy(next(SAMPLE.glob("exchange-info-*.json")), out)
    return out


def rewrite(
    path: Path, change: dict[str, tuple[int, float]] | None = None, rows: slice | None = None
) -> None:
    table = feather.read_table(path)
    if rows is not None:
        table = table.slice(rows.start, rows.stop - rows.start)
    for column, (row, factor_or_value) in (change or {}).items():
        values = table[column].to_numpy().copy()
        values[row] = factor_or_value
        table = table.set_column(table.column_names.index(column), column, pa.array(values))
    feather.write_feather(table, path)


def load(directory: Path) -> object:
    return CandleStore(directory).load_bars(BTC, "5m")


def test_zero_rows_are_refused_naming_the_file(tmp_path: Path) -> None:
    out = sample_copy(tmp_path)
    rewrite(out / "BTC_USDT_USDT-5m-futures.feather", rows=slice(0, 0))
    with pytest.raises(MarketDataError, match=r"BTC_USDT_USDT-5m-futures.feather: no candles"):
        load(out)


def test_high_below_low_is_refused_naming_the_row(tmp_path: Path) -> None:
    out = sample_copy(tmp_path)
    path = out / "BTC_USDT_USDT-5m-futures.feather"
    low = float(feather.read_table(path)["low"][40].as_py())
    rewrite(path, {"high": (40, low * 0.99)})
    with pytest.raises(MarketDataError, match=r"inconsistent candle at row 40 .*high"):
        load(out)


@pytest.mark.parametrize("factor", [1000.0, 0.001])
def test_a_bar_scaled_by_1000_or_a_thousandth_is_removed_and_logged(
    tmp_path: Path, factor: float
) -> None:
    out = sample_copy(tmp_path)
    path = out / "BTC_USDT_USDT-5m-futures.feather"
    table = feather.read_table(path)
    original = len(table)
    row = 5000
    for column in ("open", "high", "low", "close"):
        rewrite(path, {column: (row, float(table[column][row].as_py()) * factor)})
    with capture_logs() as logs:
        bars = CandleStore(out).load_bars(BTC, "5m")
    assert len(bars) == original - 1
    assert int(table["date"].cast(pa.timestamp("ms")).cast(pa.int64())[row].as_py()) not in set(
        bars.time_ms.tolist()
    )
    assert float(bars.high.max()) < 200_000
    assert float(bars.low.min()) > 10_000
    [repaired] = [e for e in logs if e["event"] == "market_data_repaired"]
    assert repaired["removed_bars"] == 1
    assert "×10" in repaired["reason"]


def test_a_wick_scaled_by_1000_is_removed(tmp_path: Path) -> None:
    out = sample_copy(tmp_path)
    path = out / "BTC_USDT_USDT-5m-futures.feather"
    high = float(feather.read_table(path)["high"][700].as_py())
    rewrite(path, {"high": (700, high * 1000)})
    bars = CandleStore(out).load_bars(BTC, "5m")
    assert len(bars) == 26208 - 1
    assert float(bars.high.max()) < 200_000


def test_a_permanent_change_of_price_scale_is_refused(tmp_path: Path) -> None:
    out = sample_copy(tmp_path)
    path = out / "BTC_USDT_USDT-5m-futures.feather"
    table = feather.read_table(path)
    for column in ("open", "high", "low", "close"):
        values = table[column].to_numpy().copy()
        values[20000:] *= 1000
        table = table.set_column(table.column_names.index(column), column, pa.array(values))
    feather.write_feather(table, path)
    with pytest.raises(MarketDataError, match="prices change scale at row 20000"):
        load(out)


def test_real_crashes_are_not_spikes() -> None:
    """2025-10-10's cascade is in the bundled 5 m and 1 h candles: nothing is removed."""
    store = CandleStore(SAMPLE)
    for symbol in store.available_symbols("5m"):
        for timeframe in ("5m", "1h"):
            path = store.candle_path(symbol, timeframe)
            table = feather.read_table(path)
            times = table["date"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
            columns = {n: table[n].to_numpy() for n in ("open", "high", "low", "close", "volume")}
            _, _, report = check_candles(
                path.name, times, columns, 300_000 if timeframe == "5m" else 3_600_000
            )
            assert report.repairs == (), path.name
            assert report.gaps == (), path.name


def test_a_gap_of_days_is_kept_and_reported(tmp_path: Path) -> None:
    out = sample_copy(tmp_path)
    path = out / "BTC_USDT_USDT-5m-futures.feather"
    table = feather.read_table(path)
    gapped = pa.concat_tables([table.slice(0, 10_000), table.slice(10_000 + 3 * 288)])
    feather.write_feather(gapped, path)
    with capture_logs() as logs:
        bars = CandleStore(out).load_bars(BTC, "5m")
    assert len(bars) == len(table) - 3 * 288
    [gaps] = [e for e in logs if e["event"] == "market_data_gaps"]
    assert gaps["largest_missing_bars"] == 3 * 288


def test_freqtrade_name_without_settle_currency_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match="names the settle currency too"):
        parse_file_name(Path("BTC_USDT-5m-futures.feather"))
    out = sample_copy(tmp_path)
    shutil.copy(out / "BTC_USDT_USDT-5m-futures.feather", out / "ETH_USDT-5m-futures.feather")
    with pytest.raises(
        MarketDataError, match=r"unknown symbol 'ETH/USDT:USDT'.*ignored ETH_USDT-5m"
    ):
        CandleStore(out).load_bars("ETH/USDT:USDT", "5m")
    assert CandleStore(out).available_symbols("5m") == [BTC]


def run_cli(
    args: list[str], data_dir: Path, cwd: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the child runs this tree's code, not the one an editable install names.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "QT_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(REPO),
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_backtest_of_an_unknown_symbol_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_cli(["backtest", "--symbols", "NOPE/USDT:USDT"], tmp_path / "data", tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "unknown symbol 'NOPE/USDT:USDT'" in lines[0]
    assert "download-data" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports").exists()


def test_train_and_backtest_of_an_unknown_symbol_both_exit_2_with_the_same_line(
    tmp_path: Path,
) -> None:
    """The same settings naming a symbol no candles are recorded for (was: `train` exit 1,
    `error: unknown symbol …`, where `backtest` exits 2: a usage error)."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "nope.toml"
    config.write_text('[market]\nsymbols = ["NOPE/USDT:USDT"]\n', encoding="utf-8")
    said = []
    for command in ("train", "backtest"):
        done = cli(data, command, "--config", str(config))
        assert done.returncode == 2, done.stderr
        (line,) = [line for line in done.stderr.splitlines() if line.strip()]
        assert line.startswith("configuration error: unknown symbol 'NOPE/USDT:USDT' for 5m: ")
        assert "download-data --symbols NOPE/USDT:USDT" in line
        said.append(line)
    assert said[0] == said[1]
    assert not (data / "models").exists() or not any((data / "models").iterdir())


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (",,", "at least one symbol is required"),  # was: the configured symbols, silently
        (f"{BTC},{BTC}", "symbols must not repeat"),  # was: a run listing BTC twice
        ("btc", "ccxt perpetual symbols like BTC/USDT:USDT"),
    ],
)
def test_a_backtest_symbols_option_that_names_no_list_exits_2_with_one_line(
    tmp_path: Path, given: str, why: str
) -> None:
    done = run_cli(["backtest", "--symbols", given], tmp_path / "data", tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("configuration error: --symbols: ")
    assert why in line
    assert repr(given) in line
    assert not (tmp_path / "reports").exists()


def test_backtest_on_zero_row_data_exits_1_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    out = sample_copy(data_dir)
    rewrite(out / "BTC_USDT_USDT-5m-futures.feather", rows=slice(0, 0))
    done = run_cli(["backtest", "--symbols", BTC], data_dir, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: BTC_USDT_USDT-5m-futures.feather: no candles")
    assert "Traceback" not in done.stderr
    assert REPO.is_dir()
