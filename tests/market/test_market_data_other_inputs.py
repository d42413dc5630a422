"""Market data the team had not seen (docs/BAD_INPUTS.md, "Market data"), from an outside
probe: times in another unit, a longer timeframe under a shorter one's name, an import with
one bad file among good ones, rules entries that cannot be used or do not fit the candles, and
a symbol whose recording is shorter than the window asked. Each is refused with one line, or
said where the run shows it; nothing half-written."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from test_market_data_bad_inputs import run_cli

from quantum_trader.clock import utc_from_ms
from quantum_trader.errors import ConfigurationError, MarketDataError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.rules import parse_rules, rules_for
from quantum_trader.market.validation import check_candles
from quantum_trader.replay_window import narrowed

SAMPLE = bundled_sample_dir()
RULES = next(SAMPLE.glob("exchange-info-*.json"))
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FIVE_MINUTES_MS = 300_000


def columns_of(path: Path) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    bars = CandleStore(path.parent).load_bars(
        path.name.split("-")[0].replace("_USDT_USDT", "/USDT:USDT"), path.name.split("-")[1]
    )
    names = ("open", "high", "low", "close", "volume")
    return bars.time_ms.copy(), {name: getattr(bars, name).copy() for name in names}


def write_feather_ms(path: Path, time_ms: np.ndarray[Any, Any], source: Path) -> None:
    """`source`'s prices with `time_ms` as plain int64 dates (the unit left as given)."""
    table = feather.read_table(source)
    dates = pa.array(time_ms, type=pa.int64())
    feather.write_feather(table.set_column(0, "date", dates), path)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    return line


def rules_document(**changes: dict[str, Any]) -> dict[str, Any]:
    """The sample's rules file with the entries of `changes` (by Binance id) updated."""
    document: dict[str, Any] = json.loads(RULES.read_text())
    for entry in document["exchangeInfo"]["symbols"]:
        entry.update(changes.get(entry["symbol"], {}))
    return document


def with_tick(entry_id: str, tick: str) -> dict[str, Any]:
    document = rules_document()
    for entry in document["exchangeInfo"]["symbols"]:
        if entry["symbol"] == entry_id:
            for rule in entry["filters"]:
                if rule["filterType"] == "PRICE_FILTER":
                    rule["tickSize"] = tick
    return document


@pytest.mark.parametrize(
    ("scale", "unit"), [(1e-3, "seconds"), (1e3, "microseconds"), (1e6, "nanoseconds")]
)
def test_times_in_another_unit_are_refused_naming_it(scale: float, unit: str) -> None:
    time_ms, columns = columns_of(SAMPLE / "BTC_USDT_USDT-5m-futures.feather")
    scaled = (time_ms.astype(np.float64) * scale).astype(np.int64)
    with pytest.raises(MarketDataError, match=rf"row 0 is not an instant .* epoch {unit}\)"):
        check_candles("x.feather", scaled, columns, FIVE_MINUTES_MS)


def test_hourly_candles_under_a_five_minute_name_are_refused() -> None:
    time_ms, columns = columns_of(SAMPLE / "BTC_USDT_USDT-1h-futures.feather")
    with pytest.raises(MarketDataError, match="most rows are 1h apart, not 5m"):
        check_candles("BTC_USDT_USDT-5m-futures.feather", time_ms, columns, FIVE_MINUTES_MS)
    # Gaps alone (a day missing here and there) are kept, as before.
    time_ms, columns = columns_of(SAMPLE / "BTC_USDT_USDT-5m-futures.feather")
    kept = np.ones(time_ms.size, dtype=bool)
    kept[1000:1288] = kept[5000:5288] = False
    checked = check_candles(
        "x", time_ms[kept], {k: v[kept] for k, v in columns.items()}, FIVE_MINUTES_MS
    )
    assert len(checked[2].untradeable_gaps) == 2


