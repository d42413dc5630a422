"""A position Binance liquidated or deleveraged, seen by the keeper through the ccxt adapter:
booked LIQUIDATION or ADL at the exchange's own trade (GET /fapi/v1/userTrades), named by
GET /fapi/v1/forceOrders, read only then (keeper/forced.py); an answer that cannot be read
books MANUAL, as before, with one warning."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from decimal import Decimal
from typing import Any

import pytest
from loopback import Fault, LoopbackBinance
from loopback.fixtures import connect
from structlog.testing import capture_logs
from test_exchange_answers import BTC, sized
from test_external_exits_on_standin import TAKER_FEE, keeper_on

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ClosedTrade, ExitReason, Side

Logs = list[MutableMapping[str, Any]]


async def force_closed(
    auto_close_type: str, fault: Fault | None = None
) -> tuple[ClosedTrade, Decimal, Logs, LoopbackBinance]:
    """A long entered by the keeper, closed by Binance itself (`auto_close_type`) a minute
    later, seen two minutes after that at a mark 2 % away; the trade booked, the price it was
    closed at, the tick's logs and the stand-in (closed)."""
    async with LoopbackBinance() as server:
        exchange = connect(server)
        try:
            keeper, repository = await keeper_on(exchange)
            now = utc_from_ms(server.state.now_ms)
            await keeper.tick(now, rest=True)
            await keeper.enter(sized(BTC, Side.LONG, server.state.mark("BTCUSDT")), now)
            server.state.now_ms += 60_000
            closed_at = server.state.mark("BTCUSDT")
            server.engine.force_close("BTCUSDT", auto_close_type)
            server.state.now_ms += 120_000
            server.state.marks["BTCUSDT"] = closed_at * Decimal("1.02")
            if fault is not None:
                server.inject(fault)
            server.requests.clear()
            with capture_logs() as logs:
                await keeper.tick(utc_from_ms(server.state.now_ms), rest=True)
            [trade] = await repository.closed_trades()
            assert keeper.positions == {}
            return trade, closed_at, logs, server
        finally:
            await exchange.close()


async def test_a_liquidation_is_booked_as_one_through_ccxt() -> None:
    trade, closed_at, _, server = await force_closed("LIQUIDATION")

    assert (trade.exit_reason, trade.exit_price) == (ExitReason.LIQUIDATION, closed_at)
    asked = [p for _, path, p in server.requests if path == "/fapi/v1/forceOrders"]
    assert [(p["symbol"], p["autoCloseType"]) for p in asked] == [
        ("BTCUSDT", "LIQUIDATION"),
        ("BTCUSDT", "ADL"),
    ]
    assert all(int(p["limit"]) == 100 for p in asked)
    assert sum(e.weight for e in server.log if e.path == "/fapi/v1/forceOrders") == 40


async def test_an_auto_deleveraging_is_booked_as_one_through_ccxt() -> None:
    trade, closed_at, _, _ = await force_closed("ADL")

    assert (trade.exit_reason, trade.exit_price) == (ExitReason.ADL, closed_at)


async def test_an_unreadable_or_full_forceOrders_answer_books_manual_at_the_trade(
) -> None:  # fmt: skip
    """A row without its order id, and a full page of 100 rows (Binance documents no way to
    read past it): MANUAL at the exchange's own trade and its fee, one warning."""
    row = {"orderId": 1, "symbol": "BTCUSDT", "time": 0}
    for body in ('[{"symbol": "BTCUSDT"}]', json.dumps([row] * 100)):
        fault = Fault("/fapi/v1/forceOrders", method="GET", status=200, body=body)
        trade, closed_at, logs, _ = await force_closed("LIQUIDATION", fault)

        assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, closed_at)
        assert trade.fees_usdt > trade.quantity * closed_at * TAKER_FEE  # the exit's counted
        assert [e["symbol"] for e in logs if e["event"] == "force_orders_unread"] == [BTC]


BUSY = "Internal error; unable to process your request. Please try again."
REFUSED = "Invalid API-key, IP, or permissions for action."


@pytest.mark.parametrize(("status", "code", "msg"), [(503, -1001, BUSY), (401, -2015, REFUSED)])
async def test_a_failed_forceOrders_request_is_not_retried_and_warns_once(
    status: int, code: int, msg: str
) -> None:
    """Binance answering 503 (an outage) or refusing the key: one request, one warning line,
    the close booked in the same tick MANUAL at its own trade (was: no read at all, MANUAL)."""
    fault = Fault("/fapi/v1/forceOrders", method="GET", status=status, code=code, msg=msg)
    trade, closed_at, logs, server = await force_closed("LIQUIDATION", fault)

    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, closed_at)
    assert server.count("/fapi/v1/forceOrders") == 1
    said = [e["event"] for e in logs if e["event"] in ("exchange_retry", "force_orders_unread")]
    assert said == ["force_orders_unread"]
