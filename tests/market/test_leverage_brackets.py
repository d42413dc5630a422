"""Binance's leverage brackets in testnet/live, against the loopback stand-in: read at start and
at each universe refresh, a symbol without usable brackets is not traded (one line, a health
item) until a refresh reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackBinance
from loopback.fixtures import connect, loopback, loopback_settings
from structlog.testing import capture_logs

from quantum_trader.clock import utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.errors import MarketDataError
from quantum_trader.execution.binance_brackets import parse_brackets
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.market.live_universe import LiveUniverse
from quantum_trader.market.settings import UniverseSettings

__all__ = ["loopback"]
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"

# Binance's documented answer (GET /fapi/v1/leverageBracket), two symbols.
DOCUMENTED: list[dict[str, Any]] = [
    {
        "symbol": "ETHUSDT",
        "notionalCoef": 1.50,
        "brackets": [
            {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
             "maintMarginRatio": 0.0065, "cum": 0},
            {"bracket": 2, "initialLeverage": 25, "notionalCap": 100000, "notionalFloor": 10000,
             "maintMarginRatio": 0.02, "cum": 135},
        ],
    },
    {
        "symbol": "BTCUSDT",
        "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": 0.004, "cum": 0.0},
        ],
    },
]  # fmt: skip


def test_the_documented_answer_gives_each_symbols_cap_by_notional() -> None:
    answer = parse_brackets(DOCUMENTED)
    assert answer.problems == {}
    eth = answer.by_id["ETHUSDT"]
    assert [b.initial_leverage for b in eth] == [75, 25]
    assert (eth[1].notional_floor, eth[1].notional_cap) == (Decimal(10000), Decimal(100000))
    single = parse_brackets(DOCUMENTED[1])  # the answer when one symbol is asked for
    assert single.by_id["BTCUSDT"][0].initial_leverage == 125


def test_a_malformed_row_costs_only_its_symbol() -> None:
    broken = [DOCUMENTED[0] | {"brackets": [{"bracket": 1, "initialLeverage": 75}]}, DOCUMENTED[1]]
    answer = parse_brackets(broken)
    assert set(answer.by_id) == {"BTCUSDT"}
    assert "missing field 'notionalFloor'" in answer.problems["ETHUSDT"]
    gap = [dict(b) for b in DOCUMENTED[0]["brackets"]]
    gap[1]["notionalFloor"] = 20000
    answer = parse_brackets([DOCUMENTED[0] | {"brackets": gap}, DOCUMENTED[1]])
    assert "a gap or an overlap at notional 10000" in answer.problems["ETHUSDT"]
    with pytest.raises(MarketDataError, match="leverageBracket: expected a list"):
        parse_brackets("<html>")
    with pytest.raises(MarketDataError, match="no readable row"):
        parse_brackets({"code": -1000, "msg": "unknown"})


@pytest.fixture
async def exchange(loopback: LoopbackBinance) -> AsyncIterator[CcxtExchange]:
    connected = connect(loopback)
    try:
        await connected.load_markets()
        yield connected
    finally:
        await connected.close()


def fixed(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        exchange=loopback_settings(),
        market=MarketSettings(symbols=(BTC, ETH), universe=UniverseSettings(refresh_s=86_400)),
    )


async def test_a_symbol_without_brackets_is_not_traded_until_a_refresh_reads_them(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    eth_broken = DOCUMENTED[0] | {"brackets": [{"bracket": 1, "initialLeverage": 75}]}
    loopback.state.brackets_answer = [eth_broken, DOCUMENTED[1]]
    universe = LiveUniverse(exchange, fixed(tmp_path))
    with capture_logs() as logs:
        await universe.start(utc_from_ms(loopback.state.now_ms))
    assert universe.symbols == (BTC,)
    (line,) = [e for e in logs if e["event"] == "leverage_brackets_missing"]
    assert list(line["symbols"]) == [ETH]
    (health,) = universe.health_lines()
    assert health.startswith(f"{ETH} not traded: leverageBracket ETHUSDT: missing field")
    assert universe.rules[BTC].max_leverage == 125
    assert universe.rules[ETH].leverage_brackets == ()  # rules kept for the keeper

    loopback.state.brackets_answer = DOCUMENTED  # readable again: retried within 15 minutes
    change = await universe.refresh(utc_from_ms(loopback.state.now_ms + 900_000))
    assert change is not None
    assert change.added == (ETH,)
    assert list(universe.symbols) == [BTC, ETH]
    assert universe.health_lines() == []
    assert universe.rules[ETH].max_leverage_for(Decimal(20000)) == 25


async def test_an_unreadable_brackets_answer_at_start_trades_nothing_and_says_so(
    loopback: LoopbackBinance, exchange: CcxtExchange, tmp_path: Path
) -> None:
    loopback.state.brackets_answer = [{"symbol": "BTCUSDT", "notionalCoef": 1.0}]  # no brackets
    universe = LiveUniverse(exchange, fixed(tmp_path))
    with capture_logs() as logs:
        await universe.start(utc_from_ms(loopback.state.now_ms))
    (line,) = [e for e in logs if e["event"].startswith("leverage_brackets")]  # one line
    assert line["event"] == "leverage_brackets_unusable"
    assert line["log_level"] == "error"
    assert "no readable row" in line["error"]
    assert universe.symbols == ()
    assert universe.health_lines() == [
        f"{symbol} not traded: leverage brackets unusable: {line['error']}" for symbol in (BTC, ETH)
    ]
