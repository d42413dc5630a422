"""Market data an outside tester found and that had been left alone (docs/BAD_INPUTS.md,
"Market data"): a funding rate no Binance cap allows is refused with one line; a symbol the
rules list as not TRADING, and gaps inside the replayed window, are said where the backtest
shows them and named in its report. Real files in tmp dirs, the real CLI."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from child_env import child_env
from structlog.testing import capture_logs
from test_market_data_bad_inputs import run_cli
from test_market_data_other_inputs import one_line, rules_document

from quantum_trader.clock import ms_from_utc
from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import MISSING_INPUT_WARNINGS, said_gaps, said_not_trading
from quantum_trader.market.source import MarketData
from quantum_trader.market.validation import (
    MAX_FUNDING_RATE,
    check_candles,
    check_funding,
    gaps_within,
)

SAMPLE = bundled_sample_dir()
RULES = next(SAMPLE.glob("exchange-info-*.json"))
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FUNDING = "BTC_USDT_USDT-1h-funding_rate.feather"
FIVE_MINUTES_MS = 300_000
WINDOW = ["--start", "2025-11-20", "--end", "2025-11-22"]


def market_of(tmp_path: Path, stems: tuple[str, ...] = ("BTC_USDT_USDT",)) -> Path:
    """`data/market` holding the sample's candles and funding of `stems`, and its rules."""
    market = tmp_path / "data" / "market"
    market.mkdir(parents=True)
    for path in SAMPLE.iterdir():
        if path.name.startswith(tuple(f"{stem}-" for stem in stems)) or path == RULES:
            shutil.copy(path, market)
    return market


def with_rate(path: Path, row: int, rate: float) -> None:
    """The funding file at `path` with the rate (column `open`) of `row` set to `rate`."""
    table = feather.read_table(path)
    rates = table["open"].to_numpy().copy()
    rates[row] = rate
    feather.write_feather(table.set_column(1, "open", pa.array(rates)), path)


def report_of(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "report.json").read_text())
    return document


