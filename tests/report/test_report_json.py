"""report.json is serialized without `dataclasses.asdict` (its deep copy of a year's trade list
was most of the JSON's time), yet reads exactly as `json.dumps(asdict(report), indent=2,
default=str)` did, byte for byte, whatever values the report holds; and the trade list is
built without it, yet holds what asdict gave."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from report_builders import TWO, backtest, utc

from quantum_trader.backtest import BacktestRequest
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.domain import ClosedTrade, ExitReason, Side
from quantum_trader.report.load import load_run
from quantum_trader.report.model import BacktestReport


@dataclass(frozen=True)
class Held:
    """A dataclass nested in the report's free-form dicts: asdict made a dict of it."""

    symbol: str
    side: Side
    quantity: Decimal
    since: object
    note: str | None = None


def by_asdict(report: BacktestReport) -> str:
    """How report.json was written before."""
    return json.dumps(asdict(report), indent=2, default=str)


def by_asdict_trade(trade: ClosedTrade) -> dict[str, Any]:
    """How a trade of the trade list was made before."""
    return {k: str(v) if isinstance(v, Decimal | datetime) else v for k, v in asdict(trade).items()}


def typed(row: dict[str, Any]) -> list[tuple[str, type, Any]]:
    return [(k, type(v), v) for k, v in row.items()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestReport, Path]:
    """A month's backtest of two symbols: its report and its output directory."""
    directory = tmp_path_factory.mktemp("json")
    settings = Settings(
        data_dir=directory, market=MarketSettings(symbols=TWO), signals={"source": "rules"}
    )
    request = BacktestRequest(utc(2025, 9, 10), utc(2025, 10, 10), out_dir=directory / "out")
    return backtest(settings, request), directory / "out"


@pytest.fixture(scope="module")
def report(run: tuple[BacktestReport, Path]) -> BacktestReport:
    return run[0]


def test_a_backtest_report_with_trades_reads_as_asdict_wrote_it(report: BacktestReport) -> None:
    assert report.trade_list  # enums, Decimal and datetime texts, floats
    assert report.to_json() == by_asdict(report)


def test_every_kind_of_value_reads_as_asdict_wrote_it(report: BacktestReport) -> None:
    every_kind = {
        "decimal": Decimal("-1.2500"),
        "datetime": utc(2025, 9, 10),
        "enums": [Side.LONG, ExitReason.SL_HIT],
        "none": None,
        "numbers": [0, -3, 2.5, 1e-9, float("nan"), float("inf"), True, False],
        "nested": {"list": [[Decimal(3)], {"deep": (None, 'ü → "q"')}], "empty": [{}, []]},
        "dataclass": Held("BTC/USDT:USDT", Side.SHORT, Decimal("0.010"), utc(2025, 9, 11)),
        "dataclasses": [Held("ETH/USDT:USDT", Side.LONG, Decimal(1), None, note="x")],
        "keys": {1: "int", 2.5: "float", None: "none", False: "bool", Side.LONG: "enum"},
    }
    varied = dataclasses.replace(
        report,
        provenance=report.provenance | {"every_kind": every_kind},
        trade_list=[*report.trade_list, every_kind],
        sharpe=None,
        outputs={"json": "report.json"},
    )
    assert varied.to_json() == by_asdict(varied)


def test_the_written_file_is_the_json(report: BacktestReport, tmp_path: Path) -> None:
    report.write(tmp_path / "report.json")
    assert (tmp_path / "report.json").read_text(encoding="utf-8") == by_asdict(report)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_trade_list_holds_each_trade_as_asdict_gave_it(
    run: tuple[BacktestReport, Path],
) -> None:
    report, out = run
    trades = asyncio.run(load_run(out / "backtest.db")).trades
    assert trades
    assert [typed(t) for t in report.trade_list] == [typed(by_asdict_trade(t)) for t in trades]
