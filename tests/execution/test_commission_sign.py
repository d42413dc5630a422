"""A fill's commission as charged, whatever sign Binance writes it with (binance_fills.py
`charged_commission`): a taker's is a charge, a maker's negative one a rebate.

Binance's USD-M Account Trade List example (GET /fapi/v1/userTrades) writes a taker fill's
commission "-0.07819010"; it was booked as a rebate of 0.0782 USDT (an outside reviewer's
probe, 2026-12-06). Failed before."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from quantum_trader.execution import binance_fills as trades

BTC = "BTC/USDT:USDT"
# developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Account-Trade-List
DOCUMENTED_TAKER_FILL: dict[str, Any] = {
    "buyer": False,
    "commission": "-0.07819010",
    "commissionAsset": "USDT",
    "id": 698759,
    "maker": False,
    "orderId": 25851813,
    "price": "7819.01",
    "qty": "0.002",
    "quoteQty": "15.63802",
    "realizedPnl": "-0.91539999",
    "side": "SELL",
    "positionSide": "SHORT",
    "symbol": "BTCUSDT",
    "time": 1569514978020,
}


def test_the_documented_taker_fills_negative_commission_is_booked_as_a_charge() -> None:
    [fill] = trades.parse_fills([DOCUMENTED_TAKER_FILL], BTC, "qt-x-BTC-1", {})
    assert fill.fee_usdt == Decimal("0.07819010")
    assert not fill.is_maker


def test_a_taker_fills_negative_commission_in_bnb_is_valued_as_a_charge() -> None:
    row = {**DOCUMENTED_TAKER_FILL, "commission": "-0.0001", "commissionAsset": "BNB"}
    keys = trades.price_minutes([row], BTC)
    prices = dict.fromkeys(keys, Decimal(600))
    [fill] = trades.parse_fills([row], BTC, "qt-x-BTC-1", prices)
    assert fill.fee_usdt == Decimal("0.0600")
    assert trades.other_asset_fees([row], BTC, prices) == {
        "BNB": (Decimal("0.0001"), Decimal("0.0600"))
    }


def test_a_row_that_does_not_say_maker_is_a_takers() -> None:
    row = {k: v for k, v in DOCUMENTED_TAKER_FILL.items() if k != "maker"}
    [fill] = trades.parse_fills([row], BTC, "web_1", {})
    assert fill.fee_usdt == Decimal("0.07819010")


def test_a_maker_fills_negative_commission_is_a_rebate() -> None:
    row = {**DOCUMENTED_TAKER_FILL, "maker": True, "commission": "-0.00078190"}
    [fill] = trades.parse_fills([row], BTC, "web_1", {})
    assert fill.fee_usdt == Decimal("-0.00078190")
    assert fill.is_maker


@pytest.mark.parametrize(
    ("commission", "is_maker", "charged"),
    [
        ("0.0782", False, "0.0782"),
        ("-0.0782", False, "0.0782"),
        ("0.0391", True, "0.0391"),
        ("-0.0039", True, "-0.0039"),
        ("0", False, "0"),
    ],
)
def test_the_rule_for_a_commission_of_either_source(
    commission: str, is_maker: bool, charged: str
) -> None:
    """The same rule for a userTrades row (`commission`, `maker`) and an ORDER_TRADE_UPDATE
    ("n", "m"), should the stream's ever be read."""
    assert trades.charged_commission(Decimal(commission), is_maker) == Decimal(charged)


def test_a_maker_flag_written_as_text_is_read_as_no_maker_alike_in_the_fill_and_its_fee() -> None:
    """The fill's flag took any non-empty text for a maker (`bool("false")`), the fee's rule
    only `true` itself: the same row read two ways."""
    row = {**DOCUMENTED_TAKER_FILL, "maker": "false"}
    [fill] = trades.parse_fills([row], BTC, "qt-x-BTC-1", {})
    assert not fill.is_maker
    assert fill.fee_usdt == Decimal("0.07819010")
