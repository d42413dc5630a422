"""Market rules files from an outside probe (docs/BAD_INPUTS.md, "Market data"): leverage
brackets kept through `import-data` and carried into the rules paper runs and backtests trade
by, nonsense quantity and notional minimums refused naming the file, the symbol and the
field, and a refused `--exchange-info` file named with what to do."""

from __future__ import annotations

import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_market_data_bad_inputs import run_cli

from quantum_trader.domain import LeverageBracket
from quantum_trader.errors import MarketDataError
from quantum_trader.execution.binance_wire import parse_market_rules
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.market.rules import read_rules

SAMPLE = bundled_sample_dir()
RULES = next(SAMPLE.glob("exchange-info-*.json"))
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
# Binance's leverageBracket row, as download-data saves it: 2x up to 5,000 USDT, nothing beyond.
ETH_BRACKETS = {
    "symbol": "ETHUSDT",
    "brackets": [
        {
            "bracket": 1,
            "initialLeverage": 2,
            "notionalCap": 5000,
            "notionalFloor": 0,
            "maintMarginRatio": 0.05,
            "cum": 0,
        }
    ],
}


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    return line


def sample_rules(brackets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The sample's rules file; its brackets replaced by `brackets` when given."""
    document: dict[str, Any] = json.loads(RULES.read_text())
    if brackets is not None:
        document["leverageBrackets"] = brackets
    return document


def with_filter(document: dict[str, Any], entry_id: str, kind: str, **values: str) -> None:
    for entry in document["exchangeInfo"]["symbols"]:
        if entry["symbol"] == entry_id:
            for rule in entry["filters"]:
                if rule["filterType"] == kind:
                    rule.update(values)


def eth_entry(**lot: str) -> dict[str, Any]:
    """ETHUSDT's exchangeInfo entry in the sample, its LOT_SIZE updated by `lot`."""
    document = sample_rules()
    with_filter(document, "ETHUSDT", "LOT_SIZE", **lot)
    (entry,) = [e for e in document["exchangeInfo"]["symbols"] if e["symbol"] == "ETHUSDT"]
    return dict(entry)


def eth_market(tmp_path: Path, document: dict[str, Any]) -> Path:
    """A data directory with ETH's sample candles and `document` as its rules file."""
    market = tmp_path / "data" / "market"
    market.mkdir(parents=True)
    for name in ("ETH_USDT_USDT-5m-futures.feather", "ETH_USDT_USDT-1h-futures.feather"):
        shutil.copy(SAMPLE / name, market)
    (market / RULES.name).write_text(json.dumps(document))
    return market


# -- leverage brackets ------------------------------------------------------------------------


def test_recorded_brackets_reach_the_rules_with_their_notional_caps(tmp_path: Path) -> None:
    """Was: only the highest initialLeverage was kept, the caps dropped, so the risk guard's
    bracket check never applied in paper runs and backtests."""
    path = tmp_path / RULES.name
    path.write_text(json.dumps(sample_rules([ETH_BRACKETS])))
    rules = read_rules(path).listings[ETH].rules
    assert rules.leverage_brackets == (LeverageBracket(2, Decimal(0), Decimal(5000)),)
    assert rules.max_leverage == 2
    assert rules.max_leverage_for(Decimal(4999)) == 2
    assert rules.max_leverage_for(Decimal(5000)) == 0  # Binance takes no such position


def test_the_samples_leverage_only_rows_stay_ceilings() -> None:
    rules = read_rules(RULES).listings[BTC].rules
    assert rules.leverage_brackets == ()
    assert rules.max_leverage == 125


def test_a_bracket_row_that_cannot_be_read_costs_only_its_symbol(tmp_path: Path) -> None:
    gap = json.loads(json.dumps(ETH_BRACKETS))
    gap["brackets"].append(gap["brackets"][0] | {"notionalFloor": 6000, "notionalCap": 9000})
    path = tmp_path / RULES.name
    path.write_text(json.dumps(sample_rules([gap])))
    parsed = read_rules(path)
    assert parsed.unusable[ETH] == "leverageBrackets ETHUSDT: a gap or an overlap at notional 5000"
    assert BTC in parsed.listings


@pytest.mark.parametrize("form", ["folder", "--exchange-info"])
def test_an_import_keeps_the_brackets_of_a_rules_file(tmp_path: Path, form: str) -> None:
    """Was: the imported rules file had `"leverageBrackets": null`; the backtest sized at the
    bracket's leverage only when the file was copied into market/ by hand."""
    given = tmp_path / "given"
    given.mkdir()
    shutil.copy(SAMPLE / "ETH_USDT_USDT-5m-futures.feather", given)
    (given / RULES.name).write_text(json.dumps(sample_rules([ETH_BRACKETS])))
    args = [str(given)] if form == "folder" else ["--exchange-info", str(given / RULES.name)]
    data = tmp_path / "data"
    done = run_cli(["import-data", *args], data, tmp_path)
    assert done.returncode == 0, done.stderr
    imported = data / "market" / RULES.name
    assert json.loads(imported.read_text())["leverageBrackets"] == [ETH_BRACKETS]
    assert read_rules(imported).listings[ETH].rules.max_leverage_for(Decimal(5000)) == 0


def test_a_backtest_sizes_entries_below_the_last_brackets_cap(tmp_path: Path) -> None:
    """With 200,000 USDT the sizer's entries would be ≈ 40,000 USDT; the bracket takes less
    than 5,000, so each is sized just below it (was: each refused by the risk guard, "beyond
    the last leverage bracket's cap 5000", no trade at all; before that, entries of ≈ 40,000
    USDT at 2x, the cap ignored)."""
    eth_market(tmp_path, sample_rules([ETH_BRACKETS]))
    out = tmp_path / "out"
    args = ["backtest", "--symbols", ETH, "--start", "2025-10-01", "--end", "2025-10-08"]
    done = run_cli(
        [*args, "--out", str(out)],
        tmp_path / "data",
        tmp_path,
        QT_EXCHANGE__PAPER_INITIAL_BALANCE_USDT="200000",
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(out / "backtest.db") as db:
        refused = db.execute(
            "select detail from decisions where gate = 'risk_guard' "
            "and reason = 'LEVERAGE_TOO_HIGH'"
        ).fetchall()
        entries = db.execute(
            "select f.quantity, f.price from fills f join orders o using (client_order_id) "
            "where o.reduce_only = 0"
        ).fetchall()
    assert refused == []
    assert entries
    # Each the largest quantity on ETH's 0.001 step (≈ 4.5 USDT) below 5,000 USDT less the 1 %
    # headroom (≈ 4,950.50) at the signal's price, so that the fill, moved by the slippage,
    # stays below the cap, as Binance checks it (was: sized at 4,99x, one filled at 5,000.19).
    assert all(4900 < Decimal(q) * Decimal(p) < 5000 for q, p in entries)


# -- quantity and notional minimums ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "values", "said"),
    [
        ("LOT_SIZE", {"minQty": "-1"}, " LOT_SIZE: field 'minQty' must not be negative, got '-1'"),
        (
            "MARKET_LOT_SIZE",
            {"minQty": "-0.001"},
            " MARKET_LOT_SIZE: field 'minQty' must not be negative, got '-0.001'",
        ),
        (
            "LOT_SIZE",
            {"minQty": "0.0015", "stepSize": "0.001"},
            " LOT_SIZE: field 'minQty' '0.0015' is not a whole number of stepSize '0.001'",
        ),
        ("MIN_NOTIONAL", {"notional": "-5"}, ": field 'notional' must not be negative, got '-5'"),
    ],
)
def test_a_nonsense_minimum_is_refused_naming_the_field(
    kind: str, values: dict[str, str], said: str
) -> None:
    document = sample_rules()
    with_filter(document, "ETHUSDT", kind, **values)
    (entry,) = [e for e in document["exchangeInfo"]["symbols"] if e["symbol"] == "ETHUSDT"]
    with pytest.raises(MarketDataError) as caught:
        parse_market_rules(ETH, entry)
    assert str(caught.value) == f"exchangeInfo {ETH}{said}"


def test_zero_minimums_and_a_tick_no_power_of_ten_are_kept() -> None:
    """Zero is no minimum (harmless: every order's quantity is positive); Binance does not
    promise ticks that are powers of ten."""
    entry = eth_entry(minQty="0", stepSize="0.25")
    for rule in entry["filters"]:
        if rule["filterType"] == "PRICE_FILTER":
            rule["tickSize"] = "0.25"
        if rule["filterType"] == "MIN_NOTIONAL":
            rule["notional"] = "0"
    rules = parse_market_rules(ETH, entry)
    assert (rules.min_quantity, rules.min_notional, rules.tick_size) == (
        Decimal(0),
        Decimal(0),
        Decimal("0.25"),
    )
    assert parse_market_rules(
        ETH, eth_entry(minQty="0.5", stepSize="0.25")
    ).min_quantity == Decimal("0.5")


def test_a_backtest_on_a_negative_min_quantity_exits_2_naming_file_symbol_and_field(
    tmp_path: Path,
) -> None:
    """ETH's entry is the only one of the file (was: accepted, the backtest ran on minQty −1;
    with the sample's own ETH rules behind it, an entry that cannot be used must not fall
    back to them silently)."""
    document = sample_rules()
    with_filter(document, "ETHUSDT", "LOT_SIZE", minQty="-1")
    info = document["exchangeInfo"]
    info["symbols"] = [e for e in info["symbols"] if e["symbol"] == "ETHUSDT"]
    market = eth_market(tmp_path, document)
    out = tmp_path / "out"
    args = ["backtest", "--symbols", ETH, "--start", "2025-10-01", "--end", "2025-10-03"]
    done = run_cli([*args, "--out", str(out)], tmp_path / "data", tmp_path)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"configuration error: market rules: {ETH}'s entry in {market / RULES.name} cannot be "
        f"used (exchangeInfo {ETH} LOT_SIZE: field 'minQty' must not be negative, got '-1'); "
        f"`quantum-trader download-data --symbols {ETH}` saves Binance's rules as they are, or "
        "pass a corrected copy of Binance's answer to `quantum-trader import-data "
        "--exchange-info FILE`"
    )
    assert not out.exists()


# -- a refused --exchange-info file ----------------------------------------------------------


def test_a_refused_exchange_info_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    """Was: `--exchange-info: exchangeInfo: no USDT-margined perpetual …`, no file, no fix."""
    info = sample_rules()["exchangeInfo"]
    (entry,) = [e for e in info["symbols"] if e["symbol"] == "ETHUSDT"]
    entry["filters"] = [f for f in entry["filters"] if f["filterType"] != "MIN_NOTIONAL"]
    info["symbols"] = [entry]
    given = tmp_path / "binance-answer.json"
    given.write_text(json.dumps(info))
    data = tmp_path / "data"
    done = run_cli(["import-data", "--exchange-info", str(given)], data, tmp_path)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"configuration error: --exchange-info: {given}: no USDT-margined perpetual in the "
        f"exchange answer that can be used ({ETH}: exchangeInfo {ETH}: missing field "
        "'MIN_NOTIONAL'); save Binance's answer (https://fapi.binance.com/fapi/v1/exchangeInfo) "
        "as it came, or correct the entry named, then import it again"
    )
    assert not list((data / "market").glob("exchange-info-*"))
