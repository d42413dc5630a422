"""The status server in testnet mode, against the loopback Binance stand-in: the position the
cycle opened is on /status with the exchange's mark price, and /metrics carries the requests,
Binance's used weight and the orders."""

from __future__ import annotations

from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import aiohttp
from loopback import LoopbackBinance
from loopback.fixtures import loopback, loopback_settings, open_runtime_on
from ops_builders import TOKEN
from pydantic import SecretStr

from quantum_trader.app_ops import open_operations
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import ServerSettings

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"


async def test_status_and_metrics_of_a_testnet_runtime(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        exchange=loopback_settings(),
        market=MarketSettings(symbols=(BTC,), history_bars=300),
        server=ServerSettings(port=0, token=SecretStr(TOKEN), exchange_read_interval_s=0.01),
    )
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings, stack, metrics=metrics)
        ops = await open_operations(runtime, metrics, stack)
        now = runtime.clock.now()
        summary = await runtime.core.executor.run_cycle(now)
        ops.telemetry.on_cycle(summary, 0.05, now)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as client:
            async with client.get(f"{ops.url}/status") as answer:
                status = await answer.json()
            async with client.get(f"{ops.url}/metrics") as answer:
                text = await answer.text()
    assert status["mode"] == "testnet"
    assert status["market_source"] == "exchange"
    (position,) = status["positions"]
    assert position["symbol"] == BTC
    assert Decimal(position["mark_price"]) > 0
    assert position["protected"] is True
    assert status["last_cycle"]["opened"] == 1
    assert 'qt_orders_total{kind="MARKET",outcome="filled"} 1.0' in text
    assert 'qt_orders_total{kind="STOP_MARKET",outcome="accepted"} 1.0' in text
    used = next(x for x in text.splitlines() if x.startswith("qt_exchange_used_weight_1m "))
    assert float(used.split()[1]) == loopback.weight > 0
    assert 'qt_exchange_requests_total{operation="order"}' in text
