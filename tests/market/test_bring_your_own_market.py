"""Issue 16: any Binance perpetual, downloaded or imported, backtested with the exchange's own
rules; the universe rule; one data directory every command agrees on.

AVAX and LINK are real Binance USD-M candles (tests/market/data, built by make_fixtures.py),
outside the bundled eight; their rules come from an exchangeInfo answer in Binance's format.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.feather as feather
import pytest
from conftest import REPO
from loopback import LoopbackBinance, loopback_api_urls
from loopback.fixtures import connect, loopback
from loopback.markets import LoopbackMarket

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.cli_data import download_market_data
from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.importer import collect, import_file
from quantum_trader.market.rules import write_rules
from quantum_trader.market.settings import UniverseSettings
from quantum_trader.market.source import market_dir, resolve_market_data
from quantum_trader.market.universe import recorded_volume, resolve_live

__all__ = ["loopback"]
DATA = REPO / "tests" / "market" / "data"
AVAX, LINK = "AVAX/USDT:USDT", "LINK/USDT:USDT"
EXCHANGE_INFO = json.loads((DATA / "binance_exchange_info_avax_link.json").read_text())


def fill_prices(out_dir: Path) -> list[tuple[str, Decimal, Decimal]]:
    with sqlite3.connect(out_dir / "backtest.db") as db:
        rows = db.execute("select symbol, price, quantity from fills").fetchall()
    return [(s, Decimal(str(p)), Decimal(str(q))) for s, p, q in rows]


def assert_traded_on_the_exchange_rules(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    assert report["symbols"] == [AVAX, LINK]
    assert report["reconciled"] is True
    fills = fill_prices(report_dir)
    assert fills, "the rule agent traded nothing over these days"
    steps = {AVAX: (Decimal("0.001"), Decimal(1)), LINK: (Decimal("0.001"), Decimal("0.01"))}
    for symbol, price, quantity in fills:
        tick, step = steps[symbol]
        assert price % tick == 0, (symbol, price)
        assert quantity % step == 0, (symbol, quantity)


async def test_imported_freqtrade_files_backtest_with_the_exchanges_rules(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    out = market_dir(settings)
    imported = [import_file(p, parsed, out) for p, parsed in collect([DATA / "futures"])]
    assert [(i.parsed.symbol, i.rows) for i in imported] == [(AVAX, 2880), (LINK, 2880)]
    write_rules(out, EXCHANGE_INFO, datetime(2025, 5, 15, tzinfo=UTC))
    report_dir = tmp_path / "report"
    await run_backtest(
        settings,
        BacktestRequest(
            start=datetime(2025, 5, 12, tzinfo=UTC), symbols=(AVAX, LINK), out_dir=report_dir
        ),
    )
    assert_traded_on_the_exchange_rules(report_dir)


async def test_json_and_csv_imports_equal_the_feather_import(tmp_path: Path) -> None:
    table = feather.read_table(DATA / "futures" / "AVAX_USDT_USDT-5m-futures.feather")
    rows = [
        [int(d.timestamp() * 1000), o, h, lo, c, v]
        for d, o, h, lo, c, v in zip(
            *(table[n].to_pylist() for n in table.column_names), strict=True
        )
    ]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "AVAX_USDT_USDT-5m-futures.json").write_text(json.dumps(rows))
    csv = "date,open,high,low,close,volume\n" + "".join(
        ",".join([datetime.fromtimestamp(r[0] / 1000, tz=UTC).isoformat(), *map(str, r[1:])]) + "\n"
        for r in rows
    )
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "AVAX_USDT_USDT-5m-futures.csv").write_text(csv)
    loaded = []
    for source in ("in", "csv"):
        target = tmp_path / f"out-{source}"
        [(path, parsed)] = collect([tmp_path / source])
        import_file(path, parsed, target)
        loaded.append(CandleStore(target).load_bars(AVAX, "5m"))
    expected = CandleStore(DATA / "futures").load_bars(AVAX, "5m")
    for bars in loaded:
        assert bars.time_ms.tolist() == expected.time_ms.tolist()
        assert bars.close.tolist() == expected.close.tolist()


def test_misnamed_files_are_each_named_with_the_expected_pattern(tmp_path: Path) -> None:
    bad = tmp_path / "BTC_USDT-5m-futures.feather"
    shutil.copy(DATA / "futures" / "AVAX_USDT_USDT-5m-futures.feather", bad)
    (tmp_path / "notes.csv").write_text("x")
    with pytest.raises(ConfigurationError) as caught:
        collect([tmp_path])
    assert len(caught.value.problems) == 2
    assert "BTC_USDT_USDT" in caught.value.problems[0]


def test_one_file_named_twice_is_imported_once_and_two_of_the_same_candles_are_refused(
    tmp_path: Path,
) -> None:
    name = "AVAX_USDT_USDT-5m-futures.feather"
    one = DATA / "futures" / name
    assert [p for p, _ in collect([one, one, DATA / "futures"]) if p.name == name] == [one]
    (tmp_path / "other").mkdir()
    shutil.copy(one, tmp_path / "other" / name)
    (tmp_path / "other" / name.replace(".feather", ".json")).write_text("[]")
    with pytest.raises(ConfigurationError) as caught:
        collect([one, tmp_path / "other"])  # the second would replace the first
    assert [p.split(":", 1)[0] for p in caught.value.problems] == [
        str(tmp_path / "other" / name),
        str(tmp_path / "other" / name.replace(".feather", ".json")),
    ]
    assert all("the same candles as" in p for p in caught.value.problems)


async def test_downloaded_data_is_what_backtest_reads_by_default(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    for market in (
        LoopbackMarket("AVAXUSDT", "AVAX", Decimal("20.000"), "0.0010", "1", "1"),
        LoopbackMarket("LINKUSDT", "LINK", Decimal("14.000"), "0.001", "0.01", "0.01"),
    ):
        loopback.state.markets[market.market_id] = market
    settings = Settings(data_dir=tmp_path / "data")
    now = utc_from_ms(loopback.state.now_ms)
    await download_market_data(
        settings, (AVAX, LINK), "5m", 9, now, api_urls=loopback_api_urls(loopback.base_url)
    )
    data = resolve_market_data(settings)
    assert (data.directory, data.origin) == (tmp_path / "data" / "market", "data_dir/market")
    rules_files = sorted(data.directory.glob("exchange-info-*.json"))
    assert [p.name for p in rules_files] == [f"exchange-info-{now.date().isoformat()}.json"]
    rules = data.rules((AVAX, LINK), "5m")
    assert rules[AVAX].tick_size == Decimal("0.001")
    assert rules[LINK].step_size == Decimal("0.01")
    report_dir = tmp_path / "report"
    report = await run_backtest(settings, BacktestRequest(symbols=(AVAX, LINK), out_dir=report_dir))
    assert report.symbols == [AVAX, LINK]
    assert report.reconciled
    with pytest.raises(ConfigurationError, match="market rules: none for DOT/USDT:USDT"):
        rules_missing(data.directory)


def rules_missing(directory: Path) -> None:
    from quantum_trader.market.rules import read_rules, rules_for

    rules_for(
        ["DOT/USDT:USDT"], [read_rules(next(directory.glob("exchange-info-*.json")))], directory
    )


def test_without_own_data_the_commands_read_the_bundled_sample(tmp_path: Path) -> None:
    data = resolve_market_data(Settings(data_dir=tmp_path / "data"))
    assert (data.directory, data.origin) == (bundled_sample_dir(), "bundled sample")


def test_every_command_logs_the_data_it_uses_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    out = data_dir / "market"
    out.mkdir(parents=True)
    for name in ("AVAX_USDT_USDT-5m-futures.feather", "LINK_USDT_USDT-5m-futures.feather"):
        shutil.copy(DATA / "futures" / name, out)
    write_rules(out, EXCHANGE_INFO, datetime(2025, 5, 15, tzinfo=UTC))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "QT_DATA_DIR": str(data_dir),
        "QT_LOG__FORMAT": "json",
        "QT_MARKET__SYMBOLS": f"{AVAX},{LINK}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "quantum_trader",
            "backtest",
            "--start",
            "2025-05-14",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout.splitlines()[0])
    assert first["event"] == "market_data_selected"
    assert (first["directory"], first["origin"]) == (str(out), "data_dir/market")
    assert (first["first"], first["last"]) == (
        "2025-05-05T00:00:00+00:00",
        "2025-05-14T23:55:00+00:00",
    )


def test_universe_rule_on_recorded_data_picks_by_volume(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        market={"universe": {"rule": "top_volume", "top_n": 1, "min_listing_days": 30}},
    )
    store = CandleStore(DATA / "futures")
    at = ms_from_utc(datetime(2025, 5, 10, tzinfo=UTC))
    volumes = {s: recorded_volume(store.load_bars(s, "5m"), at) for s in (AVAX, LINK)}
    assert volumes[LINK] > volumes[AVAX] > 0
    from quantum_trader.market.setup import with_universe
    from quantum_trader.market.source import MarketData

    out = tmp_path / "market"
    shutil.copytree(DATA / "futures", out)
    write_rules(out, EXCHANGE_INFO, datetime(2025, 5, 15, tzinfo=UTC))
    picked = with_universe(settings, MarketData(out, "test"), at)
    assert picked.market.symbols == (LINK,)
    blacklisted = settings.model_copy(
        update={
            "market": settings.market.model_copy(
                update={"universe": UniverseSettings(rule="top_volume", top_n=1, blacklist=(LINK,))}
            )
        }
    )
    assert with_universe(blacklisted, MarketData(out, "test"), at).market.symbols == (AVAX,)


RECORDED_TICKERS = [  # GET /fapi/v1/ticker/24hr rows as Binance sends them (subset of fields)
    {
        "symbol": "BTCUSDT",
        "lastPrice": "90394.30",
        "volume": "201512.861",
        "quoteVolume": "18233569134.79",
    },
    {
        "symbol": "ETHUSDT",
        "lastPrice": "2991.21",
        "volume": "3410121.220",
        "quoteVolume": "10218110330.15",
    },
    {
        "symbol": "SOLUSDT",
        "lastPrice": "126.71",
        "volume": "16873101",
        "quoteVolume": "2140239120.33",
    },
    {
        "symbol": "XRPUSDT",
        "lastPrice": "2.0412",
        "volume": "642210938.1",
        "quoteVolume": "1313102215.90",
    },
    {
        "symbol": "DOGEUSDT",
        "lastPrice": "0.137210",
        "volume": "6210338001",
        "quoteVolume": "861222109.51",
    },
    {
        "symbol": "BNBUSDT",
        "lastPrice": "862.31",
        "volume": "629031.21",
        "quoteVolume": "541226310.76",
    },
    {
        "symbol": "NEWUSDT",
        "lastPrice": "0.5012",
        "volume": "9321000000",
        "quoteVolume": "4671331001.10",
    },
    {
        "symbol": "BCHUSDT",
        "lastPrice": "561.02",
        "volume": "281133.121",
        "quoteVolume": "157726100.32",
    },
    {
        "symbol": "INJUSDT",
        "lastPrice": "5.612",
        "volume": "10221331.1",
        "quoteVolume": "57340111.03",
    },
    {
        "symbol": "BTCUSDT_260327",
        "lastPrice": "91010.1",
        "volume": "310.2",
        "quoteVolume": "28231111.10",
    },
]


async def test_universe_rule_picks_from_the_exchanges_answers(loopback: LoopbackBinance) -> None:
    now = datetime(2025, 12, 1, tzinfo=UTC)
    loopback.state.markets["NEWUSDT"] = LoopbackMarket(
        "NEWUSDT",
        "NEW",
        Decimal("0.5"),
        "0.0001",
        "1",
        "1",
        onboard_ms=ms_from_utc(datetime(2025, 11, 20, tzinfo=UTC)),
    )
    loopback.state.tickers_24h = RECORDED_TICKERS
    exchange = connect(loopback)
    try:
        info = await exchange.fetch_exchange_info()
        tickers = await exchange.fetch_tickers_24h()
    finally:
        await exchange.close()
    rule = UniverseSettings(
        rule="top_volume", top_n=4, min_listing_days=30, blacklist=("XRP/USDT:USDT",)
    )
    picked = resolve_live(info, tickers, ms_from_utc(now), rule)
    # NEW is the third by volume but listed 11 days ago; XRP is blacklisted.
    assert picked == ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "DOGE/USDT:USDT")
    assert loopback.count("/fapi/v1/ticker/24hr") == 1