def test_an_import_with_one_refused_file_imports_nothing(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(SAMPLE / "BTC_USDT_USDT-5m-futures.feather", given)
    eth = SAMPLE / "ETH_USDT_USDT-5m-futures.feather"
    time_ms, _ = columns_of(eth)
    write_feather_ms(given / eth.name, time_ms * 1000, eth)  # microseconds
    data = tmp_path / "data"
    done = run_cli(["import-data", str(given), "--exchange-info", str(RULES)], data, tmp_path)
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert "ETH_USDT_USDT-5m-futures.feather: timestamp" in line
    assert "reads as epoch microseconds" in line
    market = data / "market"
    assert sorted(p.name for p in market.iterdir()) == []  # no candles, no rules, no staging


def test_the_same_import_without_the_bad_file_lands_whole(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(SAMPLE / "BTC_USDT_USDT-5m-futures.feather", given)
    data = tmp_path / "data"
    done = run_cli(["import-data", str(given), "--exchange-info", str(RULES)], data, tmp_path)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (data / "market").iterdir())
    assert names == ["BTC_USDT_USDT-5m-futures.feather", RULES.name]


def test_spot_and_futures_candles_of_one_pair_and_timeframe_are_refused_nothing_imported(
    tmp_path: Path,
) -> None:
    """Both would become `BTC_USDT_USDT-1h-futures.feather` (spot candles are imported as the
    perpetual's). Was (found by an outside-style probe, 2026-12-04): a FileNotFoundError
    traceback at the second rename, exit 1, the first file and the rules already imported."""
    spot, futures = tmp_path / "spot", tmp_path / "futures"
    spot.mkdir()
    futures.mkdir()
    shutil.copy(SAMPLE / "BTC_USDT_USDT-1h-futures.feather", futures)
    shutil.copy(SAMPLE / "BTC_USDT_USDT-1h-futures.feather", spot / "BTC_USDT-1h.feather")
    data = tmp_path / "data"
    given = [str(spot / "BTC_USDT-1h.feather"), str(futures / "BTC_USDT_USDT-1h-futures.feather")]
    done = run_cli(["import-data", *given, "--exchange-info", str(RULES)], data, tmp_path)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"configuration error: {given[1]}: the same candles as {given[0]} (BTC/USDT:USDT, 1h, "
        "futures: spot candles are imported as the perpetual's); import one"
    )
    assert sorted(p.name for p in (data / "market").iterdir()) == []


@pytest.mark.parametrize("taken", ["ETH_USDT_USDT-5m-futures.feather", RULES.name])
def test_an_import_onto_a_directory_named_as_a_file_it_writes_imports_nothing(
    tmp_path: Path, taken: str
) -> None:
    """Was (found by an outside-style probe, 2026-12-04): an IsADirectoryError traceback at
    that file's rename, exit 1, the files renamed before it and the rules already imported (or
    a `.partial` rules file left)."""
    market = tmp_path / "data" / "market"
    (market / taken).mkdir(parents=True)
    given = [
        str(SAMPLE / f"{stem}-5m-futures.feather") for stem in ("BTC_USDT_USDT", "ETH_USDT_USDT")
    ]
    done = run_cli(["import-data", *given, "--exchange-info", str(RULES)], market.parent, tmp_path)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"configuration error: import-data: {market / taken} is "
        "not a file (a directory?): move it aside, then import again; nothing was imported"
    )
    assert sorted(p.name for p in market.iterdir()) == [taken]


def test_a_rules_entry_that_cannot_be_used_is_named_with_its_reason(tmp_path: Path) -> None:
    parsed = parse_rules(with_tick("ETHUSDT", "0"), tmp_path / "exchange-info-2025-12-01.json")
    assert BTC in parsed.listings
    assert ETH not in parsed.listings
    with pytest.raises(ConfigurationError) as caught:
        rules_for([BTC, ETH], [parsed], tmp_path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"market rules: {ETH}'s entry in ")
    assert (
        "cannot be used (exchangeInfo ETH/USDT:USDT: field 'tickSize' must be positive" in problem
    )


def test_an_onboard_date_that_is_no_time_makes_that_entry_unusable_not_a_crash(
    tmp_path: Path,
) -> None:
    document = rules_document(ETHUSDT={"onboardDate": "soon"})
    parsed = parse_rules(document, tmp_path / "x.json")
    assert parsed.unusable[ETH] == "onboardDate 'soon' is not epoch milliseconds"
    assert BTC in parsed.listings


