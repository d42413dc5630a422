"""Binance's MARKET_LOT_SIZE filter, from a rules file to the paper exchange: a market order
(an entry or a reduce-only close) above its maxQty is refused as Binance refuses it, -4005
"Quantity greater than max quantity."; a conditional order is not held to it here.

The rules come from a recorded exchangeInfo answer (AVAXUSDT: LOT_SIZE maxQty 1000000,
MARKET_LOT_SIZE maxQty 100000), saved into a temporary directory by `write_rules`."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from paper_builders import at, conditional, flat_rows, make_bars, market

from quantum_trader.clock import ManualClock
from quantum_trader.domain import LotSize, MarketRules, OrderKind, OrderSide, ReasonCode
from quantum_trader.errors import OrderRejected
from quantum_trader.execution.paper import PaperExchange, default_market_rules
from quantum_trader.market.rules import read_rules, write_rules
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

AVAX = "AVAX/USDT:USDT"
RECORDED = Path(__file__).parents[1] / "market" / "data" / "binance_exchange_info_avax_link.json"
FETCHED = datetime(2026, 2, 19, 10, tzinfo=UTC)
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def recorded_rules(directory: Path, *, drop_market_lot: bool = False) -> MarketRules:
    answer = json.loads(RECORDED.read_text())
    if drop_market_lot:  # an older or hand-made file: no MARKET_LOT_SIZE entry
        answer = copy.deepcopy(answer)
        for entry in answer["symbols"]:
            entry["filters"] = [f for f in entry["filters"] if f["filterType"] != "MARKET_LOT_SIZE"]
    return read_rules(write_rules(directory, answer, FETCHED)).listings[AVAX].rules


def avax_paper(tmp_path: Path) -> PaperExchange:
    """AVAX flat at 20 USDT, 10 M USDT at leverage 1: enough for 130000 AVAX (2.6 M)."""
    return PaperExchange(
        rules={AVAX: recorded_rules(tmp_path)},
        costs=CostModel(CostSettings()),
        clock=ManualClock(at(0)),
        initial_balance_usdt=Decimal(10_000_000),
        bars={AVAX: make_bars(AVAX, flat_rows(20.0, 300))},
        funding={},
    )


def test_the_rules_file_carries_both_quantity_filters(tmp_path: Path) -> None:
    rules = recorded_rules(tmp_path)
    assert (rules.step_size, rules.min_quantity, rules.max_quantity) == (
        Decimal(1), Decimal(1), Decimal(1000000)
    )  # fmt: skip
    assert rules.market_lot_size == LotSize(Decimal(1), Decimal(1), Decimal(100000))


def test_a_rules_file_without_market_lot_size_falls_back_to_lot_size(tmp_path: Path) -> None:
    rules = recorded_rules(tmp_path, drop_market_lot=True)
    assert rules.market_lot is None
    assert rules.market_lot_size == LotSize(Decimal(1), Decimal(1), Decimal(1000000))


def test_the_bundled_sample_sets_no_quantity_maximum() -> None:
    for rules in default_market_rules(["BTC/USDT:USDT", "DOGE/USDT:USDT"]).values():
        assert rules.max_quantity is None
        assert rules.market_lot == LotSize(rules.min_quantity, rules.step_size, None)


async def test_a_market_entry_above_the_market_maximum_is_refused_with_4005(
    tmp_path: Path,
) -> None:
    paper = avax_paper(tmp_path)
    with pytest.raises(OrderRejected) as refused:
        await paper.place_order(market("e1", BUY, "100001", symbol=AVAX))
    assert refused.value.reason is ReasonCode.ABOVE_MAX_QUANTITY
    assert "Quantity greater than max quantity. (-4005)" in str(refused.value)
    assert await paper.fetch_order(AVAX, "e1") is None
    assert (await paper.fetch_balance()).wallet_usdt == Decimal(10_000_000)
    assert await paper.fetch_positions() == []
    at_maximum = await paper.place_order(market("e2", BUY, "100000", symbol=AVAX))
    assert at_maximum.filled_quantity == Decimal(100000)


async def test_a_close_above_the_market_maximum_is_refused_and_slices_of_it_are_not(
    tmp_path: Path,
) -> None:
    paper = avax_paper(tmp_path)
    await paper.place_order(market("e1", BUY, "100000", symbol=AVAX))
    await paper.place_order(market("e2", BUY, "30000", symbol=AVAX))
    (held,) = await paper.fetch_positions()
    assert held.quantity == Decimal(130000)
    with pytest.raises(OrderRejected) as refused:
        await paper.place_order(market("x1", SELL, "130000", symbol=AVAX, reduce_only=True))
    assert refused.value.reason is ReasonCode.ABOVE_MAX_QUANTITY
    (still,) = await paper.fetch_positions()
    assert still.quantity == Decimal(130000)
    # A reduce-only stop for all of it is accepted (a conditional order is not checked here).
    stop = conditional("s1", OrderKind.STOP_MARKET, SELL, "130000", "18", symbol=AVAX)
    assert (await paper.place_order(stop)).quantity == Decimal(130000)
    # Binance's answer to -4005 on a close: close in slices of at most the maximum.
    await paper.place_order(market("x2", SELL, "100000", symbol=AVAX, reduce_only=True))
    await paper.place_order(market("x3", SELL, "30000", symbol=AVAX, reduce_only=True))
    assert await paper.fetch_positions() == []


def test_a_market_maximum_that_is_not_a_number_makes_the_symbol_unusable(
    tmp_path: Path,
) -> None:
    answer = json.loads(RECORDED.read_text())
    for entry in answer["symbols"]:
        if entry["symbol"] == "AVAXUSDT":
            for item in entry["filters"]:
                if item["filterType"] == "MARKET_LOT_SIZE":
                    item["maxQty"] = "lots"
    source = read_rules(write_rules(tmp_path, answer, FETCHED))
    assert AVAX not in source.listings
    assert source.unusable[AVAX] == (
        "exchangeInfo AVAX/USDT:USDT MARKET_LOT_SIZE: field 'maxQty' is not a number: 'lots'"
    )