def test_an_implausible_funding_rate_stops_the_backtest_naming_file_row_time_and_value(
    tmp_path: Path,
) -> None:
    market = market_of(tmp_path)
    with_rate(market / FUNDING, 10, 5.0)  # 500 % an interval: was accepted and charged
    out = tmp_path / "out"
    done = run_cli(
        ["backtest", "--symbols", BTC, *WINDOW, "--out", str(out)], market.parent, tmp_path
    )
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert line.startswith(
        f"error: {FUNDING}: funding rate 5 at row 10 (2025-03-04 08:00) is beyond ±10% an "
        "interval, which no Binance cap allows"
    )
    assert line.endswith("download the funding rates again (download-data), or remove the "
                         "file (no funding is then charged)")  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize(
    ("rate", "said"),
    [(-0.5, "funding rate -0.5 at row 3 (2025-03-02 00:00) is beyond ±10%"),
     (math.nan, "funding rate nan at row 3 (2025-03-02 00:00) is not a finite number"),
     (math.inf, "funding rate inf at row 3 (2025-03-02 00:00) is not a finite number")],
)  # fmt: skip
def test_an_import_of_an_implausible_funding_rate_imports_nothing(
    tmp_path: Path, rate: float, said: str
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(SAMPLE / "BTC_USDT_USDT-5m-futures.feather", given)
    shutil.copy(SAMPLE / FUNDING, given)
    with_rate(given / FUNDING, 3, rate)
    data = tmp_path / "data"
    done = run_cli(["import-data", str(given), "--exchange-info", str(RULES)], data, tmp_path)
    assert done.returncode == 1, done.stderr
    assert one_line(done.stderr).startswith(f"error: {FUNDING}: {said}")
    assert list((data / "market").iterdir()) == []  # nothing imported, as for bad candles


def test_real_funding_rates_and_the_bound_itself_pass() -> None:
    store = CandleStore(SAMPLE)
    for symbol in store.available_symbols("5m"):
        times, rates = store.load_funding(symbol)
        assert times.size
        assert np.abs(rates).max() < MAX_FUNDING_RATE / 10
    times = np.array([1_740_787_200_000, 1_740_816_000_000], dtype=np.int64)
    check_funding("x", times, np.array([MAX_FUNDING_RATE, -MAX_FUNDING_RATE]))
    with pytest.raises(MarketDataError, match=r"x: funding rate 0\.1001 at row 1 "):
        check_funding("x", times, np.array([0.0, 0.1001]))
    with pytest.raises(MarketDataError, match="funding times not strictly increasing at row 1"):
        check_funding("x", times[::-1].copy(), np.zeros(2))


@pytest.mark.parametrize("status", ["BREAK", "SETTLING", "PENDING_TRADING", "CLOSE"])
def test_a_symbol_listed_as_not_trading_is_one_warning_naming_it_and_its_status(
    tmp_path: Path, status: str
) -> None:
    market = market_of(tmp_path, ("BTC_USDT_USDT", "ETH_USDT_USDT"))
    (market / RULES.name).write_text(json.dumps(rules_document(ETHUSDT={"status": status})))
    with capture_logs() as logs:
        lines = said_not_trading(MarketData(market, "test"), [BTC, ETH])
    said = (
        f"{ETH} is {status}, not TRADING, in {RULES.name}: the replay trades it as recorded "
        "(the rules are of that day; check its candles are of a time it traded)"
    )
    assert lines == [said]
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning == {
        "event": "symbol_not_trading", "log_level": "warning", "component": "market",
        "symbol": ETH, "status": status, "detail": said,
    }  # fmt: skip
    assert warning["event"] in MISSING_INPUT_WARNINGS  # a quiet backtest shows it


def test_a_backtest_of_a_symbol_not_trading_runs_and_says_so_in_its_report(
    tmp_path: Path,
) -> None:
    market = market_of(tmp_path, ("BTC_USDT_USDT", "ETH_USDT_USDT"))
    (market / RULES.name).write_text(json.dumps(rules_document(ETHUSDT={"status": "SETTLING"})))
    out = tmp_path / "out"
    args = ["backtest", "--symbols", f"{BTC},{ETH}", *WINDOW, "--out", str(out)]
    done = run_cli(args, market.parent, tmp_path)
    assert done.returncode == 0, done.stderr  # not refused: the candles may be of a time it traded
    said = f"{ETH} is SETTLING, not TRADING, in {RULES.name}: the replay trades it as recorded"
    shown = [line for line in (done.stdout + done.stderr).splitlines() if said in line]
    assert len(shown) == 1, done.stdout + done.stderr
    (named,) = [line for line in report_of(out)["missing_inputs"] if "TRADING" in line]
    assert named.startswith(said)


def cut(path: Path, first: int, stop: int) -> None:
    """Remove rows [first, stop) from the candle file at `path`: a gap."""
    table = feather.read_table(path)
    feather.write_feather(pa.concat_tables([table.slice(0, first), table.slice(stop)]), path)


def row_at(path: Path, moment: str) -> int:
    times = CandleStore(path.parent).load_bars(BTC, "5m").time_ms
    return int(np.searchsorted(times, ms_from_utc_text(moment)))


def ms_from_utc_text(moment: str) -> int:
    return ms_from_utc(datetime.fromisoformat(moment))


def test_gaps_inside_the_replayed_window_are_said_with_the_largest(tmp_path: Path) -> None:
    market = market_of(tmp_path, ("BTC_USDT_USDT", "ETH_USDT_USDT"))
    candles = market / "BTC_USDT_USDT-5m-futures.feather"
    day = row_at(candles, "2025-11-20T12:00:00+00:00")
    cut(candles, day, day + 36)  # 3 h missing inside the window
    day = row_at(candles, "2025-11-21T06:00:00+00:00")
    cut(candles, day, day + 6)  # 30 min
    day = row_at(candles, "2025-11-25T00:00:00+00:00")
    cut(candles, day, day + 288)  # a day, after the window: not this run's
    out = tmp_path / "out"
    done = run_cli(["backtest", "--symbols", f"{BTC},{ETH}", *WINDOW, "--out", str(out)],
                   market.parent, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = (
        f"{BTC}'s candles have 2 gaps of more than 1 bar inside the replay (no price, signal "
        "or market fill across one), the largest 36 5m bars from 2025-11-20 12:00 to "
        "2025-11-20 15:00"
    )
    shown = [line for line in (done.stdout + done.stderr).splitlines() if said in line]
    assert len(shown) == 1, done.stdout + done.stderr
    assert said in report_of(out)["missing_inputs"]
    assert not [line for line in report_of(out)["missing_inputs"] if ETH in line]


def test_gaps_outside_the_window_or_of_one_bar_are_not_said(tmp_path: Path) -> None:
    market = market_of(tmp_path)
    candles = market / "BTC_USDT_USDT-5m-futures.feather"
    day = row_at(candles, "2025-11-20T12:00:00+00:00")
    cut(candles, day, day + 1)  # one bar: still tradeable (MAX_MISSING_BARS)
    day = row_at(candles, "2025-11-25T00:00:00+00:00")
    cut(candles, day, day + 288)
    feed = ReplayFeed(CandleStore(market), [BTC], "5m", 288)
    start = ms_from_utc_text("2025-11-20T00:00:00+00:00")
    with capture_logs() as logs:
        assert said_gaps(feed, start, ms_from_utc_text("2025-11-22T00:00:00+00:00")) == []
        # The window ending as the day's gap begins, or starting where the data resume.
        assert said_gaps(feed, start, ms_from_utc_text("2025-11-25T00:00:00+00:00")) == []
        assert said_gaps(feed, ms_from_utc_text("2025-11-26T00:00:00+00:00"), start + 10**10) == []
        (line,) = said_gaps(feed, start, ms_from_utc_text("2025-11-25T00:05:00+00:00"))
    assert "1 gap of more than 1 bar" in line
    assert "the largest 288 5m bars from 2025-11-25 00:00 to 2025-11-26 00:00" in line
    assert [e["event"] for e in logs] == ["replay_gaps"]


def test_a_year_of_eight_symbols_is_searched_for_its_gaps_whole() -> None:
    """A year of 5 m bars per symbol, each with one 50-bar hole and one single missing bar:
    the hole is found with its size, the single bar is no gap (its cost is measured in
    docs/BENCHMARKS.md, Components, not asserted here)."""
    year = np.arange(105_120, dtype=np.int64) * FIVE_MINUTES_MS + 1_735_689_600_000
    holed = [
        np.delete(year, np.r_[1_000 * (k + 1) : 1_000 * (k + 1) + 50, 60_000 + k]) for k in range(8)
    ]
    found = [gaps_within(t, FIVE_MINUTES_MS, int(year[0]), int(year[-1])) for t in holed]
    assert [count for count, _ in found] == [1] * 8
    assert [gap.missing_bars for _, gap in found if gap is not None] == [50] * 8


def five_minute_candles(rows: int = 30) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clean 5 m candles from 2025-03-01 (rising closes, each within its bar's range)."""
    time_ms = np.arange(rows, dtype=np.int64) * FIVE_MINUTES_MS + 1_740_787_200_000
    close = 100.0 + np.arange(rows, dtype=np.float64)
    columns = {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close}
    return time_ms, {**columns, "volume": np.full(rows, 10.0)}


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("close", math.nan, "close is not a number at row 7; correct or remove that row"),
        ("open", 0.0, "non-positive open at row 7; correct or remove that row"),
        ("volume", -1.0, "negative volume at row 7; correct or remove that row"),
        ("high", 50.0, "low <= open and close); correct or remove that row"),
    ],
)
def test_a_refused_candle_value_says_what_to_do(column: str, value: float, said: str) -> None:
    time_ms, columns = five_minute_candles()
    columns[column][7] = value
    with pytest.raises(MarketDataError) as refused:
        check_candles("BTC-5m", time_ms, columns, FIVE_MINUTES_MS)
    assert said in str(refused.value)
    assert str(refused.value).endswith("or download the data again")


def test_refused_candle_times_say_what_to_do() -> None:
    time_ms, columns = five_minute_candles()
    time_ms[5] = time_ms[4]
    with pytest.raises(MarketDataError, match="at row 5; sort the rows by time and drop repeated"):
        check_candles("BTC-5m", time_ms, columns, FIVE_MINUTES_MS)
    time_ms, columns = five_minute_candles()
    time_ms += 299_000  # close times (one second before the next bar) instead of open times
    with pytest.raises(MarketDataError) as refused:
        check_candles("BTC-5m", time_ms, columns, FIVE_MINUTES_MS)
    assert str(refused.value) == (
        "BTC-5m: timestamp 2025-03-01 00:04:59 at row 0 is off the 5m bar grid; times must be "
        "the bars' open times (not their close times), or download the data again"
    )


def test_a_symbol_recorded_only_in_another_timeframe_is_said_with_the_setting_to_use(
    tmp_path: Path,
) -> None:
    """Hourly candles only (spot imports, an hourly download): was `unknown symbol … for 5m
    … (recorded: none); get it with download-data … --timeframe 5m`, as if nothing were
    recorded, the setting that replays them not named (found by an outside-style probe)."""
    market = market_of(tmp_path)
    for path in market.glob("BTC_USDT_USDT-5m-*"):
        path.unlink()
    done = run_cli(["backtest", "--symbols", BTC, "--out", "out"], tmp_path / "data", tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("{")]
    assert line.startswith(f"configuration error: unknown symbol '{BTC}' for 5m: ")
    assert line.endswith(
        f"; {BTC} has 1m, 1h candles in {market}: to replay them set market.timeframe "
        '(QT_MARKET__TIMEFRAME) to "1m" or "1h"'
    )


def one_minute_only(tmp_path: Path) -> tuple[Path, Path]:
    """BTC's one-minute candles alone in the data directory: a config that replays them, and
    the market directory."""
    market = market_of(tmp_path)
    for path in market.glob("BTC_USDT_USDT-*-futures.feather"):
        if "-1m-" not in path.name:
            path.unlink()
    config = tmp_path / "one-minute.toml"
    config.write_text(f'[market]\ntimeframe = "1m"\nsymbols = ["{BTC}"]\n', encoding="utf-8")
    return config, market


def test_train_on_candles_it_does_not_read_says_which_it_reads(tmp_path: Path) -> None:
    """One-minute candles only: `train` reads 5m or 1h whatever market.timeframe says, so the
    replay's hint (set market.timeframe) would send the user round in a circle."""
    config, market = one_minute_only(tmp_path)
    done = run_cli(["train", "--config", str(config)], tmp_path / "data", tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("{")]
    assert line.startswith(f"configuration error: unknown symbol '{BTC}' for 5m: ")
    assert line.endswith(
        f"; {BTC} has 1m candles in {market}, but this command reads 5m or 1h candles"
    )


@pytest.mark.parametrize(
    ("header", "found"),
    [
        ("Date,Open,High,Low,Close,Volume", "Date, Open, High, Low, Close, Volume"),
        ("date;open;high;low;close;volume", "date;open;high;low;close;volume"),
    ],
)
def test_columns_named_otherwise_are_said_with_the_names_found(
    tmp_path: Path, header: str, found: str
) -> None:
    """A spreadsheet's capitals, a semicolon-separated export: was `missing column(s) date,
    open, high, low, close, volume` alone, as if the file held none of them (found by an
    outside-style probe, 2026-12-04)."""
    given = tmp_path / "BTC_USDT_USDT-5m-futures.csv"
    sep = ";" if ";" in header else ","
    row = sep.join(["2025-09-01T00:00:00", "1", "2", "0.5", "1.5", "10"])
    given.write_text(f"{header}\n{row}\n", encoding="utf-8")
    done = run_cli(
        ["import-data", str(given), "--exchange-info", str(RULES)], tmp_path / "data", tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert one_line(done.stderr) == (
        f"error: {given.name}: missing column(s) date, open, high, low, close, volume (found: "
        f"{found}); name them date, open, high, low, close, volume, in lower case (a CSV "
        "separated by commas)"
    )


def test_walk_forward_on_candles_training_does_not_read_says_so_before_any_work(
    tmp_path: Path,
) -> None:
    """Was: exit 1 after the warm-up, when the first block's training met the one-minute
    candles: `unknown symbol … set market.timeframe to "1m"`, though it was 1m (found by an
    outside probe of the ML commands, 2026-12-06). Now `train`'s line, exit 2, nothing made."""
    config, market = one_minute_only(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "quantum_trader", "walk-forward", "--config", str(config)],
        capture_output=True,
        text=True,
        env=child_env(QT_DATA_DIR=str(tmp_path / "data")),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("{")]
    assert line.startswith(f"configuration error: unknown symbol '{BTC}' for 5m: ")
    assert line.endswith(
        f"; {BTC} has 1m candles in {market}, but this command reads 5m or 1h candles"
    )
    assert "block 1/" not in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "one-minute.toml"]