def test_a_quarterly_contract_is_said_to_be_no_perpetual(tmp_path: Path) -> None:
    document = rules_document(ETHUSDT={"contractType": "CURRENT_QUARTER"})
    parsed = parse_rules(document, tmp_path / "x.json")
    assert (
        "listed only as another contract (contractType 'CURRENT_QUARTER'" in (parsed.unusable[ETH])
    )


def test_a_server_time_that_is_no_time_is_one_line_and_nothing_written(tmp_path: Path) -> None:
    document = rules_document()["exchangeInfo"] | {"serverTime": 10**20}
    given = tmp_path / "info.json"
    given.write_text(json.dumps(document))
    data = tmp_path / "data"
    done = run_cli(["import-data", "--exchange-info", str(given)], data, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "serverTime 100000000000000000000 is not an instant" in one_line(done.stderr)
    assert not list((data / "market").glob("exchange-info-*"))


def test_a_tick_that_does_not_fit_the_candles_stops_the_backtest(tmp_path: Path) -> None:
    market = tmp_path / "data" / "market"
    market.mkdir(parents=True)
    for name in ("BTC_USDT_USDT-5m-futures.feather", "BTC_USDT_USDT-1h-futures.feather"):
        shutil.copy(SAMPLE / name, market)
    (market / RULES.name).write_text(json.dumps(with_tick("BTCUSDT", "10000")))
    args = ["backtest", "--symbols", BTC, "--start", "2025-11-20", "--end", "2025-11-22"]
    done = run_cli([*args, "--out", str(tmp_path / "out")], tmp_path / "data", tmp_path)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert f"{BTC}'s tick size 10000 is " in line
    assert "of its median recorded close" in line
    assert not (tmp_path / "out").exists()


def test_a_symbol_that_ends_early_is_named_where_the_run_shows_its_window(
    tmp_path: Path,
) -> None:
    market = tmp_path / "data" / "market"
    market.mkdir(parents=True)
    for name in SAMPLE.iterdir():
        if name.name.startswith(("BTC_USDT_USDT-", "ETH_USDT_USDT-")) or name == RULES:
            shutil.copy(name, market)
    eth = market / "ETH_USDT_USDT-5m-futures.feather"
    table = feather.read_table(eth)
    feather.write_feather(table.slice(0, table.num_rows - 288 * 5), eth)  # ends 5 days early
    args = ["backtest", "--symbols", f"{BTC},{ETH}", "--start", "2025-11-20", "--end", "2025-12-01"]
    done = run_cli([*args, "--out", str(tmp_path / "out")], tmp_path / "data", tmp_path)
    assert done.returncode == 0, done.stderr
    said = (
        f"{ETH}'s candles end at 2025-11-26 00:00: the replay ends there, not at 2025-12-01 00:00"
    )
    assert said in done.stdout + done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert said in report["missing_inputs"]
    assert report["end"].startswith("2025-11-26T00:00")


def test_a_replay_of_times_stored_in_the_wrong_unit_is_one_line(tmp_path: Path) -> None:
    market = tmp_path / "data" / "market"
    market.mkdir(parents=True)
    shutil.copy(RULES, market)
    source = SAMPLE / "BTC_USDT_USDT-5m-futures.feather"
    table = feather.read_table(source)
    time_ms, _ = columns_of(source)
    as_seconds = pa.array(time_ms, type=pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    feather.write_feather(table.set_column(0, "date", as_seconds), market / source.name)
    args = ["backtest", "--symbols", BTC, "--out", str(tmp_path / "out")]
    done = run_cli(args, tmp_path / "data", tmp_path)
    assert done.returncode == 1, done.stderr
    assert "reads as epoch microseconds" in one_line(done.stderr)
    assert not (tmp_path / "out").exists()


def test_the_rules_alone_are_imported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = run_cli(["import-data", "--exchange-info", str(RULES)], data, tmp_path)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (data / "market").glob("exchange-info-*.json")]


def test_a_folder_as_download_data_leaves_it_imports_with_its_rules(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    for name in ("BTC_USDT_USDT-5m-futures.feather", "BTC_USDT_USDT-1h-funding_rate.feather"):
        shutil.copy(SAMPLE / name, given)
    shutil.copy(RULES, given)  # was: "cannot tell the market from the file name", exit 2
    data = tmp_path / "data"
    done = run_cli(["import-data", str(given)], data, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"market rules: {RULES.name} from" in done.stdout
    names = sorted(p.name for p in (data / "market").iterdir())
    assert names == [
        "BTC_USDT_USDT-1h-funding_rate.feather",
        "BTC_USDT_USDT-5m-futures.feather",
        RULES.name,  # dated as saved (its `fetched_at`), not by the copy's modification time
    ]


def test_a_rules_file_named_otherwise_beside_the_candles_is_imported(tmp_path: Path) -> None:
    """A user's saved exchangeInfo named `exchange-info-binance.json` beside the candles (found
    by an outside-style probe: it was skipped as candles and ignored as rules, then
    "market rules: none for BTC/USDT:USDT in … (exchange-info-*.json)")."""
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(SAMPLE / "BTC_USDT_USDT-5m-futures.feather", given)
    shutil.copy(RULES, given / "exchange-info-binance.json")
    data = tmp_path / "data"
    done = run_cli(["import-data", str(given)], data, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"market rules: {RULES.name} from" in done.stdout
    assert "warning" not in done.stdout
    assert sorted(p.name for p in (data / "market").iterdir()) == [
        "BTC_USDT_USDT-5m-futures.feather",
        RULES.name,
    ]
    shutil.copy(RULES, given / "exchange-info-old.json")
    again = run_cli(["import-data", str(given)], tmp_path / "other", tmp_path)
    assert again.returncode == 2
    assert one_line(again.stderr) == (
        "configuration error: import-data: 2 rules files beside the candles "
        "(exchange-info-binance.json, exchange-info-old.json): pass the one to use with "
        "--exchange-info FILE"
    )
    assert not list((tmp_path / "other" / "market").glob("*"))


def test_a_symbol_listed_too_late_for_its_warm_up_is_named_by_backtest_and_run(
    tmp_path: Path,
) -> None:
    """ETH's candles begin twelve hours before the data ends, fewer than the warm-up: with no
    --start/--end given (found by an outside-style probe; was: `--start/--end: nothing to
    replay between …` for options never given, a window whose start was after its end, and no
    symbol named; a paper run said `market.replay_start: … is outside the recording`, a setting
    never set)."""
    market = tmp_path / "data" / "market"
    market.mkdir(parents=True)
    shutil.copy(SAMPLE / "BTC_USDT_USDT-5m-futures.feather", market)
    shutil.copy(RULES, market)
    table = feather.read_table(SAMPLE / "ETH_USDT_USDT-5m-futures.feather")
    feather.write_feather(
        table.slice(table.num_rows - 144), market / "ETH_USDT_USDT-5m-futures.feather"
    )
    config = tmp_path / "two.toml"
    config.write_text(
        '[market]\nsymbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]\n'
        '[signals]\nsource = "rules"\n[server]\nenabled = false\n'
    )
    expected = (
        "configuration error: nothing to replay: ETH/USDT:USDT's candles begin at "
        "2025-11-30 12:00, so after 2040 bars of warm-up the replay would start at 2025-12-07 "
        "14:00, after the recorded data ends (2025-12-01 00:00); leave ETH/USDT:USDT out of the "
        "symbols (--symbols or market.symbols) or record more of it"
    )
    for command in (["backtest", "--out", str(tmp_path / "out")], ["run"]):
        done = run_cli([*command, "--config", str(config)], tmp_path / "data", tmp_path)
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr) == expected
    assert not (tmp_path / "out").exists()


def test_a_start_inside_the_warm_up_is_said_with_the_first_candle(tmp_path: Path) -> None:
    store = CandleStore(SAMPLE)
    feed = ReplayFeed(store, [BTC, ETH], "5m", history_bars=288)
    asked = feed.start - timedelta(days=1)
    (line,) = narrowed(feed, asked, None)
    first = utc_from_ms(int(feed.bars[feed.first_starting].time_ms[0]))
    assert line == (
        f"{feed.first_starting}'s candles begin at {first:%Y-%m-%d %H:%M}: after 288 bars of "
        f"warm-up the replay starts at {feed.start:%Y-%m-%d %H:%M}, not at {asked:%Y-%m-%d %H:%M}"
    )
    assert narrowed(feed, feed.start, feed.end) == []
