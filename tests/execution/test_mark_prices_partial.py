"""One symbol's mark that premiumIndex does not list, or lists unreadably, is left out; the
others' marks are read all the same (was: the whole read failed, so the keeper's stop maths and
the status page went without every mark while one symbol's row stayed bad — a symbol being
delisted while held, say). Against the loopback stand-in through ccxt."""

from __future__ import annotations

from decimal import Decimal

import pytest
from loopback import LoopbackBinance
from structlog.testing import capture_logs

from quantum_trader.errors import MarketDataError
from quantum_trader.execution.ccxt_exchange import CcxtExchange

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


async def test_an_unreadable_mark_is_left_out_and_said_once(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.state.marks["BTCUSDT"] = Decimal("95000.5")
    loopback.state.marks["ETHUSDT"] = Decimal("NaN")
    with capture_logs() as logs:
        first = await exchange.fetch_mark_prices([BTC, ETH])
        second = await exchange.fetch_mark_prices([BTC, ETH])
    assert first == second == {BTC: Decimal("95000.5")}
    [said] = [e for e in logs if e["event"] == "mark_prices_incomplete"]
    assert said["symbols"] == [ETH]
    assert "premiumIndex ETH/USDT:USDT" in said["error"]

    loopback.state.marks["ETHUSDT"] = Decimal("3500.25")
    assert await exchange.fetch_mark_prices([BTC, ETH]) == {
        BTC: Decimal("95000.5"),
        ETH: Decimal("3500.25"),
    }
    loopback.state.marks["ETHUSDT"] = Decimal(-1)  # bad again: said again
    with capture_logs() as logs:
        assert await exchange.fetch_mark_prices([BTC, ETH]) == {BTC: Decimal("95000.5")}
    assert [e["symbols"] for e in logs if e["event"] == "mark_prices_incomplete"] == [[ETH]]


async def test_no_readable_mark_at_all_is_an_error_naming_why(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.state.marks["ETHUSDT"] = Decimal("NaN")
    with pytest.raises(MarketDataError, match="premiumIndex ETH/USDT:USDT"):
        await exchange.fetch_mark_prices([ETH])
