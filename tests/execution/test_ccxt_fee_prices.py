"""A commission Binance charges in BNB (the account pays fees with BNB) is booked in USDT at
BNB's price in the trade's minute (the close of BNBUSDT's 1m kline), read once per minute
through the adapter's client; a price that cannot be read fails the read of the fills."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from loopback import Fault, LoopbackBinance
from loopback.faults import Outage
from loopback.fixtures import connect
from structlog.testing import capture_logs
from test_ccxt_exchange import BTC, entry
from test_ccxt_wire import QTY, trigger_stop

from quantum_trader.clock import utc_from_ms
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.execution import binance_fills as trades
from quantum_trader.execution.ccxt_exchange import CcxtExchange

MINUTE = 1_700_000_040_000  # a minute's open time (ms)
ROW = {
    "id": 7,
    "orderId": 11,
    "side": "BUY",
    "qty": "0.010",
    "price": "100000",
    "commission": "0.00000600",
    "commissionAsset": "BNB",
    "time": MINUTE + 12_345,
}
# GET /fapi/v1/klines, as Binance documents a row: open time, open, high, low, close, volume,
# close time, quote volume, trades, taker buy volume, taker buy quote volume, ignore.
CANDLE = [MINUTE, "598.10", "601.00", "597.50", "600.00", "1234.5", MINUTE + 59_999,
          "740000.0", 321, "600.1", "360000.0", "0"]  # fmt: skip


# -- the wire: pure ------------------------------------------------------------------------


def test_a_commission_in_bnb_is_valued_at_its_minutes_price() -> None:
    later = {**ROW, "id": 8, "commission": "0.00001200", "time": MINUTE + 60_000}
    usdt = {**ROW, "id": 9, "commission": "0.4", "commissionAsset": "USDT"}
    rows = [ROW, later, usdt]
    assert trades.price_minutes(rows, BTC) == {("BNB", MINUTE), ("BNB", MINUTE + 60_000)}
    prices = {("BNB", MINUTE): Decimal("600.00"), ("BNB", MINUTE + 60_000): Decimal("610.00")}
    fills = trades.parse_fills(rows, BTC, "qt-e-1", prices)
    assert [f.fee_usdt for f in fills] == [Decimal("0.0036"), Decimal("0.007320"), Decimal("0.4")]
    assert trades.other_asset_fees(rows, BTC, prices) == {
        "BNB": (Decimal("0.00001800"), Decimal("0.010920"))
    }


def test_a_zero_commission_in_bnb_needs_no_price() -> None:
    row = {**ROW, "commission": "0"}
    assert trades.price_minutes([row], BTC) == set()
    assert [f.fee_usdt for f in trades.parse_fills([row], BTC, "qt-e-1", {})] == [0]


def test_a_commission_without_its_price_is_not_counted_as_zero() -> None:
    with pytest.raises(MarketDataError, match="no USDT price for a commission in BNB"):
        trades.parse_fills([ROW], BTC, "qt-e-1", {})


def test_an_asset_without_a_usdt_market_counts_zero() -> None:
    row = {**ROW, "commissionAsset": "USDC", "commission": "0.36"}
    [fill] = trades.parse_fills([row], BTC, "qt-e-1", {("USDC", MINUTE): None})
    assert fill.fee_usdt == 0


def test_a_trade_without_its_commission_asset_is_malformed() -> None:
    row = {key: value for key, value in ROW.items() if key != "commissionAsset"}
    with pytest.raises(MarketDataError, match="commissionAsset"):
        trades.price_minutes([row], BTC)


def test_the_close_of_the_minutes_kline_is_its_price() -> None:
    assert trades.parse_minute_close([CANDLE], "BNBUSDT", MINUTE) == Decimal("600.00")
    earlier = [MINUTE - 60_000, *CANDLE[1:]]
    assert trades.parse_minute_close([earlier, CANDLE], "BNBUSDT", MINUTE) == Decimal("600.00")


@pytest.mark.parametrize(
    "answer",
    [
        [],  # no candle for the minute yet
        {"code": -1121, "msg": "Invalid symbol."},
        [[MINUTE + 60_000, *CANDLE[1:]]],  # another minute's candle
        [[MINUTE, "598.10", "601.00"]],  # too short
        ["600.00"],
        [[MINUTE, *CANDLE[1:4], "0", *CANDLE[5:]]],
        [[MINUTE, *CANDLE[1:4], "-600", *CANDLE[5:]]],
        [[MINUTE, *CANDLE[1:4], "NaN", *CANDLE[5:]]],
        [[MINUTE, *CANDLE[1:4], "Infinity", *CANDLE[5:]]],
        [[MINUTE, *CANDLE[1:4], "six hundred", *CANDLE[5:]]],
        [[MINUTE, *CANDLE[1:4], None, *CANDLE[5:]]],
    ],
)
def test_a_kline_answer_without_a_usable_close_is_malformed(answer: Any) -> None:
    with pytest.raises(MarketDataError, match="klines BNBUSDT"):
        trades.parse_minute_close(answer, "BNBUSDT", MINUTE)


# -- the adapter on the stand-in ------------------------------------------------------------


def bnb_account(server: LoopbackBinance, trades_per_execution: int = 1) -> None:
    server.state.commission_asset = "BNB"
    server.engine.trades_per_execution = trades_per_execution


def klines_of(server: LoopbackBinance, market_id: str) -> list[dict[str, str]]:
    return [p for _, path, p in server.requests
            if path == "/fapi/v1/klines" and p.get("symbol") == market_id]  # fmt: skip


async def test_an_order_paid_in_bnb_books_its_fee_in_usdt_with_one_price_read(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    bnb_account(loopback, trades_per_execution=3)
    await exchange.place_order(entry())
    listed = [t for t in loopback.state.trades if t["side"] == "BUY"]
    assert {t["commissionAsset"] for t in listed} == {"BNB"}
    assert len(listed) == 3
    seen: list[tuple[str, int | None]] = []
    exchange.on_request = lambda operation, used: seen.append((operation, used))
    with capture_logs() as logs:
        fills = await exchange.fetch_fills(BTC, "qteBTC1")
    minute = loopback.state.now_ms - loopback.state.now_ms % 60_000
    [asked] = klines_of(loopback, "BNBUSDT")  # one request for the order's three trades
    assert asked == {"symbol": "BNBUSDT", "interval": "1m", "startTime": str(minute), "limit": "1"}
    assert [e.weight for e in loopback.log if e.path == "/fapi/v1/klines"] == [1]
    assert [op for op, _ in seen].count("data") == 1  # counted where every request is
    close = Decimal(loopback.state.klines(asked)[0][4])
    paid = sum((Decimal(t["commission"]) for t in listed), Decimal(0))
    assert sum((f.fee_usdt for f in fills), Decimal(0)) == paid * close
    # The taker fee (0.4 USDT on 1,000 USDT) less Binance's 10 % BNB discount, to BNB's 8 dp.
    assert abs(paid * close - Decimal("0.36")) < Decimal("0.00001")
    [said] = [e for e in logs if e["event"] == "fee_converted"]
    assert (said["log_level"], said["asset"], said["commission"]) == ("info", "BNB", str(paid))
    assert said["prices"] == {utc_from_ms(minute).isoformat(): str(close)}
    assert said["fee_usdt"] == str(paid * close)
    assert not [e for e in logs if e["event"] == "fee_not_in_usdt"]

    assert await exchange.fetch_fills(BTC, "qteBTC1") == fills  # read again: price kept
    assert len(klines_of(loopback, "BNBUSDT")) == 1


async def test_a_price_that_cannot_be_read_fails_the_read_of_the_fills(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    bnb_account(loopback)
    await exchange.place_order(entry())
    now = loopback.state.now_ms
    loopback.outage(Outage("/fapi/v1/klines", now, now + 1, method="GET", symbol="BNBUSDT"))
    with pytest.raises(RetryLater):
        await exchange.fetch_fills(BTC, "qteBTC1")
    assert len(klines_of(loopback, "BNBUSDT")) == 3  # retried, as every idempotent read
    loopback.state.now_ms = now + 1  # the outage is over: read, and kept
    [fill] = await exchange.fetch_fills(BTC, "qteBTC1")
    assert fill.fee_usdt > 0


@pytest.mark.parametrize(
    "fault",
    [
        Fault("/fapi/v1/klines", status=200, body="[]", symbol="BNBUSDT"),
        Fault("/fapi/v1/klines", status=200, body='[[1, "600"]]', symbol="BNBUSDT"),
        Fault("/fapi/v1/klines", status=200, body="not json", symbol="BNBUSDT"),
        Fault("/fapi/v1/klines", code=-1121, msg="Invalid symbol.", symbol="BNBUSDT"),
    ],
    ids=["empty", "short-row", "not-json", "no-such-symbol"],
)
async def test_a_malformed_or_refused_price_answer_is_a_failed_read(
    exchange: CcxtExchange, loopback: LoopbackBinance, fault: Fault
) -> None:
    bnb_account(loopback)
    await exchange.place_order(entry())
    loopback.inject(fault)
    with pytest.raises(MarketDataError):
        await exchange.fetch_fills(BTC, "qteBTC1")
    [fill] = await exchange.fetch_fills(BTC, "qteBTC1")  # the next read values it
    assert fill.fee_usdt > 0


async def test_an_asset_with_no_usdt_perpetual_counts_zero_and_says_so(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await exchange.place_order(entry())
    [trade] = loopback.state.trades
    row = {**trade, "commission": "0.36", "commissionAsset": "USDC"}  # no USDCUSDT here
    body = json.dumps([row])
    loopback.inject(Fault("/fapi/v1/userTrades", status=200, body=body, method="GET"))
    with capture_logs() as logs:
        [fill] = await exchange.fetch_fills(BTC, "qteBTC1")
    assert fill.fee_usdt == 0
    [said] = [e for e in logs if e["event"] == "fee_not_in_usdt"]
    assert (said["log_level"], said["fees"]) == ("warning", {"USDC": "0.36"})
    assert klines_of(loopback, "USDCUSDT") == []


async def test_a_triggered_stops_lookup_reads_no_price() -> None:
    """The lookup of a FINISHED stop needs its execution, not its fee: no price read there."""
    async with LoopbackBinance(report_actual_order=False) as server:
        exchange = connect(server)
        try:
            bnb_account(server)
            await trigger_stop(exchange, server)
            order = await exchange.fetch_order(BTC, "qtsBTC1")
            assert order is not None
            assert order.filled_quantity == QTY
            assert klines_of(server, "BNBUSDT") == []
            [fill] = await exchange.fetch_fills(BTC, "qtsBTC1")
            assert fill.fee_usdt > 0
            assert len(klines_of(server, "BNBUSDT")) == 1
        finally:
            await exchange.close()
